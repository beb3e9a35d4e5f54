package vrrp

import (
	"fmt"
	"net"
	"net/netip"
	"sync"
	"time"
)

// primaryAddress is the address adverts come from when source_address is
// not set: the first IPv4 address of the interface, or its IPv6 link-local
// address (RFC 5798 section 5.1.2.1 requires link-local for IPv6).
func primaryAddress(iface string, v4 bool) (netip.Addr, error) {
	ifc, err := net.InterfaceByName(iface)
	if err != nil {
		return netip.Addr{}, err
	}
	addrs, err := ifc.Addrs()
	if err != nil {
		return netip.Addr{}, fmt.Errorf("addresses of %s: %w", iface, err)
	}
	for _, a := range addrs {
		ipn, ok := a.(*net.IPNet)
		if !ok {
			continue
		}
		ip, ok := netip.AddrFromSlice(ipn.IP)
		if !ok {
			continue
		}
		ip = ip.Unmap()
		if v4 && ip.Is4() || !v4 && ip.Is6() && ip.IsLinkLocalUnicast() {
			return ip, nil
		}
	}
	family := "IPv4"
	if !v4 {
		family = "IPv6 link-local"
	}
	return netip.Addr{}, fmt.Errorf("interface %s has no %s address to send adverts from", iface, family)
}

// localAddrs answers "is this one of our addresses" from a cache refreshed
// at most once a second, since every received advert asks.
type localAddrs struct {
	clock Clock
	mu    sync.Mutex
	at    time.Time
	set   map[netip.Addr]bool
}

func newLocalAddrs(c Clock) *localAddrs { return &localAddrs{clock: c} }

func (l *localAddrs) has(a netip.Addr) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if now := l.clock.Now(); l.set == nil || now.Sub(l.at) > time.Second {
		l.at = now
		l.set = map[netip.Addr]bool{}
		if addrs, err := net.InterfaceAddrs(); err == nil {
			for _, x := range addrs {
				if ipn, ok := x.(*net.IPNet); ok {
					if ip, ok := netip.AddrFromSlice(ipn.IP); ok {
						l.set[ip.Unmap()] = true
					}
				}
			}
		}
	}
	return l.set[a.Unmap()]
}
