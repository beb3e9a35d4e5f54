package checks

import (
	"context"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/lvsd/lvsd/config"
	"github.com/lvsd/lvsd/e2e/lab"
)

// pingLab is a client namespace cabled to a host that answers echo
// requests and to one that ignores them, over IPv4 and IPv6. The client
// gives up on a neighbour after one solicitation of 100 ms, so a dead
// address on its links is reported unreachable well inside a timeout.
type pingLab struct {
	client, up, mute *lab.NS
}

func newPingLab(t *testing.T) *pingLab {
	t.Helper()
	requireRoot(t)
	l := &pingLab{
		client: lab.NewNS(t, "cfgtypes-ping-client"),
		up:     lab.NewNS(t, "cfgtypes-ping-up"),
		mute:   lab.NewNS(t, "cfgtypes-ping-mute"),
	}
	l.client.Veth("eth0", l.up, "eth0")
	l.client.Veth("eth1", l.mute, "eth0")
	l.client.Addr("eth0", "10.77.1.2/24")
	l.client.Addr("eth0", "10.77.1.3/24")
	l.client.Addr("eth0", "fd77:1::2/64")
	l.up.Addr("eth0", "10.77.1.1/24")
	l.up.Addr("eth0", "fd77:1::1/64")
	l.client.Addr("eth1", "10.77.2.2/24")
	l.client.Addr("eth1", "fd77:2::2/64")
	l.mute.Addr("eth0", "10.77.2.1/24")
	l.mute.Addr("eth0", "fd77:2::1/64")
	l.mute.Sysctl("net.ipv4.icmp_echo_ignore_all", "1")
	l.mute.Sysctl("net.ipv6.icmp.echo_ignore_all", "1")
	for _, dev := range []string{"eth0", "eth1"} {
		for _, af := range []string{"ipv4", "ipv6"} {
			l.client.Sysctl("net."+af+".neigh."+dev+".mcast_solicit", "1")
			l.client.Sysctl("net."+af+".neigh."+dev+".retrans_time_ms", "100")
		}
	}
	for _, host := range []string{"10.77.1.1", "fd77:1::1", "10.77.2.1", "fd77:2::1"} {
		waitReachable(t, l.client, host)
	}
	return l
}

// probe runs one ping check from the client namespace, where the probe's
// socket must be opened.
func (l *pingLab) probe(t *testing.T, c *config.Check, target string, timeout time.Duration) Result {
	t.Helper()
	checker, err := New(complete(t, c), netip.AddrPortFrom(netip.MustParseAddr(target), 0))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var r Result
	if err := l.client.Do(func() error { r = checker.Check(ctx); return nil }); err != nil {
		t.Fatal(err)
	}
	return r
}

// TestPing pings real hosts over both kinds of ICMP socket: a raw socket
// (a new namespace lets no group use ping sockets) and an unprivileged
// datagram socket (once net.ipv4.ping_group_range allows every group).
func TestPing(t *testing.T) {
	l := newPingLab(t)
	for _, mode := range []struct {
		name, groups string
		raw          bool
	}{
		{name: "raw socket", groups: "1 0", raw: true},
		{name: "datagram socket", groups: "0 2147483647", raw: false},
	} {
		t.Run(mode.name, func(t *testing.T) {
			l.client.Sysctl("net.ipv4.ping_group_range", mode.groups)
			for _, target := range []string{"10.77.1.1", "fd77:1::1"} {
				var raw bool
				err := l.client.Do(func() error {
					s, err := openICMP(netip.MustParseAddr(target), netip.Addr{})
					if err == nil {
						raw = s.raw
						s.f.Close()
					}
					return err
				})
				if err != nil || raw != mode.raw {
					t.Fatalf("openICMP(%s): raw %v, %v; want raw %v", target, raw, err, mode.raw)
				}
			}
			for _, tc := range []struct {
				name, target string
				timeout      time.Duration
				healthy      bool
				class        string
			}{
				{"answering host", "10.77.1.1", 2 * time.Second, true, "ok"},
				{"answering host over IPv6", "fd77:1::1", 2 * time.Second, true, "ok"},
				{"host ignoring pings", "10.77.2.1", 300 * time.Millisecond, false, "timeout"},
				{"host ignoring pings over IPv6", "fd77:2::1", 300 * time.Millisecond, false, "timeout"},
				// Down before the timeout: the kernel reports the
				// failed neighbour lookup, or that there is no route.
				{"no host at the address", "10.77.1.99", 5 * time.Second, false, "unreachable"},
				{"no host at the address over IPv6", "fd77:1::99", 5 * time.Second, false, "unreachable"},
				{"no route", "10.99.0.1", 5 * time.Second, false, "unreachable"},
				{"no route over IPv6", "fd99::1", 5 * time.Second, false, "unreachable"},
			} {
				t.Run(tc.name, func(t *testing.T) {
					r := l.probe(t, &config.Check{Type: "ping"}, tc.target, tc.timeout)
					wantResult(t, r, tc.healthy, tc.class)
					if !strings.Contains(r.Reason, tc.target) {
						t.Errorf("reason %q does not name %s", r.Reason, tc.target)
					}
				})
			}
		})
	}
}

