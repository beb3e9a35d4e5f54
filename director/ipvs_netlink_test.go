package director

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"testing"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// The kernel dumps services and destinations with the same attributes it
// takes in NEW_SERVICE/NEW_DEST, so encoding then decoding must give back
// the same values; the e2e round-trip test checks the kernel side.
func TestNetlinkEncodeDecode(t *testing.T) {
	for _, s := range []Service{
		{Key: ServiceKey{Family: unix.AF_INET, Protocol: unix.IPPROTO_TCP, Addr: netip.MustParseAddr("192.0.2.1"), Port: 2170},
			Scheduler: "wlc", Flags: FlagPersistent, Timeout: 300, Netmask: 24},
		{Key: ServiceKey{Family: unix.AF_INET6, Protocol: unix.IPPROTO_UDP, Addr: netip.MustParseAddr("2001:db8::1"), Port: 53},
			Scheduler: "rr", Flags: FlagOnePacket, Netmask: 128},
		{Key: ServiceKey{Family: unix.AF_INET6, FWMark: 9}, Scheduler: "sh", Flags: FlagSched1 | FlagSched2, Netmask: 128},
	} {
		msg := encodeServiceKey(s, true)
		got, err := decodeService(msg)
		if err != nil {
			t.Fatal(err)
		}
		if got.Service != s {
			t.Errorf("service round trip:\n got %+v\nwant %+v", got.Service, s)
		}
	}
	for _, d := range []Dest{
		{Addr: netip.MustParseAddrPort("10.0.0.1:80"), Weight: 7, Forward: ForwardNAT, Upper: 100, Lower: 10},
		{Addr: netip.MustParseAddrPort("[2001:db8::5]:0"), Weight: 0, Forward: ForwardDR},
		{Addr: netip.MustParseAddrPort("[2001:db8::5]:53"), Weight: 1, Forward: ForwardTunnel},
	} {
		got, err := decodeDest(encodeDest(d, true), familyOf(d.Addr.Addr()))
		if err != nil {
			t.Fatal(err)
		}
		if got != d {
			t.Errorf("dest round trip:\n got %+v\nwant %+v", got, d)
		}
	}
}

// TestNetlinkAttrsMatchAttributeEncoder: the in-place attribute encoding
// gives byte for byte what netlink.AttributeEncoder gave before it, for
// every request kind (the reference encoders below are the old code).
func TestNetlinkAttrsMatchAttributeEncoder(t *testing.T) {
	svcs := []Service{
		{Key: ServiceKey{Family: unix.AF_INET, Protocol: unix.IPPROTO_TCP, Addr: netip.MustParseAddr("192.0.2.1"), Port: 2170},
			Scheduler: "wlc", Flags: FlagPersistent, Timeout: 300, Netmask: 24},
		{Key: ServiceKey{Family: unix.AF_INET6, Protocol: unix.IPPROTO_UDP, Addr: netip.MustParseAddr("2001:db8::1"), Port: 53},
			Scheduler: "rr", Flags: FlagOnePacket | flagHashed, Netmask: 128},
		{Key: ServiceKey{Family: unix.AF_INET6, FWMark: 9}, Scheduler: "sh", Flags: FlagSched1 | FlagSched2, Netmask: 128},
		{Key: ServiceKey{Family: unix.AF_INET, Protocol: unix.IPPROTO_SCTP, Addr: netip.MustParseAddr("10.0.0.1"), Port: 0}, Scheduler: "lblcr"},
	}
	dests := []Dest{
		{Addr: netip.MustParseAddrPort("10.0.0.1:80"), Weight: 7, Forward: ForwardNAT, Upper: 100, Lower: 10},
		{Addr: netip.MustParseAddrPort("[2001:db8::5]:0"), Weight: 0, Forward: ForwardDR},
		{Addr: netip.MustParseAddrPort("[2001:db8::5]:53"), Weight: 65535, Forward: ForwardTunnel},
	}
	for _, s := range svcs {
		for _, full := range []bool{false, true} {
			if got, want := encodeServiceKey(s, full), refEncodeServiceKey(s, full); !bytes.Equal(got, want) {
				t.Errorf("service %v full=%v:\n got %x\nwant %x", s.Key, full, got, want)
			}
		}
		for _, d := range dests {
			for kind := OpNewService; kind <= OpDelService; kind++ {
				op := Op{Kind: kind, Service: s, Dest: d}
				a, b := &Kernel{family: 42}, &Kernel{family: 42}
				cmd, attrs := refEncodeOp(op)
				want, _ := a.message(nil, cmd, unix.NLM_F_ACK, attrs)
				if got := b.appendOp(nil, op, unix.NLM_F_ACK); !bytes.Equal(got, want) {
					t.Errorf("%v of %v:\n got %x\nwant %x", kind, op.Service.Key, got, want)
				}
			}
		}
	}
	for _, d := range dests {
		for _, full := range []bool{false, true} {
			if got, want := encodeDest(d, full), refEncodeDest(d, full); !bytes.Equal(got, want) {
				t.Errorf("dest %v full=%v:\n got %x\nwant %x", d.Addr, full, got, want)
			}
		}
	}
	if got, want := nested(ipvsCmdAttrService, nil), refNested(ipvsCmdAttrService, nil); !bytes.Equal(got, want) {
		t.Errorf("empty nested:\n got %x\nwant %x", got, want)
	}
}

