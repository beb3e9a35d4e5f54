package lab

import (
	"net"
	"net/netip"
	"strings"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

func (ns *NS) link(dev string) (netlink.Link, error) {
	l, err := ns.nl.LinkByName(dev)
	if err != nil {
		return nil, ns.errorf("link %s: %w", dev, err)
	}
	return l, nil
}

// Up sets dev up.
func (ns *NS) Up(dev string) error {
	l, err := ns.link(dev)
	if err != nil {
		return err
	}
	if err := ns.nl.LinkSetUp(l); err != nil {
		return ns.errorf("set %s up: %w", dev, err)
	}
	return nil
}

// Veth connects this namespace to peer with a veth pair named name here
// and peerName there, both up.
func (ns *NS) Veth(name string, peer *NS, peerName string) error {
	veth := &netlink.Veth{
		LinkAttrs:     netlink.LinkAttrs{Name: name},
		PeerName:      peerName,
		PeerNamespace: netlink.NsFd(peer.fd),
	}
	if err := ns.nl.LinkAdd(veth); err != nil {
		return ns.errorf("veth %s to %s/%s: %w", name, peer.Role, peerName, err)
	}
	if err := ns.Up(name); err != nil {
		return err
	}
	return peer.Up(peerName)
}

// Bridge creates bridge name with the given member interfaces, all up.
// IGMP snooping is off: with no querier on a lab segment it would decide
// on its own which ports hear VRRP and connection-sync multicast.
func (ns *NS) Bridge(name string, members ...string) error {
	snooping := false
	br := &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: name}, MulticastSnooping: &snooping}
	if err := ns.nl.LinkAdd(br); err != nil {
		return ns.errorf("bridge %s: %w", name, err)
	}
	if err := ns.Up(name); err != nil {
		return err
	}
	for _, m := range members {
		if err := ns.Enslave(name, m); err != nil {
			return err
		}
	}
	return nil
}

// Enslave adds dev to bridge and sets it up.
func (ns *NS) Enslave(bridge, dev string) error {
	br, err := ns.link(bridge)
	if err != nil {
		return err
	}
	l, err := ns.link(dev)
	if err != nil {
		return err
	}
	if err := ns.nl.LinkSetMaster(l, br); err != nil {
		return ns.errorf("add %s to bridge %s: %w", dev, bridge, err)
	}
	return ns.Up(dev)
}

// Plug cables this namespace to a port of bridge in sw: a veth named eth0
// here and port in sw, both up.
func (ns *NS) Plug(sw *NS, bridge, port string) error {
	if err := sw.Veth(port, ns, "eth0"); err != nil {
		return err
	}
	return sw.Enslave(bridge, port)
}

// Unplug pulls the cable Plug laid: deleting sw's end of the veth deletes
// both ends, so this namespace loses eth0 and every address on it.
func (ns *NS) Unplug(sw *NS, port string) error {
	l, err := sw.link(port)
	if err != nil {
		return err
	}
	if err := sw.nl.LinkDel(l); err != nil {
		return sw.errorf("delete port %s: %w", port, err)
	}
	return nil
}

// Addr adds an address (CIDR form) to dev. IPv6 addresses skip duplicate
// address detection, which would otherwise keep them unusable for a second
// or two.
func (ns *NS) Addr(dev, cidr string) error {
	addr, err := netlink.ParseAddr(cidr)
	if err != nil {
		return ns.errorf("address %q: %w", cidr, err)
	}
	if addr.IP.To4() == nil {
		addr.Flags |= unix.IFA_F_NODAD
	}
	l, err := ns.link(dev)
	if err != nil {
		return err
	}
	if err := ns.nl.AddrAdd(l, addr); err != nil {
		return ns.errorf("add %s to %s: %w", cidr, dev, err)
	}
	return nil
}

