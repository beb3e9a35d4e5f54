package director

import (
	"net/netip"
	"testing"

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
