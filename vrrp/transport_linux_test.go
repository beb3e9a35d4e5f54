package vrrp

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// netnsPair makes two namespaces joined by a veth pair (eth0 on both
// sides), with IPv4 addresses and IPv6 link-local ones without DAD.
func netnsPair(t *testing.T) (a, b string) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root for network namespaces")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("needs ip(8)")
	}
	a = fmt.Sprintf("vrrpt-a-%d", os.Getpid())
	b = fmt.Sprintf("vrrpt-b-%d", os.Getpid())
	run := func(argv ...string) {
		t.Helper()
		if out, err := exec.Command(argv[0], argv[1:]...).CombinedOutput(); err != nil {
			t.Fatalf("%s: %v: %s", strings.Join(argv, " "), err, out)
		}
	}
	for _, ns := range []string{a, b} {
		run("ip", "netns", "add", ns)
		t.Cleanup(func() { exec.Command("ip", "netns", "del", ns).Run() })
		run("ip", "netns", "exec", ns, "sysctl", "-qw", "net.ipv6.conf.default.accept_dad=0")
	}
	run("ip", "-n", a, "link", "add", "eth0", "type", "veth", "peer", "name", "eth0", "netns", b)
	for i, ns := range []string{a, b} {
		run("ip", "-n", ns, "addr", "add", fmt.Sprintf("10.77.0.%d/24", i+1), "dev", "eth0")
		run("ip", "-n", ns, "link", "set", "eth0", "up")
	}
	for _, ns := range []string{a, b} {
		for end := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
			out, _ := exec.Command("ip", "-n", ns, "-6", "addr", "show", "dev", "eth0", "scope", "link").Output()
			if strings.Contains(string(out), "fe80") && !strings.Contains(string(out), "tentative") {
				break
			}
			if time.Now().After(end) {
				t.Fatalf("%s: no IPv6 link-local address", ns)
			}
		}
	}
	return a, b
}

// inNetns runs fn on a thread inside namespace ns; sockets it opens stay
// in ns.
func inNetns(t *testing.T, ns string, fn func()) {
	t.Helper()
	target, err := os.Open("/run/netns/" + ns)
	if err != nil {
		t.Fatal(err)
	}
	defer target.Close()
	done := make(chan struct{})
	go func() {
		defer close(done)
		runtime.LockOSThread() // never unlocked: the thread dies with the goroutine
		if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
			t.Error(err)
			return
		}
		fn()
	}()
	<-done
}

func openIn(t *testing.T, ns string, v6, multicast bool) (Conn, netip.Addr) {
	t.Helper()
	var c Conn
	var src netip.Addr
	inNetns(t, ns, func() {
		var err error
		if src, err = primaryAddress("eth0", !v6); err != nil {
			t.Error(err)
			return
		}
		if c, err = (RawTransport{}).Open("eth0", src, multicast); err != nil {
			t.Error(err)
		}
	})
	if c == nil {
		t.FailNow()
	}
	t.Cleanup(func() { c.Close() })
	return c, src
}

// packets feeds everything c receives into a channel until c is closed.
func packets(c Conn) <-chan Packet {
	ch := make(chan Packet, 16)
	go func() {
		for {
			p, err := c.Receive()
			if err != nil {
				return
			}
			ch <- p
		}
	}()
	return ch
}

// receiveWithin returns the next packet, or ok=false if none comes in d.
func receiveWithin(ch <-chan Packet, d time.Duration) (Packet, bool) {
	select {
	case p := <-ch:
		return p, true
	case <-time.After(d):
		return Packet{}, false
	}
}