// HasAddr reports whether dev holds ip.
func (ns *NS) HasAddr(dev string, ip netip.Addr) (bool, error) {
	l, err := ns.link(dev)
	if err != nil {
		return false, err
	}
	addrs, err := ns.nl.AddrList(l, netlink.FAMILY_ALL)
	if err != nil {
		return false, ns.errorf("addresses of %s: %w", dev, err)
	}
	for _, a := range addrs {
		if got, ok := netip.AddrFromSlice(a.IP); ok && got.Unmap() == ip.Unmap() {
			return true, nil
		}
	}
	return false, nil
}

// MAC returns dev's hardware address.
func (ns *NS) MAC(dev string) (net.HardwareAddr, error) {
	l, err := ns.link(dev)
	if err != nil {
		return nil, err
	}
	return l.Attrs().HardwareAddr, nil
}

// Route adds a route written as for `ip route add`: a destination
// ("default", a prefix or an address) then any of "via GW", "dev DEV",
// "src ADDR". Anything else is passed to ip(8) as is.
func (ns *NS) Route(args ...string) error {
	r, ok := parseRoute(args)
	if !ok {
		argv := []string{"ip", "route", "add"}
		if strings.Contains(strings.Join(args, " "), ":") {
			argv = []string{"ip", "-6", "route", "add"}
		}
		_, err := ns.Try(append(argv, args...)...)
		return err
	}
	if r.dev != "" {
		l, err := ns.link(r.dev)
		if err != nil {
			return err
		}
		r.LinkIndex = l.Attrs().Index
	}
	if err := ns.nl.RouteAdd(&r.Route); err != nil {
		return ns.errorf("route %s: %w", strings.Join(args, " "), err)
	}
	return nil
}

type route struct {
	netlink.Route
	dev string
}

// parseRoute reads the `ip route add` words Route handles itself.
func parseRoute(args []string) (route, bool) {
	var r route
	if len(args)%2 != 1 {
		return r, false
	}
	if args[0] != "default" {
		dst := args[0]
		if !strings.Contains(dst, "/") {
			if strings.Contains(dst, ":") {
				dst += "/128"
			} else {
				dst += "/32"
			}
		}
		_, ipnet, err := net.ParseCIDR(dst)
		if err != nil {
			return r, false
		}
		r.Dst = ipnet
	}
	for i := 1; i < len(args); i += 2 {
		switch key, val := args[i], args[i+1]; key {
		case "via":
			if r.Gw = net.ParseIP(val); r.Gw == nil {
				return r, false
			}
		case "src":
			if r.Src = net.ParseIP(val); r.Src == nil {
				return r, false
			}
		case "dev":
			r.dev = val
		default:
			return r, false
		}
	}
	if r.Dst == nil && r.Gw == nil {
		return r, false
	}
	if r.Dst == nil && r.Gw.To4() == nil {
		r.Family = unix.AF_INET6
	}
	return r, true
}

// Netem puts a netem qdisc on dev (replacing its root qdisc), e.g.
// NetemQdiscAttrs{Loss: 100} drops everything dev sends.
func (ns *NS) Netem(dev string, attrs netlink.NetemQdiscAttrs) error {
	l, err := ns.link(dev)
	if err != nil {
		return err
	}
	q := netlink.NewNetem(netlink.QdiscAttrs{LinkIndex: l.Attrs().Index, Handle: netlink.MakeHandle(1, 0), Parent: netlink.HANDLE_ROOT}, attrs)
	if err := ns.nl.QdiscReplace(q); err != nil {
		return ns.errorf("netem on %s: %w", dev, err)
	}
	return nil
}

// ClearNetem removes the qdisc Netem put on dev.
func (ns *NS) ClearNetem(dev string) error {
	l, err := ns.link(dev)
	if err != nil {
		return err
	}
	q := netlink.NewNetem(netlink.QdiscAttrs{LinkIndex: l.Attrs().Index, Handle: netlink.MakeHandle(1, 0), Parent: netlink.HANDLE_ROOT}, netlink.NetemQdiscAttrs{})
	if err := ns.nl.QdiscDel(q); err != nil {
		return ns.errorf("remove netem from %s: %w", dev, err)
	}
	return nil
}
