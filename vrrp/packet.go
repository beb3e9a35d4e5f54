package vrrp

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"time"
)

// ProtocolNumber is VRRP's IP protocol number.
const ProtocolNumber = 112

const (
	version2       = 2
	version3       = 3
	typeAdvert     = 1
	headerLen      = 8
	maxIntervalCS  = 0x0fff // 12 bits of centiseconds
	intervalUnit   = 10 * time.Millisecond
	ttlRequired    = 255
	priorityOwner  = 255
	priorityResign = 0
)

// Multicast groups adverts are sent to (RFC 5798 section 5.1).
var (
	GroupV4 = netip.MustParseAddr("224.0.0.18")
	GroupV6 = netip.MustParseAddr("ff02::12")
)

// Checksum selects how the IPv4 checksum is computed. IPv6 always covers
// the IPv6 pseudo-header.
type Checksum int

const (
	// ChecksumRFC5798 covers a 12-byte IPv4 pseudo-header and the message:
	// what keepalived 2.2, FRR and Wireshark use.
	ChecksumRFC5798 Checksum = iota
	// ChecksumRFC9568 covers the VRRP message only, as RFC 9568 clarified
	// and Cisco/Juniper send.
	ChecksumRFC9568
)

func (c Checksum) String() string {
	if c == ChecksumRFC9568 {
		return "rfc9568"
	}
	return "rfc5798"
}

// ParseChecksum maps the config value to a Checksum; "" is the default.
func ParseChecksum(s string) (Checksum, error) {
	switch s {
	case "", "rfc5798":
		return ChecksumRFC5798, nil
	case "rfc9568":
		return ChecksumRFC9568, nil
	}
	return 0, fmt.Errorf("checksum %q: want rfc5798 or rfc9568", s)
}

// Advert is one VRRP advertisement: VRRPv3 (RFC 5798), or VRRPv2 (RFC
// 3768, packet_v2.go) for pairing with a keepalived in its default mode.
// The state machine reads only what both versions carry.
type Advert struct {
	VRID     uint8
	Priority uint8
	// Interval is the Max Advertise Interval; it travels in centiseconds
	// (VRRPv2: Adver Int, in whole seconds).
	Interval time.Duration
	// Addrs are the virtual addresses: all IPv4 or all IPv6.
	Addrs []netip.Addr
	// Version is 3 or 2; Encode reads 0 as 3, Decode sets it.
	Version uint8
	// V2Auth is VRRPv2's authentication type and data; unused in v3.
	V2Auth V2Auth
}

// DecodeError says why a received packet was rejected. Reason is a short
// stable word used as the drops metric label.
type DecodeError struct {
	Reason string
	Detail string
}

func (e *DecodeError) Error() string { return "vrrp: " + e.Reason + ": " + e.Detail }

// Drop reasons produced by Decode.
const (
	ReasonTruncated = "truncated"
	ReasonVersion   = "version"
	ReasonType      = "type"
	ReasonChecksum  = "checksum"
	ReasonFamily    = "family"
)

func decodeErr(reason, format string, args ...any) error {
	return &DecodeError{Reason: reason, Detail: fmt.Sprintf(format, args...)}
}

// DropReason returns the metric label for an error from Decode, or "other".
func DropReason(err error) string {
	var de *DecodeError
	if errors.As(err, &de) {
		return de.Reason
	}
	return "other"
}

// Encode returns the wire form of a. src and dst are the IP source and
// destination of the packet: they enter the checksum for IPv6 and, with
// ChecksumRFC5798, for IPv4. The family of the addresses must match src.
func (a *Advert) Encode(src, dst netip.Addr, mode Checksum) ([]byte, error) {
	if a.Version == version2 {
		return a.encodeV2(src)
	}
	alen := 4
	if src.Is6() && !src.Is4In6() {
		alen = 16
	}
	if len(a.Addrs) > 255 {
		return nil, fmt.Errorf("vrrp: %d addresses, at most 255 fit", len(a.Addrs))
	}
	cs := a.Interval / intervalUnit
	if a.Interval%intervalUnit != 0 || cs < 1 || cs > maxIntervalCS {
		return nil, fmt.Errorf("vrrp: interval %v is not 10ms..40.95s in 10ms steps", a.Interval)
	}
	b := make([]byte, headerLen+alen*len(a.Addrs))
	b[0] = version3<<4 | typeAdvert
	b[1] = a.VRID
	b[2] = a.Priority
	b[3] = uint8(len(a.Addrs))
	binary.BigEndian.PutUint16(b[4:], uint16(cs))
	for i, ip := range a.Addrs {
		if (alen == 4) != ip.Unmap().Is4() {
			return nil, fmt.Errorf("vrrp: address %v is not the family of source %v", ip, src)
		}
		if alen == 4 {
			ip4 := ip.Unmap().As4()
			copy(b[headerLen+4*i:], ip4[:])
		} else {
			ip16 := ip.As16()
			copy(b[headerLen+16*i:], ip16[:])
		}
	}
	binary.BigEndian.PutUint16(b[6:], checksum(b, src, dst, alen == 16 || mode == ChecksumRFC5798))
	return b, nil
}