func TestRawTransport(t *testing.T) {
	a, b := netnsPair(t)
	for _, tt := range []struct {
		name      string
		v6        bool
		multicast bool
	}{{"ipv4 multicast", false, true}, {"ipv6 multicast", true, true}, {"ipv4 unicast", false, false}, {"ipv6 unicast", true, false}} {
		t.Run(tt.name, func(t *testing.T) {
			ca, srcA := openIn(t, a, tt.v6, tt.multicast)
			cb, srcB := openIn(t, b, tt.v6, tt.multicast)
			dst := GroupV4
			if tt.v6 {
				dst = GroupV6
			}
			if !tt.multicast {
				dst = srcB
			}
			vip := netip.MustParseAddr("10.77.0.100")
			if tt.v6 {
				vip = netip.MustParseAddr("fd77::100")
			}
			ad := Advert{VRID: 7, Priority: 150, Interval: 100 * time.Millisecond, Addrs: []netip.Addr{vip}}
			pkt, err := ad.Encode(srcA, dst, ChecksumRFC5798)
			if err != nil {
				t.Fatal(err)
			}
			// The advert path allocates nothing (issue 11: no garbage, no
			// reason for the collector to stop the timing thread). Measured
			// before any goroutine receives: AllocsPerRun counts theirs too.
			if n := testing.AllocsPerRun(100, func() { ca.Send(pkt, dst) }); n != 0 {
				t.Errorf("Send allocates %v times per advert, want 0", n)
			}
			inA, inB := packets(ca), packets(cb)
			// Several sends: the first multicast packets can race the join.
			var p Packet
			var ok bool
			for range 5 {
				if err := ca.Send(pkt, dst); err != nil {
					t.Fatal(err)
				}
				if p, ok = receiveWithin(inB, 200*time.Millisecond); ok {
					break
				}
			}
			if !ok {
				t.Fatal("nothing received")
			}
			if p.Src != srcA || p.Dst != dst || p.TTL != 255 {
				t.Errorf("received src %v dst %v ttl %d, want %v %v 255", p.Src, p.Dst, p.TTL, srcA, dst)
			}
			got, _, err := Decode(p.Payload, p.Src, p.Dst)
			if err != nil || got.Priority != 150 || got.Addrs[0] != vip {
				t.Errorf("Decode = %+v, %v", got, err)
			}
			// Multicast loop is off: the sender does not hear itself.
			if tt.multicast {
				if p, ok := receiveWithin(inA, 300*time.Millisecond); ok {
					t.Errorf("sender received its own advert from %v", p.Src)
				}
			}
		})
	}
}

// primaryAddress must find the link-local address for IPv6 (RFC 5798
// 5.1.2.1) even when a global one is listed first.
func TestPrimaryAddressIPv6IsLinkLocal(t *testing.T) {
	a, _ := netnsPair(t)
	exec.Command("ip", "-n", a, "addr", "add", "fd77::1/64", "dev", "eth0", "nodad").Run()
	inNetns(t, a, func() {
		src, err := primaryAddress("eth0", false)
		if err != nil || !src.IsLinkLocalUnicast() {
			t.Errorf("primaryAddress = %v, %v; want a link-local address", src, err)
		}
		if _, err := net.InterfaceByName("eth0"); err != nil {
			t.Error(err)
		}
	})
}

// TestReceivePending: a packet queued in the socket is handed over without
// waiting, even while another goroutine is blocked in Receive, and an
// empty socket answers at once.
func TestReceivePending(t *testing.T) {
	a, b := netnsPair(t)
	ca, srcA := openIn(t, a, false, false)
	cb, srcB := openIn(t, b, false, false)
	pr := cb.(pendingReader)
	if _, ok := pr.ReceivePending(); ok {
		t.Fatal("a packet from an empty socket")
	}
	blocked := make(chan struct{})
	go func() { // a receiver that never gets the CPU in time: it waits in Receive
		close(blocked)
		cb.Receive()
	}()
	<-blocked
	ad := Advert{VRID: 7, Priority: 150, Interval: 100 * time.Millisecond, Addrs: []netip.Addr{netip.MustParseAddr("10.77.0.100")}}
	pkt, err := ad.Encode(srcA, srcB, ChecksumRFC5798)
	if err != nil {
		t.Fatal(err)
	}
	for end := time.Now().Add(5 * time.Second); time.Now().Before(end); {
		if err := ca.Send(pkt, srcB); err != nil {
			t.Fatal(err)
		}
		if p, ok := pr.ReceivePending(); ok {
			if p.Src != srcA || p.TTL != 255 {
				t.Errorf("pending packet from %v ttl %d", p.Src, p.TTL)
			}
			return
		}
		time.Sleep(time.Millisecond) // let the packet cross the veth (the loop waits on the result)
	}
	t.Fatal("no pending packet read (or the blocked Receive took them all)")
}
