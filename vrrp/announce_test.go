package vrrp

import (
	"bytes"
	"net"
	"net/netip"
	"strings"
	"testing"
)

func TestGratuitousARP(t *testing.T) {
	mac := net.HardwareAddr{0x02, 0, 0, 0, 0, 0x0a}
	got := GratuitousARP(mac, netip.MustParseAddr("192.0.2.10"))
	want := mustHex(t, strings.Join([]string{
		"ffffffffffff", "02000000000a", "0806", // Ethernet: broadcast from our MAC, ARP
		"0001", "0800", "06", "04", "0001", // Ethernet/IPv4, request
		"02000000000a", "c000020a", // sender: our MAC, the VIP
		"000000000000", "c000020a", // target: unknown MAC, the VIP
		strings.Repeat("00", 18), // padding to 60 bytes
	}, ""))
	if !bytes.Equal(got, want) {
		t.Errorf("GratuitousARP =\n%x\nwant\n%x", got, want)
	}
}

func TestUnsolicitedNA(t *testing.T) {
	mac := net.HardwareAddr{0x02, 0, 0, 0, 0, 0x0a}
	src := netip.MustParseAddr("fe80::1")
	target := netip.MustParseAddr("2001:db8::10")
	got := UnsolicitedNA(mac, src, target)
	want := mustHex(t, strings.Join([]string{
		"333300000001", "02000000000a", "86dd", // to all-nodes multicast MAC
		"60000000", "0020", "3a", "ff", // 32-byte ICMPv6 payload, hop limit 255
		"fe800000000000000000000000000001", "ff020000000000000000000000000001",
		"88", "00", "0000", "20000000", // NA, R=0 S=0 O=1
		"20010db8000000000000000000000010", // target
		"0201", "02000000000a",             // target link-layer address option
	}, ""))
	// The checksum is checked separately below: blank it in both.
	cs := 14 + 40 + 2
	copy(want[cs:], got[cs:cs+2])
	if !bytes.Equal(got, want) {
		t.Errorf("UnsolicitedNA =\n%x\nwant\n%x", got, want)
	}
	// The ICMPv6 checksum verifies over the pseudo-header.
	s, d := src.As16(), netip.MustParseAddr("ff02::1").As16()
	pseudo := append(append(append([]byte{}, s[:]...), d[:]...), 0, 0, 0, 32, 0, 0, 0, 58)
	if c := internetChecksum(pseudo, got[14+40:]); c != 0 {
		t.Errorf("ICMPv6 checksum does not verify (%#04x)", c)
	}
}