func refNested(typ uint16, inner []byte) []byte {
	ae := netlink.NewAttributeEncoder()
	ae.Bytes(typ|netlink.Nested, inner)
	b, _ := ae.Encode()
	return b
}

func refEncodeServiceKey(s Service, full bool) []byte {
	ae := netlink.NewAttributeEncoder()
	ae.Uint16(svcAttrAF, s.Key.Family)
	if s.Key.FWMark != 0 {
		ae.Uint32(svcAttrFWMark, s.Key.FWMark)
	} else {
		ae.Uint16(svcAttrProtocol, s.Key.Protocol)
		ae.Bytes(svcAttrAddr, s.Key.Addr.AsSlice())
		ae.Bytes(svcAttrPort, binary.BigEndian.AppendUint16(nil, s.Key.Port))
	}
	if full {
		ae.String(svcAttrSchedName, s.Scheduler)
		flags := binary.NativeEndian.AppendUint32(nil, s.Flags&userFlags)
		ae.Bytes(svcAttrFlags, binary.NativeEndian.AppendUint32(flags, ^uint32(0)))
		ae.Uint32(svcAttrTimeout, s.Timeout)
		ae.Uint32(svcAttrNetmask, netmaskToKernel(s.Key.Family, s.Netmask))
	}
	b, _ := ae.Encode()
	return refNested(ipvsCmdAttrService, b)
}

func refEncodeDest(d Dest, full bool) []byte {
	ae := netlink.NewAttributeEncoder()
	ae.Bytes(destAttrAddr, d.Addr.Addr().AsSlice())
	ae.Bytes(destAttrPort, binary.BigEndian.AppendUint16(nil, d.Addr.Port()))
	ae.Uint16(destAttrAF, familyOf(d.Addr.Addr()))
	if full {
		ae.Uint32(destAttrFwd, uint32(d.Forward))
		ae.Uint32(destAttrWeight, uint32(d.Weight))
		ae.Uint32(destAttrUThresh, d.Upper)
		ae.Uint32(destAttrLThresh, d.Lower)
	}
	b, _ := ae.Encode()
	return refNested(ipvsCmdAttrDest, b)
}

func refEncodeOp(op Op) (uint8, []byte) {
	switch op.Kind {
	case OpNewService:
		return ipvsCmdNewService, refEncodeServiceKey(op.Service, true)
	case OpUpdateService:
		return ipvsCmdSetService, refEncodeServiceKey(op.Service, true)
	case OpDelService:
		return ipvsCmdDelService, refEncodeServiceKey(op.Service, false)
	case OpNewDest:
		return ipvsCmdNewDest, append(refEncodeServiceKey(op.Service, false), refEncodeDest(op.Dest, true)...)
	case OpUpdateDest:
		return ipvsCmdSetDest, append(refEncodeServiceKey(op.Service, false), refEncodeDest(op.Dest, true)...)
	default:
		return ipvsCmdDelDest, append(refEncodeServiceKey(op.Service, false), refEncodeDest(op.Dest, false)...)
	}
}