// TestPingCountAndSource: count requests are spread over the timeout and
// the first reply ends the probe; source_address is the requests' source.
// A raw socket in each host sees the echo requests that reach it.
func TestPingCountAndSource(t *testing.T) {
	l := newPingLab(t)
	seen := func(ns *lab.NS) <-chan netip.Addr {
		var pc net.PacketConn
		err := ns.Do(func() error {
			var err error
			pc, err = net.ListenPacket("ip4:icmp", "0.0.0.0")
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { pc.Close() })
		ch := make(chan netip.Addr, 100)
		go func() {
			buf := make([]byte, 1500)
			for {
				n, from, err := pc.ReadFrom(buf)
				if err != nil {
					return
				}
				if n > 0 && buf[0] == 8 { // echo request
					ch <- netip.MustParseAddr(from.String())
				}
			}
		}()
		return ch
	}
	upSeen, muteSeen := seen(l.up), seen(l.mute)

	r := l.probe(t, &config.Check{Type: "ping", Timeout: dur(600 * time.Millisecond), Settings: &PingSettings{Count: 3, Size: 200}},
		"10.77.2.1", 600*time.Millisecond)
	wantResult(t, r, false, "timeout")
	if !strings.Contains(r.Reason, "to 3 requests") {
		t.Errorf("reason %q does not count 3 requests", r.Reason)
	}
	for i := range 3 {
		select {
		case <-muteSeen:
		case <-time.After(5 * time.Second):
			t.Fatalf("the silent host saw %d of 3 echo requests", i)
		}
	}

	r = l.probe(t, &config.Check{Type: "ping", Interval: dur(10 * time.Second), Timeout: dur(6 * time.Second),
		SourceAddress: config.Addr{IP: netip.MustParseAddr("10.77.1.3")}, Settings: &PingSettings{Count: 3}}, "10.77.1.1", 6*time.Second)
	wantResult(t, r, true, "ok")
	select {
	case src := <-upSeen:
		if src.String() != "10.77.1.3" {
			t.Errorf("echo request came from %s, want source_address 10.77.1.3", src)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the host saw no echo request")
	}
	select {
	case src := <-upSeen:
		t.Errorf("a second echo request (from %s) after the first was answered", src)
	default:
	}
}

// TestPingCancel: a probe returns when its context is cancelled, long
// before its deadline.
func TestPingCancel(t *testing.T) {
	l := newPingLab(t)
	checker, err := New(complete(t, &config.Check{Type: "ping", Interval: dur(time.Minute), Timeout: dur(30 * time.Second)}),
		netip.MustParseAddrPort("10.77.2.1:0"))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	done := make(chan Result)
	go func() {
		_ = l.client.Do(func() error { done <- checker.Check(ctx); return nil })
	}()
	time.AfterFunc(100*time.Millisecond, cancel)
	select {
	case r := <-done:
		wantResult(t, r, false, "timeout")
	case <-time.After(10 * time.Second):
		t.Fatal("the probe ignored its cancelled context")
	}
}
