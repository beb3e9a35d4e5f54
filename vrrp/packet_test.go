package vrrp

import (
	"bytes"
	"encoding/hex"
	"errors"
	"net/netip"
	"reflect"
	"testing"
	"time"
)

func mustHex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

var (
	kaSrc4 = netip.MustParseAddr("192.168.77.2")
	kaSrc6 = netip.MustParseAddr("fe80::6475:6dff:fe68:11af")
)

// Captured with a raw socket from keepalived 2.2.7 (vrrp_version 3) in a
// netns: the IPv4 payload after the 20-byte IP header, and the IPv6 payload
// as received on a raw socket. keepalivedV2 is its default (VRRPv2) advert
// (more in packet_v2_test.go).
const (
	keepalivedV4 = "3133640100646e7ac0a84d0a"
	keepalivedV2 = "2133640100016d17c0a84d0a0000000000000000"
	keepalivedV6 = "3134960100325a65fd000077000000000000000000000010"
)

func TestDecodeKeepalivedCapture(t *testing.T) {
	tests := []struct {
		name     string
		payload  string
		src, dst netip.Addr
		want     Advert
		form     Checksum
	}{
		{"ipv4 keepalived default", keepalivedV4, kaSrc4, GroupV4,
			Advert{VRID: 51, Priority: 100, Interval: time.Second, Addrs: []netip.Addr{netip.MustParseAddr("192.168.77.10")}, Version: 3},
			ChecksumRFC5798},
		{"ipv6", keepalivedV6, kaSrc6, GroupV6,
			Advert{VRID: 52, Priority: 150, Interval: 500 * time.Millisecond, Addrs: []netip.Addr{netip.MustParseAddr("fd00:77::10")}, Version: 3},
			ChecksumRFC9568}, // IPv6 reports the default form: only one exists
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, form, err := Decode(mustHex(t, tt.payload), tt.src, tt.dst)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Decode = %+v, want %+v", got, tt.want)
			}
			if tt.src.Is4() && form != tt.form {
				t.Errorf("checksum form %v, want %v", form, tt.form)
			}
		})
	}
}

// TestEncodeGolden checks Encode against bytes laid out by hand from RFC
// 5798 section 5.1; the checksums were worked out by hand too (comments).
func TestEncodeGolden(t *testing.T) {
	vip := netip.MustParseAddr("192.168.77.10")
	tests := []struct {
		name     string
		ad       Advert
		src, dst netip.Addr
		mode     Checksum
		want     string
	}{
		// 3133 + 6401 + 0064 + c0a8 + 4d0a = 0x1a34a -> 0xa34b, ^ = 5cb4
		{"ipv4 message only", Advert{VRID: 51, Priority: 100, Interval: time.Second, Addrs: []netip.Addr{vip}},
			kaSrc4, GroupV4, ChecksumRFC9568, "31336401" + "0064" + "5cb4" + "c0a84d0a"},
		// The same plus c0a8 4d02 e000 0012 0070 000c: keepalived's bytes.
		{"ipv4 pseudo-header", Advert{VRID: 51, Priority: 100, Interval: time.Second, Addrs: []netip.Addr{vip}},
			kaSrc4, GroupV4, ChecksumRFC5798, keepalivedV4},
		// Mode is ignored for IPv6: the pseudo-header is mandatory.
		{"ipv6", Advert{VRID: 52, Priority: 150, Interval: 500 * time.Millisecond, Addrs: []netip.Addr{netip.MustParseAddr("fd00:77::10")}},
			kaSrc6, GroupV6, ChecksumRFC9568, keepalivedV6},
		{"priority 0 no addresses 40.95s", Advert{VRID: 255, Priority: 0, Interval: 4095 * 10 * time.Millisecond},
			kaSrc4, GroupV4, ChecksumRFC9568, "31ff0000" + "0fff" + "be01"}, // 31ff+0fff = 41fe,
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.ad.Encode(tt.src, tt.dst, tt.mode)
			if err != nil {
				t.Fatal(err)
			}
			if want := mustHex(t, tt.want); !bytes.Equal(got, want) {
				t.Errorf("Encode = %x, want %x", got, want)
			}
			back, form, err := Decode(got, tt.src, tt.dst)
			if err != nil {
				t.Fatalf("Decode(Encode) = %v", err)
			}
			if tt.src.Is4() && form != tt.mode {
				t.Errorf("round trip form %v, want %v", form, tt.mode)
			}
			if back.VRID != tt.ad.VRID || back.Priority != tt.ad.Priority || back.Interval != tt.ad.Interval || len(back.Addrs) != len(tt.ad.Addrs) {
				t.Errorf("round trip %+v, want %+v", back, tt.ad)
			}
		})
	}
}

