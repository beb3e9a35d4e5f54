package e2e

import (
	"net"
	"net/netip"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/lvsd/lvsd/e2e/lab"
	"github.com/lvsd/lvsd/vrrp"
)

// TestVRRPUnicastTTL: a unicast pair on one link keeps RFC 5798's TTL-255
// proof with min_ttl = 255. An advert that a router forwarded (here: sent
// with TTL 64, spoofing the peer) is dropped, while the same advert takes
// the master's VIP once min_ttl is reloaded away. unicast_ttl sets what a
// node sends: at 64, its peer's min_ttl = 255 drops every advert (split
// brain), and reloaded to 255 the pair is whole again.
func TestVRRPUnicastTTL(t *testing.T) {
	l := newVRRPLabNamed(t, "auth-")
	atkNS := lab.NewNS(t, "auth-atk")
	atkNS.Veth("eth0", l.sw, "pa")
	l.sw.Link("set", "pa", "master", "br0")
	atk := openWire(t, atkNS, "eth0")
	v1 := lvsdVRRP{priority: 200, preempt: true, peer: "10.9.0.2", extra: "unicast_ttl = 64\nmin_ttl = 255\n"}
	v2 := lvsdVRRP{priority: 100, preempt: true, peer: "10.9.0.1", extra: "min_ttl = 255\n"}
	p1 := l.startLVSD(l.d1, v1)
	l.startLVSD(l.d2, v2)
	waitFor(t, scaled(3*takeoverWithin), "split brain: d2 drops d1's TTL-64 adverts", func() bool {
		return holdsVIP(l.d1, vrrpVIP) && holdsVIP(l.d2, vrrpVIP)
	})
	reload := func(v lvsdVRRP) {
		if err := os.WriteFile(l.configPath(l.d1), []byte(v.config(l.socket(l.d1))), 0o644); err != nil {
			t.Fatal(err)
		}
		p1.Signal(syscall.SIGHUP)
	}
	v1.extra = "unicast_ttl = 255\nmin_ttl = 255\n"
	reload(v1)
	l.master(l.d1, l.d2, vrrpVIP, 2*takeoverWithin)

	// A priority-254 advert "from d2" that crossed a router.
	mac, err := net.ParseMAC(macOf(l.d1))
	if err != nil {
		t.Fatal(err)
	}
	src, dst := netip.MustParseAddr("10.9.0.2"), netip.MustParseAddr("10.9.0.1")
	ad := vrrp.Advert{VRID: 51, Priority: 254, Interval: vrrpInterval(), Addrs: []netip.Addr{netip.MustParseAddr(vrrpVIP)}}
	forgery, err := ad.Encode(src, dst, vrrp.ChecksumRFC5798)
	if err != nil {
		t.Fatal(err)
	}
	end := time.Now().Add(scaled(time.Second))
	for time.Now().Before(end) {
		if err := atk.sendIP(src, dst, mac, 64, forgery); err != nil {
			t.Fatal(err)
		}
		time.Sleep(vrrpInterval() / 2)
	}
	l.stillMaster(l.d1, l.d2, vrrpVIP, 500*time.Millisecond)

	v1.extra = "unicast_ttl = 255\n"
	reload(v1)
	waitFor(t, scaled(3*time.Second), "the same forgery to take d1's VIP without min_ttl", func() bool {
		if err := atk.sendIP(src, dst, mac, 64, forgery); err != nil {
			t.Fatal(err)
		}
		time.Sleep(vrrpInterval())
		return !holdsVIP(l.d1, vrrpVIP)
	})
}
