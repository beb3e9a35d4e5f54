package vrrp

import (
	"encoding/binary"
	"net"
	"net/netip"
)

// Ethernet types and addresses of announcements.
const (
	etherTypeARP  = 0x0806
	etherTypeIPv6 = 0x86dd
	ethHeaderLen  = 14
	minFrameLen   = 60 // without FCS; shorter frames are padded
)

var (
	broadcastMAC    = net.HardwareAddr{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}
	allNodesMAC     = net.HardwareAddr{0x33, 0x33, 0, 0, 0, 1}
	allNodesAddress = netip.MustParseAddr("ff02::1")
)

// GratuitousARP returns the Ethernet frame announcing that vip is at mac:
// an ARP request with sender and target protocol address both vip (RFC 5227
// section 3 announcement), broadcast.
func GratuitousARP(mac net.HardwareAddr, vip netip.Addr) []byte {
	f := make([]byte, minFrameLen)
	copy(f[0:], broadcastMAC)
	copy(f[6:], mac)
	binary.BigEndian.PutUint16(f[12:], etherTypeARP)
	a := f[ethHeaderLen:]
	binary.BigEndian.PutUint16(a[0:], 1)      // hardware: Ethernet
	binary.BigEndian.PutUint16(a[2:], 0x0800) // protocol: IPv4
	a[4], a[5] = 6, 4
	binary.BigEndian.PutUint16(a[6:], 1) // request
	ip := vip.As4()
	copy(a[8:], mac)
	copy(a[14:], ip[:])
	// a[18:24] target hardware address stays zero
	copy(a[24:], ip[:])
	return f
}

// UnsolicitedNA returns the Ethernet frame of an unsolicited neighbour
// advertisement (RFC 4861 section 7.2.6) for target at mac, from src (a
// link-local address of the interface) to all nodes: Router=0,
// Solicited=0, Override=1, with the target link-layer address option.
func UnsolicitedNA(mac net.HardwareAddr, src, target netip.Addr) []byte {
	const icmpLen = 24 + 8
	f := make([]byte, ethHeaderLen+40+icmpLen)
	copy(f[0:], allNodesMAC)
	copy(f[6:], mac)
	binary.BigEndian.PutUint16(f[12:], etherTypeIPv6)
	ip := f[ethHeaderLen:]
	ip[0] = 6 << 4
	binary.BigEndian.PutUint16(ip[4:], icmpLen)
	ip[6] = 58 // ICMPv6
	ip[7] = 255
	s, d := src.As16(), allNodesAddress.As16()
	copy(ip[8:], s[:])
	copy(ip[24:], d[:])
	icmp := ip[40:]
	icmp[0] = 136 // neighbour advertisement
	icmp[4] = 0x20
	t := target.As16()
	copy(icmp[8:], t[:])
	icmp[24], icmp[25] = 2, 1 // target link-layer address, 8 bytes
	copy(icmp[26:], mac)
	var pseudo [40]byte
	copy(pseudo[0:], s[:])
	copy(pseudo[16:], d[:])
	binary.BigEndian.PutUint32(pseudo[32:], icmpLen)
	pseudo[39] = 58
	binary.BigEndian.PutUint16(icmp[2:], internetChecksum(pseudo[:], icmp))
	return f
}