func TestDecodeRejects(t *testing.T) {
	good := mustHex(t, keepalivedV4)
	mutate := func(f func(b []byte) []byte) []byte {
		b := append([]byte(nil), good...)
		return f(b)
	}
	tests := []struct {
		name   string
		b      []byte
		src    netip.Addr
		reason string
	}{
		{"short", good[:7], kaSrc4, ReasonTruncated},
		{"version 4 header", mutate(func(b []byte) []byte { b[0] = 0x41; return b }), kaSrc4, ReasonVersion},
		{"version 1 header", mutate(func(b []byte) []byte { b[0] = 0x11; return b }), kaSrc4, ReasonVersion},
		// A v3 advert relabelled v2 lacks the 8 bytes of v2 auth data.
		{"version 2 header on a v3 advert", mutate(func(b []byte) []byte { b[0] = 0x21; return b }), kaSrc4, ReasonTruncated},
		{"type 2", mutate(func(b []byte) []byte { b[0] = 0x32; return b }), kaSrc4, ReasonType},
		{"count beyond end", mutate(func(b []byte) []byte { b[3] = 9; return b }), kaSrc4, ReasonTruncated},
		{"checksum", mutate(func(b []byte) []byte { b[7]++; return b }), kaSrc4, ReasonChecksum},
		{"other source breaks pseudo-header sum", good, netip.MustParseAddr("192.168.77.3"), ReasonChecksum},
		{"family mismatch", good, kaSrc6, ReasonFamily},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := Decode(tt.b, tt.src, GroupV4)
			var de *DecodeError
			if !errors.As(err, &de) || de.Reason != tt.reason {
				t.Fatalf("Decode = %v, want reason %q", err, tt.reason)
			}
		})
	}
}

func TestEncodeRejects(t *testing.T) {
	tests := []struct {
		name string
		ad   Advert
	}{
		{"zero interval", Advert{Interval: 0}},
		{"not 10ms steps", Advert{Interval: 15 * time.Millisecond}},
		{"too long", Advert{Interval: 41 * time.Second}},
		{"mixed family", Advert{Interval: time.Second, Addrs: []netip.Addr{netip.MustParseAddr("::1")}}},
	}
	for _, tt := range tests {
		if _, err := tt.ad.Encode(kaSrc4, GroupV4, ChecksumRFC5798); err == nil {
			t.Errorf("%s: Encode succeeded", tt.name)
		}
	}
}

func FuzzDecode(f *testing.F) {
	f.Add(mustHex(f, keepalivedV4), true)
	f.Add(mustHex(f, keepalivedV6), false)
	f.Add([]byte{0x31, 1, 2, 3, 0, 0, 0, 0}, true)
	f.Fuzz(func(t *testing.T, b []byte, v4 bool) {
		src, dst := kaSrc6, GroupV6
		if v4 {
			src, dst = kaSrc4, GroupV4
		}
		a, form, err := Decode(b, src, dst)
		if err != nil {
			return
		}
		if a.Interval == 0 {
			return // decodable but not encodable: a peer bug we tolerate
		}
		again, err := a.Encode(src, dst, form)
		if err != nil {
			t.Fatalf("Encode(Decode(%x)) = %v", b, err)
		}
		b2, _, err := Decode(again, src, dst)
		if err != nil {
			t.Fatalf("Decode(Encode(Decode(%x))) = %v", b, err)
		}
		if !reflect.DeepEqual(a, b2) {
			t.Fatalf("round trip %+v != %+v", a, b2)
		}
	})
}
