package checks

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lvsd/lvsd/config"
	"github.com/lvsd/lvsd/e2e/lab"
)

// udpServer answers each datagram: "PING..." with "PONG", anything else
// with itself. It remembers where the last datagram came from.
type udpServer struct {
	pc   net.PacketConn
	mu   sync.Mutex
	from netip.Addr
}

func startUDPServer(t *testing.T, pc net.PacketConn) *udpServer {
	t.Helper()
	s := &udpServer{pc: pc}
	t.Cleanup(func() { pc.Close() })
	go func() {
		buf := make([]byte, 2048)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			s.mu.Lock()
			s.from = netip.MustParseAddrPort(from.String()).Addr().Unmap()
			s.mu.Unlock()
			reply := buf[:n]
			if bytes.HasPrefix(reply, []byte("PING")) {
				reply = []byte("PONG")
			}
			_, _ = pc.WriteTo(reply, from)
		}
	}()
	return s
}

func (s *udpServer) addr() netip.AddrPort { return netip.MustParseAddrPort(s.pc.LocalAddr().String()) }

func (s *udpServer) lastFrom() netip.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.from
}

func listenUDP(t *testing.T, addr string) net.PacketConn {
	t.Helper()
	pc, err := net.ListenPacket("udp", addr)
	if err != nil {
		t.Skipf("cannot listen on %s: %v", addr, err)
	}
	return pc
}

// silentUDP is a port that takes datagrams and never answers.
func silentUDP(t *testing.T, addr string) netip.AddrPort {
	t.Helper()
	pc := listenUDP(t, addr)
	t.Cleanup(func() { pc.Close() })
	return netip.MustParseAddrPort(pc.LocalAddr().String())
}

// closedUDP is a port nothing listens on: the kernel answers datagrams to
// it with an ICMP port unreachable.
func closedUDP(t *testing.T, addr string) netip.AddrPort {
	t.Helper()
	pc := listenUDP(t, addr)
	ap := netip.MustParseAddrPort(pc.LocalAddr().String())
	pc.Close()
	return ap
}

// udpCheckFromFile loads a udp check the way lvsd does, for keys a check
// built in Go cannot express (require_reply = false).
func udpCheckFromFile(t *testing.T, keys string) *config.Check {
	t.Helper()
	src := fmt.Sprintf("[[service]]\nvip = \"192.0.2.1\"\nport = 53\nprotocol = \"udp\"\n[[service.check]]\ntype = \"udp\"\n%s\n", keys)
	cfg, err := config.Parse("udp.toml", []byte(src))
	if err != nil {
		t.Fatalf("%v\n%s", err, src)
	}
	return cfg.Services[0].Checks[0]
}

func TestUDP(t *testing.T) {
	for _, family := range []struct{ name, loopback string }{{"IPv4", "127.0.0.1"}, {"IPv6", "[::1]"}} {
		t.Run(family.name, func(t *testing.T) {
			echo := startUDPServer(t, listenUDP(t, family.loopback+":0")).addr()
			silent := silentUDP(t, family.loopback+":0")
			closed := closedUDP(t, family.loopback+":0")
			for _, tc := range []struct {
				name    string
				check   *config.Check
				target  netip.AddrPort
				timeout time.Duration
				healthy bool
				class   string
			}{
				{"echo server, any reply", &config.Check{Type: "udp", Settings: &UDPSettings{Payload: "hello"}}, echo, time.Second, true, "ok"},
				{"expected reply", &config.Check{Type: "udp", Settings: &UDPSettings{Payload: "PING\n", Expect: "PONG"}}, echo, time.Second, true, "ok"},
				{"wrong reply", &config.Check{Type: "udp", Settings: &UDPSettings{Payload: "hello", Expect: "PONG"}}, echo, time.Second, false, "expect"},
				{"hex payload and reply", &config.Check{Type: "udp", Settings: &UDPSettings{PayloadHex: "00 01 ff 7f", ExpectHex: "00:01:ff"}}, echo, time.Second, true, "ok"},
				{"wrong hex reply", &config.Check{Type: "udp", Settings: &UDPSettings{PayloadHex: "0001", ExpectHex: "0002"}}, echo, time.Second, false, "expect"},
				// Down at once: the deadline is far, the class is not timeout.
				{"closed port", &config.Check{Type: "udp", Settings: &UDPSettings{Payload: "hello"}}, closed, 10 * time.Second, false, "refused"},
				{"silent port", &config.Check{Type: "udp", Settings: &UDPSettings{Payload: "hello"}}, silent, 300 * time.Millisecond, false, "timeout"},
				{"silent port, require_reply off", udpCheckFromFile(t, "payload = \"hello\"\nrequire_reply = false"), silent, 300 * time.Millisecond, true, "ok"},
				{"closed port, require_reply off", udpCheckFromFile(t, "require_reply = false"), closed, 10 * time.Second, false, "refused"},
			} {
				t.Run(tc.name, func(t *testing.T) {
					c := tc.check
					if !c.Complete() {
						c = complete(t, c)
					}
					checker, err := New(c, tc.target)
					if err != nil {
						t.Fatal(err)
					}
					ctx, cancel := context.WithTimeout(context.Background(), tc.timeout)
					defer cancel()
					r := checker.Check(ctx)
					wantResult(t, r, tc.healthy, tc.class)
					if !strings.Contains(r.Reason, tc.target.String()) {
						t.Errorf("reason %q does not name %s", r.Reason, tc.target)
					}
				})
			}
		})
	}
}

