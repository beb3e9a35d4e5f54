package director

import (
	"encoding/binary"
	"net/netip"

	"github.com/mdlayher/netlink"
)

// Netlink attributes appended in place to a request: a 4-byte header
// (length, type) in host byte order, the payload, padding to 4 bytes.
// This is the encoding of netlink.AttributeEncoder, whose decoder
// TestNetlinkEncodeDecode reads it back with.

func appendAttrHeader(b []byte, typ uint16, size int) []byte {
	b = binary.NativeEndian.AppendUint16(b, uint16(4+size))
	return binary.NativeEndian.AppendUint16(b, typ)
}

func pad(b []byte) []byte {
	for len(b)%4 != 0 {
		b = append(b, 0)
	}
	return b
}

func appendU16(b []byte, typ, v uint16) []byte {
	return pad(binary.NativeEndian.AppendUint16(appendAttrHeader(b, typ, 2), v))
}

func appendU32(b []byte, typ uint16, v uint32) []byte {
	return binary.NativeEndian.AppendUint32(appendAttrHeader(b, typ, 4), v)
}

// appendBE16 appends a port, which IPVS takes in network byte order.
func appendBE16(b []byte, typ, v uint16) []byte {
	return pad(binary.BigEndian.AppendUint16(appendAttrHeader(b, typ, 2), v))
}

// appendString appends s NUL-terminated.
func appendString(b []byte, typ uint16, s string) []byte {
	b = appendAttrHeader(b, typ, len(s)+1)
	return pad(append(append(b, s...), 0))
}

// appendAddr appends 4 bytes for IPv4, 16 for IPv6 and none for the zero
// Addr, as Addr.AsSlice gives them.
func appendAddr(b []byte, typ uint16, a netip.Addr) []byte {
	switch {
	case a.Is4():
		v := a.As4()
		return append(appendAttrHeader(b, typ, 4), v[:]...)
	case a.Is6():
		v := a.As16()
		return append(appendAttrHeader(b, typ, 16), v[:]...)
	}
	return appendAttrHeader(b, typ, 0)
}

// appendNested opens a nested attribute; endNested, given where it
// started, sets its length once its attributes follow.
func appendNested(b []byte, typ uint16) []byte { return appendAttrHeader(b, typ|netlink.Nested, 0) }

func endNested(b []byte, start int) []byte {
	binary.NativeEndian.PutUint16(b[start:], uint16(len(b)-start))
	return b
}
