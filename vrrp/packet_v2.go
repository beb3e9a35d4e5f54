package vrrp

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"time"
)

// VRRPv2 (RFC 3768) is what keepalived speaks unless its config says
// vrrp_version 3, so an lvsd that replaces one node of a keepalived pair
// must speak it until the other node is replaced too. Its advert differs
// from the v3 one in four places only, which this file converts:
//
//	byte 0     version 2 (type 1, as v3)
//	byte 4     Auth Type: 0 none, 1 simple-text password (2, IP AH, was
//	           withdrawn by RFC 3768; keepalived 2.2 still has it, lvsd not)
//	byte 5     Adver Int, in whole seconds (v3: 12 bits of centiseconds)
//	bytes 6-7  the checksum of the VRRP message alone: no pseudo-header
//	trailer    8 bytes of Authentication Data after the addresses, always
//	           present, zero unless the type is a password
//
// IPv4 only: RFC 3768 has no IPv6.

// V2Auth is a VRRPv2 advert's authentication (RFC 3768 section 5.3.6).
type V2Auth struct {
	Type uint8
	// Data is the password, zero padded; all zeros with type none.
	Data [V2AuthLen]byte
}

// VRRPv2 authentication types lvsd sends and accepts.
const (
	V2AuthNone     = 0
	V2AuthPassword = 1
	// V2AuthLen is the length of the Authentication Data field, and so the
	// longest password keepalived sends (it cuts a longer one to 8 bytes).
	V2AuthLen = 8
)

// V2Password returns the V2Auth of a simple-text password ("" is none).
func V2Password(pass string) V2Auth {
	if pass == "" {
		return V2Auth{}
	}
	a := V2Auth{Type: V2AuthPassword}
	copy(a.Data[:], pass)
	return a
}

// maxIntervalV2 is the longest interval an 8-bit count of seconds holds.
const maxIntervalV2 = 255 * time.Second

func (a *Advert) encodeV2(src netip.Addr) ([]byte, error) {
	if !src.Unmap().Is4() {
		return nil, fmt.Errorf("vrrp: VRRPv2 is IPv4 only, source %v", src)
	}
	if len(a.Addrs) > 255 {
		return nil, fmt.Errorf("vrrp: %d addresses, at most 255 fit", len(a.Addrs))
	}
	if a.Interval%time.Second != 0 || a.Interval < time.Second || a.Interval > maxIntervalV2 {
		return nil, fmt.Errorf("vrrp: interval %v is not 1s..255s in whole seconds (VRRPv2)", a.Interval)
	}
	n := len(a.Addrs)
	b := make([]byte, headerLen+4*n+V2AuthLen)
	b[0] = version2<<4 | typeAdvert
	b[1] = a.VRID
	b[2] = a.Priority
	b[3] = uint8(n)
	b[4] = a.V2Auth.Type
	b[5] = uint8(a.Interval / time.Second)
	for i, ip := range a.Addrs {
		if !ip.Unmap().Is4() {
			return nil, fmt.Errorf("vrrp: address %v is not IPv4 (VRRPv2)", ip)
		}
		ip4 := ip.Unmap().As4()
		copy(b[headerLen+4*i:], ip4[:])
	}
	copy(b[headerLen+4*n:], a.V2Auth.Data[:])
	binary.BigEndian.PutUint16(b[6:], checksum(b, netip.Addr{}, netip.Addr{}, false))
	return b, nil
}

// decodeV2 is decode for a packet whose version nibble is 2 (type and
// family already checked). The checksum covers all of b, as RFC 3768 and
// keepalived compute it: the whole VRRP message, nothing before it.
func decodeV2(b []byte, v6 bool) (a Advert, form Checksum, extra []byte, err error) {
	if v6 {
		return a, 0, nil, decodeErr(ReasonFamily, "a VRRPv2 advert over IPv6 (RFC 3768 is IPv4 only)")
	}
	n := int(b[3])
	pdu := headerLen + 4*n + V2AuthLen
	if len(b) < pdu {
		return a, 0, nil, decodeErr(ReasonTruncated, "%d bytes for %d addresses and the authentication data", len(b), n)
	}
	if checksum(b, netip.Addr{}, netip.Addr{}, false) != 0 {
		return a, 0, nil, decodeErr(ReasonChecksum, "VRRPv2 checksum %#04x does not verify", binary.BigEndian.Uint16(b[6:]))
	}
	a.Version = version2
	a.VRID = b[1]
	a.Priority = b[2]
	a.Interval = time.Duration(b[5]) * time.Second
	a.V2Auth.Type = b[4]
	copy(a.V2Auth.Data[:], b[headerLen+4*n:pdu])
	a.Addrs = make([]netip.Addr, n)
	for i := range n {
		off := headerLen + 4*i
		a.Addrs[i] = netip.AddrFrom4([4]byte(b[off : off+4]))
	}
	return a, ChecksumRFC9568, b[pdu:], nil
}