// Decode parses and verifies one VRRP message (the IP payload). src and dst
// are the packet's IP addresses; their family decides the address length.
// An IPv4 checksum is accepted in either form; the form found is returned.
// An authentication trailer (auth.go) after the addresses is not checked
// here: decode returns it to the caller that verifies it.
func Decode(b []byte, src, dst netip.Addr) (Advert, Checksum, error) {
	a, form, _, err := decode(b, src, dst)
	return a, form, err
}

// decode is Decode that also returns the bytes after the message proper:
// TrailerLen of them are an authentication trailer, which the IPv4
// checksum does not cover (the IPv6 one, computed by the kernel, does).
func decode(b []byte, src, dst netip.Addr) (a Advert, form Checksum, extra []byte, err error) {
	if len(b) < headerLen {
		return a, 0, nil, decodeErr(ReasonTruncated, "%d bytes, header is %d", len(b), headerLen)
	}
	v := b[0] >> 4
	if v != version3 && v != version2 {
		return a, 0, nil, decodeErr(ReasonVersion, "version %d, want 3 or 2", v)
	}
	if t := b[0] & 0x0f; t != typeAdvert {
		return a, 0, nil, decodeErr(ReasonType, "type %d, want 1 (advertisement)", t)
	}
	v6 := src.Is6() && !src.Is4In6()
	if v6 != (dst.Is6() && !dst.Is4In6()) {
		return a, 0, nil, decodeErr(ReasonFamily, "source %v and destination %v differ in family", src, dst)
	}
	if v == version2 {
		return decodeV2(b, v6)
	}
	alen := 4
	if v6 {
		alen = 16
	}
	n := int(b[3])
	pdu := headerLen + n*alen
	if len(b) < pdu {
		return a, 0, nil, decodeErr(ReasonTruncated, "%d bytes for %d addresses", len(b), n)
	}
	extra = b[pdu:]
	msg := b
	if !v6 && len(extra) == TrailerLen {
		msg = b[:pdu]
	}
	form = ChecksumRFC9568
	switch {
	case v6:
		if checksum(b, src, dst, true) != 0 {
			return a, 0, nil, decodeErr(ReasonChecksum, "IPv6 checksum %#04x does not verify", binary.BigEndian.Uint16(b[6:]))
		}
	case checksum(msg, src, dst, false) == 0:
	case checksum(msg, src, dst, true) == 0:
		form = ChecksumRFC5798
	default:
		return a, 0, nil, decodeErr(ReasonChecksum, "checksum %#04x verifies in neither form", binary.BigEndian.Uint16(b[6:]))
	}
	a.Version = version3
	a.VRID = b[1]
	a.Priority = b[2]
	a.Interval = time.Duration(binary.BigEndian.Uint16(b[4:])&maxIntervalCS) * intervalUnit
	a.Addrs = make([]netip.Addr, n)
	for i := range n {
		off := headerLen + i*alen
		if v6 {
			a.Addrs[i] = netip.AddrFrom16([16]byte(b[off : off+16]))
		} else {
			a.Addrs[i] = netip.AddrFrom4([4]byte(b[off : off+4]))
		}
	}
	return a, form, extra, nil
}

// checksum returns the Internet checksum of msg, optionally preceded by the
// pseudo-header of src and dst. Over a message that carries a correct
// checksum it returns 0; over one with a zero checksum field, the value to
// put there.
func checksum(msg []byte, src, dst netip.Addr, pseudo bool) uint16 {
	var sum uint32
	add := func(b []byte) {
		for len(b) >= 2 {
			sum += uint32(b[0])<<8 | uint32(b[1])
			b = b[2:]
		}
		if len(b) == 1 {
			sum += uint32(b[0]) << 8
		}
	}
	if pseudo {
		if src.Is4() || src.Is4In6() {
			s, d := src.Unmap().As4(), dst.Unmap().As4()
			add(s[:])
			add(d[:])
			sum += ProtocolNumber + uint32(len(msg))
		} else {
			s, d := src.As16(), dst.As16()
			add(s[:])
			add(d[:])
			sum += uint32(len(msg)>>16) + uint32(len(msg)&0xffff) + ProtocolNumber
		}
	}
	add(msg)
	for sum>>16 != 0 {
		sum = sum&0xffff + sum>>16
	}
	return ^uint16(sum)
}

// internetChecksum is checksum without a pseudo-header, for other users
// (ICMPv6 builds its own pseudo-header).
func internetChecksum(parts ...[]byte) uint16 {
	var sum uint32
	for _, b := range parts {
		for len(b) >= 2 {
			sum += uint32(b[0])<<8 | uint32(b[1])
			b = b[2:]
		}
		if len(b) == 1 {
			sum += uint32(b[0]) << 8
		}
	}
	for sum>>16 != 0 {
		sum = sum&0xffff + sum>>16
	}
	return ^uint16(sum)
}