func TestUDPSourceAddress(t *testing.T) {
	srv := startUDPServer(t, listenUDP(t, "127.0.0.1:0"))
	c := &config.Check{Type: "udp", SourceAddress: srcAddr("127.0.0.4")}
	wantResult(t, runOnce(t, c, srv.addr(), time.Second), true, "ok")
	if got := srv.lastFrom(); got.String() != "127.0.0.4" {
		t.Errorf("server saw the probe from %s, want 127.0.0.4", got)
	}
}

// TestUDPRealHosts probes a host in another namespace over a veth, where
// the ICMP errors cross a link: an echo server, a closed port (down at
// once), a silent port (timeout), an address nobody holds (unreachable
// once neighbour discovery fails, before the timeout) and no route.
func TestUDPRealHosts(t *testing.T) {
	requireRoot(t)
	client, host := lab.NewNS(t, "cfgtypes-udp-client"), lab.NewNS(t, "cfgtypes-udp-host")
	client.Veth("eth0", host, "eth0")
	client.Addr("eth0", "10.78.1.2/24")
	client.Addr("eth0", "fd78:1::2/64")
	host.Addr("eth0", "10.78.1.1/24")
	host.Addr("eth0", "fd78:1::1/64")
	for _, af := range []string{"ipv4", "ipv6"} {
		client.Sysctl("net."+af+".neigh.eth0.mcast_solicit", "1")
		client.Sysctl("net."+af+".neigh.eth0.retrans_time_ms", "100")
	}
	waitReachable(t, client, "10.78.1.1")
	waitReachable(t, client, "fd78:1::1")
	for _, family := range []struct{ name, host, dead, unrouted string }{
		{"IPv4", "10.78.1.1", "10.78.1.99", "10.99.0.1"},
		{"IPv6", "fd78:1::1", "fd78:1::99", "fd99::1"},
	} {
		t.Run(family.name, func(t *testing.T) {
			pc, err := host.ListenPacket("udp", net.JoinHostPort(family.host, "5353"))
			if err != nil {
				t.Fatal(err)
			}
			startUDPServer(t, pc)
			silent, err := host.ListenPacket("udp", net.JoinHostPort(family.host, "5354"))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { silent.Close() })
			at := func(addr string, port uint16) netip.AddrPort {
				return netip.AddrPortFrom(netip.MustParseAddr(addr), port)
			}
			for _, tc := range []struct {
				name    string
				target  netip.AddrPort
				timeout time.Duration
				healthy bool
				class   string
			}{
				{"echo server", at(family.host, 5353), 2 * time.Second, true, "ok"},
				{"closed port", at(family.host, 5355), 10 * time.Second, false, "refused"},
				{"silent port", at(family.host, 5354), 300 * time.Millisecond, false, "timeout"},
				{"no host at the address", at(family.dead, 5353), 10 * time.Second, false, "unreachable"},
				{"no route", at(family.unrouted, 5353), 10 * time.Second, false, "unreachable"},
			} {
				t.Run(tc.name, func(t *testing.T) {
					checker, err := New(complete(t, &config.Check{Type: "udp", Settings: &UDPSettings{Payload: "PING"}}), tc.target)
					if err != nil {
						t.Fatal(err)
					}
					ctx, cancel := context.WithTimeout(context.Background(), tc.timeout)
					defer cancel()
					var r Result
					_ = client.Do(func() error { r = checker.Check(ctx); return nil })
					wantResult(t, r, tc.healthy, tc.class)
				})
			}
		})
	}
}
