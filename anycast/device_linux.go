package anycast

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// TUN is the device the announced VIPs live on: a TUN device whose only
// holder is lvsd's open file descriptor. When the descriptor closes (lvsd
// exits, is killed, or crashes) the kernel deletes the device and its
// addresses, BIRD's `protocol direct` sees them go, and BGP withdraws the
// routes: no lvsd code has to run for a dead lvsd to stop announcing.
//
// Nothing reads the descriptor. The VIPs on the device are local
// addresses, so traffic to them is delivered to IPVS, never queued to the
// device; what little the kernel might send to it is dropped when its
// queue is full.
type TUN struct {
	name string
	fd   int
}

// OpenTUN creates the device name (or takes over a leftover TUN device of
// that name, making it non-persistent) and brings it up. It fails if
// another process holds it, or if name is some other kind of device.
func OpenTUN(name string) (*TUN, error) {
	fd, err := unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("device %s: open /dev/net/tun: %w", name, err)
	}
	ifr, err := unix.NewIfreq(name)
	if err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("device %s: %w", name, err)
	}
	ifr.SetUint16(unix.IFF_TUN | unix.IFF_NO_PI)
	if err := unix.IoctlIfreq(fd, unix.TUNSETIFF, ifr); err != nil {
		unix.Close(fd)
		switch {
		case errors.Is(err, unix.EBUSY):
			return nil, fmt.Errorf("device %s: held by another process (another lvsd?): %w", name, err)
		case errors.Is(err, unix.EINVAL), errors.Is(err, unix.EPERM):
			return nil, fmt.Errorf("device %s: exists and is not a TUN device lvsd can take (delete it, or set announce.device): %w", name, err)
		}
		return nil, fmt.Errorf("device %s: create TUN device: %w", name, err)
	}
	// A persistent device (`ip tuntap add`) would outlive lvsd and keep
	// announcing: the whole point of the device is that it does not.
	if err := unix.IoctlSetInt(fd, unix.TUNSETPERSIST, 0); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("device %s: make it non-persistent: %w", name, err)
	}
	t := &TUN{name: name, fd: fd}
	link, err := netlink.LinkByName(name)
	if err == nil {
		err = netlink.LinkSetUp(link)
	}
	if err != nil {
		t.Close()
		return nil, fmt.Errorf("device %s: set up: %w", name, err)
	}
	return t, nil
}

// Name is the device's name.
func (t *TUN) Name() string { return t.name }

// Set makes the device hold exactly vips (IPv6 link-local addresses the
// kernel adds are left alone). Adding an address is what announces it.
func (t *TUN) Set(ctx context.Context, vips []netip.Prefix) error {
	link, err := netlink.LinkByName(t.name)
	if err != nil {
		return fmt.Errorf("device %s: %w", t.name, err)
	}
	have, err := netlink.AddrList(link, netlink.FAMILY_ALL)
	if err != nil {
		return fmt.Errorf("device %s: list addresses: %w", t.name, err)
	}
	want := map[netip.Prefix]bool{}
	for _, p := range vips {
		want[p] = true
	}
	var errs []error
	for _, a := range have {
		p, ok := prefixOf(a.IPNet)
		if !ok || p.Addr().IsLinkLocalUnicast() {
			continue
		}
		if want[p] {
			delete(want, p)
			continue
		}
		if err := netlink.AddrDel(link, &a); err != nil && !errors.Is(err, unix.EADDRNOTAVAIL) {
			errs = append(errs, fmt.Errorf("device %s: withdraw %s: %w", t.name, p, err))
		}
	}
	for _, p := range vips {
		if !want[p] {
			continue
		}
		addr := &netlink.Addr{IPNet: ipNetOf(p)}
		if p.Addr().Is6() {
			addr.Flags = unix.IFA_F_NODAD // answer at once, as any VIP must
		}
		if err := netlink.AddrAdd(link, addr); err != nil && !errors.Is(err, unix.EEXIST) {
			errs = append(errs, fmt.Errorf("device %s: announce %s: %w", t.name, p, err))
		}
	}
	return errors.Join(errs...)
}

// Close releases the device; the kernel deletes it with its addresses.
func (t *TUN) Close() error {
	if t.fd < 0 {
		return nil
	}
	err := unix.Close(t.fd)
	t.fd = -1
	return err
}

func prefixOf(n *net.IPNet) (netip.Prefix, bool) {
	if n == nil {
		return netip.Prefix{}, false
	}
	a, ok := netip.AddrFromSlice(n.IP)
	if !ok {
		return netip.Prefix{}, false
	}
	a = a.Unmap()
	ones, _ := n.Mask.Size()
	return netip.PrefixFrom(a, ones), true
}

func ipNetOf(p netip.Prefix) *net.IPNet {
	return &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
}
