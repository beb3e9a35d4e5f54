package vrrp

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"

	"golang.org/x/sys/unix"
)

// PacketAnnouncer sends announcements through one AF_PACKET socket, opened
// on first use and kept: closing a packet socket waits for an RCU grace
// period (tens of ms), which would delay the adverts of a new master. It
// reads the interface's MAC address anew on every call, because bonding
// can change it while we run.
type PacketAnnouncer struct {
	mu sync.Mutex
	fd int // 0 = not open yet
}

// Announce implements Announcer.
func (a *PacketAnnouncer) Announce(iface string, vips []netip.Prefix) error {
	ifc, err := net.InterfaceByName(iface)
	if err != nil {
		return fmt.Errorf("announce: %w", err)
	}
	if len(ifc.HardwareAddr) != 6 {
		return fmt.Errorf("announce: %s has no Ethernet address", iface)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.fd == 0 {
		// Protocol 0: a send-only socket that never queues received frames.
		fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return fmt.Errorf("announce: AF_PACKET socket: %w", err)
		}
		a.fd = fd
	}
	fd := a.fd
	var src6 netip.Addr
	var errs []error
	for _, p := range vips {
		vip := p.Addr()
		var frame []byte
		var dst net.HardwareAddr
		var proto uint16
		if vip.Is4() {
			frame, dst, proto = GratuitousARP(ifc.HardwareAddr, vip), broadcastMAC, etherTypeARP
		} else {
			if !src6.IsValid() {
				if src6, err = primaryAddress(iface, false); err != nil {
					errs = append(errs, err)
					continue
				}
			}
			frame, dst, proto = UnsolicitedNA(ifc.HardwareAddr, src6, vip), allNodesMAC, etherTypeIPv6
		}
		sa := &unix.SockaddrLinklayer{Ifindex: ifc.Index, Protocol: htons(proto), Halen: 6}
		copy(sa.Addr[:], dst)
		if err := unix.Sendto(fd, frame, 0, sa); err != nil {
			errs = append(errs, fmt.Errorf("announce %v on %s: %w", vip, iface, err))
		}
	}
	return errors.Join(errs...)
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }
