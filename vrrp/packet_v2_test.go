package vrrp

import (
	"bytes"
	"errors"
	"net/netip"
	"reflect"
	"testing"
	"time"
)

// Adverts keepalived 2.2.7 sent in its default mode (VRRPv2), captured off
// a veth with a packet socket in a netns, from 192.168.77.2 to 224.0.0.18
// with TTL 255: the VRRP message after the IP header.
//
//	vrrp_instance vi1 { virtual_router_id 51  priority 100  advert_int 1
//	  authentication { auth_type PASS  auth_pass secret12 }
//	  virtual_ipaddress { 192.168.77.10/24  192.168.77.11/24 } }
//	vrrp_instance vi2 { virtual_router_id 52  priority 150  advert_int 3
//	  authentication { auth_type PASS  auth_pass abc }
//	  virtual_ipaddress { 192.168.77.20/24 } }
//
// keepalivedV2 (packet_test.go) is VRID 51 without authentication.
const (
	kaV2Pass       = "213364020101f0e3c0a84d0ac0a84d0b7365637265743132"
	kaV2PassResign = "21330002010154e4c0a84d0ac0a84d0b7365637265743132" // SIGTERM: priority 0
	kaV2Short      = "21349601010375a7c0a84d146162630000000000"         // "abc", zero padded
	kaV2ShortResgn = "2134000101030ba8c0a84d146162630000000000"
)

var (
	kaVIP10 = netip.MustParseAddr("192.168.77.10")
	kaVIP11 = netip.MustParseAddr("192.168.77.11")
	kaVIP20 = netip.MustParseAddr("192.168.77.20")
)

// kaV2Adverts are the captures and what they say.
var kaV2Adverts = []struct {
	name string
	hex  string
	ad   Advert
}{
	{"no auth", keepalivedV2, Advert{VRID: 51, Priority: 100, Interval: time.Second, Addrs: []netip.Addr{kaVIP10}, Version: 2}},
	{"password", kaV2Pass, Advert{VRID: 51, Priority: 100, Interval: time.Second, Addrs: []netip.Addr{kaVIP10, kaVIP11},
		Version: 2, V2Auth: V2Password("secret12")}},
	{"password, priority 0", kaV2PassResign, Advert{VRID: 51, Priority: 0, Interval: time.Second, Addrs: []netip.Addr{kaVIP10, kaVIP11},
		Version: 2, V2Auth: V2Password("secret12")}},
	{"short password, 3s", kaV2Short, Advert{VRID: 52, Priority: 150, Interval: 3 * time.Second, Addrs: []netip.Addr{kaVIP20},
		Version: 2, V2Auth: V2Password("abc")}},
	{"short password, 3s, priority 0", kaV2ShortResgn, Advert{VRID: 52, Priority: 0, Interval: 3 * time.Second, Addrs: []netip.Addr{kaVIP20},
		Version: 2, V2Auth: V2Password("abc")}},
}

// TestV2KeepalivedCaptures decodes what keepalived sent, and encodes the
// same advert back to keepalived's very bytes: layout, auth data, padding
// and checksum.
func TestV2KeepalivedCaptures(t *testing.T) {
	for _, tt := range kaV2Adverts {
		t.Run(tt.name, func(t *testing.T) {
			raw := mustHex(t, tt.hex)
			got, form, err := Decode(raw, kaSrc4, GroupV4)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.ad) {
				t.Errorf("Decode = %+v, want %+v", got, tt.ad)
			}
			if form != ChecksumRFC9568 {
				t.Errorf("checksum form %v, want the message alone", form)
			}
			// The mode is ignored: RFC 3768 has one form. The source
			// does not enter it either.
			for _, mode := range []Checksum{ChecksumRFC5798, ChecksumRFC9568} {
				b, err := tt.ad.Encode(netip.MustParseAddr("10.1.2.3"), GroupV4, mode)
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(b, raw) {
					t.Errorf("Encode(%v) = %x, keepalived sent %x", mode, b, raw)
				}
			}
		})
	}
}

func TestV2Password(t *testing.T) {
	if a := V2Password(""); a != (V2Auth{}) {
		t.Errorf("no password = %+v, want type none and zero data", a)
	}
	if a := V2Password("secret12"); a.Type != V2AuthPassword || string(a.Data[:]) != "secret12" {
		t.Errorf("V2Password(secret12) = %+v", a)
	}
}

func TestDecodeV2Rejects(t *testing.T) {
	good := mustHex(t, kaV2Pass)
	mutate := func(f func(b []byte)) []byte {
		b := bytes.Clone(good)
		f(b)
		return b
	}
	// The checksum keepalived's v3 uses (with the IPv4 pseudo-header) is
	// not RFC 3768's.
	pseudo := mutate(func(b []byte) {
		b[6], b[7] = 0, 0
		sum := checksum(b, kaSrc4, GroupV4, true)
		b[6], b[7] = byte(sum>>8), byte(sum)
	})
	tests := []struct {
		name     string
		b        []byte
		src, dst netip.Addr
		reason   string
	}{
		{"no auth data", good[:16], kaSrc4, GroupV4, ReasonTruncated},
		{"auth data cut", good[:len(good)-1], kaSrc4, GroupV4, ReasonTruncated},
		{"count beyond end", mutate(func(b []byte) { b[3] = 3 }), kaSrc4, GroupV4, ReasonTruncated},
		{"checksum", mutate(func(b []byte) { b[7]++ }), kaSrc4, GroupV4, ReasonChecksum},
		{"password changed", mutate(func(b []byte) { b[len(b)-1] = 'X' }), kaSrc4, GroupV4, ReasonChecksum},
		{"pseudo-header checksum", pseudo, kaSrc4, GroupV4, ReasonChecksum},
		{"over IPv6", good, kaSrc6, GroupV6, ReasonFamily},
		{"type 2", mutate(func(b []byte) { b[0] = 0x22 }), kaSrc4, GroupV4, ReasonType},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := Decode(tt.b, tt.src, tt.dst)
			var de *DecodeError
			if !errors.As(err, &de) || de.Reason != tt.reason {
				t.Fatalf("Decode = %v, want reason %q", err, tt.reason)
			}
		})
	}
}

func TestEncodeV2Rejects(t *testing.T) {
	v4 := []netip.Addr{kaVIP10}
	tests := []struct {
		name string
		ad   Advert
		src  netip.Addr
	}{
		{"zero interval", Advert{Version: 2, Addrs: v4}, kaSrc4},
		{"not whole seconds", Advert{Version: 2, Interval: 1500 * time.Millisecond, Addrs: v4}, kaSrc4},
		{"beyond 8 bits of seconds", Advert{Version: 2, Interval: 256 * time.Second, Addrs: v4}, kaSrc4},
		{"IPv6 source", Advert{Version: 2, Interval: time.Second, Addrs: v4}, kaSrc6},
		{"IPv6 address", Advert{Version: 2, Interval: time.Second, Addrs: []netip.Addr{netip.MustParseAddr("fd00::1")}}, kaSrc4},
	}
	for _, tt := range tests {
		if _, err := tt.ad.Encode(tt.src, GroupV4, ChecksumRFC9568); err == nil {
			t.Errorf("%s: Encode succeeded", tt.name)
		}
	}
}

// FuzzDecodeV2: whatever decodes as VRRPv2 encodes back to the same bytes
// (the checksum aside: one's complement has two zeros) and decodes again to
// the same advert; nothing panics.
func FuzzDecodeV2(f *testing.F) {
	for _, c := range kaV2Adverts {
		f.Add(mustHex(f, c.hex))
	}
	f.Add([]byte{0x21, 1, 2, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		a, form, err := Decode(b, kaSrc4, GroupV4)
		if err != nil || a.Version != 2 {
			return
		}
		if form != ChecksumRFC9568 {
			t.Fatalf("v2 form %v", form)
		}
		if a.Interval == 0 {
			return // decodable but not encodable: dropped by the instance
		}
		again, err := a.Encode(kaSrc4, GroupV4, form)
		if err != nil {
			t.Fatalf("Encode(Decode(%x)) = %v", b, err)
		}
		pdu := headerLen + 4*len(a.Addrs) + V2AuthLen
		if !bytes.Equal(again[:6], b[:6]) || !bytes.Equal(again[8:], b[8:pdu]) {
			t.Fatalf("Encode(Decode(%x)) = %x", b, again)
		}
		b2, _, err := Decode(again, kaSrc4, GroupV4)
		if err != nil {
			t.Fatalf("Decode(Encode(Decode(%x))) = %v", b, err)
		}
		if !reflect.DeepEqual(a, b2) {
			t.Fatalf("round trip %+v != %+v", a, b2)
		}
	})
}
