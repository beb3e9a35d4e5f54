package director

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"

	"github.com/lvsd/lvsd/config"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// VIPs adds and removes virtual addresses on interfaces. It has the shape
// of vrrp's AddressManager, which calls it on becoming master or backup.
type VIPs struct{}

// AddVIPs adds each prefix to iface; addresses already there are fine.
func (VIPs) AddVIPs(ctx context.Context, iface string, vips []netip.Prefix) error {
	link, err := netlink.LinkByName(iface)
	if err != nil {
		return fmt.Errorf("interface %q: %w", iface, err)
	}
	var errs []error
	for _, p := range vips {
		addr := &netlink.Addr{IPNet: ipNet(p)}
		if p.Addr().Is6() {
			// No duplicate address detection: the VIP moves between
			// directors and must answer at once after takeover.
			addr.Flags = unix.IFA_F_NODAD
		}
		if err := netlink.AddrAdd(link, addr); err != nil && !errors.Is(err, unix.EEXIST) {
			errs = append(errs, fmt.Errorf("add vip %s to %s: %w", p, iface, err))
		}
	}
	return errors.Join(errs...)
}

// RemoveVIPs removes each prefix from iface; addresses already gone are fine.
func (VIPs) RemoveVIPs(ctx context.Context, iface string, vips []netip.Prefix) error {
	link, err := netlink.LinkByName(iface)
	if err != nil {
		return fmt.Errorf("interface %q: %w", iface, err)
	}
	var errs []error
	for _, p := range vips {
		err := netlink.AddrDel(link, &netlink.Addr{IPNet: ipNet(p)})
		if err != nil && !errors.Is(err, unix.EADDRNOTAVAIL) && !errors.Is(err, unix.ENOENT) {
			errs = append(errs, fmt.Errorf("remove vip %s from %s: %w", p, iface, err))
		}
	}
	return errors.Join(errs...)
}

func ipNet(p netip.Prefix) *net.IPNet {
	a := p.Addr().Unmap()
	return &net.IPNet{IP: net.IP(a.AsSlice()), Mask: net.CIDRMask(p.Bits(), a.BitLen())}
}

// StaticVIPs are the service VIPs no VRRP instance covers and no service
// announces: lvsd holds them on the director interface all the time, as on
// a single director. Announced VIPs live on the announce device, and only
// while announced.
func StaticVIPs(cfg *config.Config) []netip.Prefix {
	covered := map[netip.Addr]bool{}
	for _, v := range cfg.VRRP {
		for _, p := range v.VIPs {
			covered[p.Addr().Unmap()] = true
		}
	}
	seen := map[netip.Addr]bool{}
	var out []netip.Prefix
	for _, s := range cfg.Services {
		a := s.VIP.IP.Unmap()
		if s.FWMark != 0 || !a.IsValid() || covered[a] || seen[a] || s.Announce {
			continue
		}
		seen[a] = true
		out = append(out, netip.PrefixFrom(a, a.BitLen()))
	}
	return out
}
