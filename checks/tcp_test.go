package checks

import (
	"bufio"
	"context"
	"net"
	"net/netip"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/lvsd/lvsd/config"
)

// lineServer answers each line "PING" with "PONG", stays silent on "QUIET",
// and hands over the remote address of each connection it accepts.
type lineServer struct {
	l        net.Listener
	accepted chan string
}

func startLineServer(t *testing.T) *lineServer {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &lineServer{l: l, accepted: make(chan string, 64)}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			select {
			case s.accepted <- c.RemoteAddr().String():
			default:
			}
			go func() {
				defer c.Close()
				r := bufio.NewReader(c)
				for {
					line, err := r.ReadString('\n')
					if err != nil {
						return
					}
					if strings.TrimSpace(line) == "PING" {
						c.Write([]byte("PONG\r\n"))
					}
				}
			}()
		}
	}()
	return s
}

func TestTCP(t *testing.T) {
	srv := startLineServer(t)
	up := addrOf(t, srv.l.Addr())
	down := closedPort(t)
	tests := []struct {
		name    string
		tcp     TCPSettings
		target  netip.AddrPort
		port    int
		healthy bool
		class   string
	}{
		{name: "connect", target: up, healthy: true, class: "ok"},
		{name: "closed port is refused", target: down, class: "refused"},
		{name: "port overrides the target's", target: down, port: int(up.Port()), healthy: true, class: "ok"},
		{name: "send and expect prefix", tcp: TCPSettings{Send: "PING\r\n", Expect: "PONG"}, target: up, healthy: true, class: "ok"},
		{name: "wrong reply", tcp: TCPSettings{Send: "PING\r\n", Expect: "+OK"}, target: up, class: "expect"},
		{name: "no reply is a timeout", tcp: TCPSettings{Send: "QUIET\r\n", Expect: "PONG"}, target: up, class: "timeout"},
		{name: "send only", tcp: TCPSettings{Send: "hello\n"}, target: up, healthy: true, class: "ok"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tcp := tc.tcp
			c := &config.Check{Type: "tcp", Port: tc.port, Settings: &tcp}
			start := time.Now()
			r := runOnce(t, c, tc.target, 300*time.Millisecond)
			wantResult(t, r, tc.healthy, tc.class)
			if r.Weight != -1 {
				t.Errorf("weight %d, want -1", r.Weight)
			}
			if r.Duration <= 0 || r.Duration > time.Since(start) {
				t.Errorf("duration %s not within the probe's %s", r.Duration, time.Since(start))
			}
		})
	}
}

func TestTCPSourceAddress(t *testing.T) {
	srv := startLineServer(t)
	c := &config.Check{Type: "tcp", SourceAddress: srcAddr("127.0.0.2"), Settings: &TCPSettings{}}
	r := runOnce(t, c, addrOf(t, srv.l.Addr()), time.Second)
	wantResult(t, r, true, "ok")
	// A connect-only probe is done once the kernel completes the
	// handshake, which can be before the server's Accept returns.
	select {
	case got := <-srv.accepted:
		if !strings.HasPrefix(got, "127.0.0.2:") {
			t.Errorf("server saw the probe from %s, want 127.0.0.2", got)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("server never accepted the probe's connection")
	}
}

// stuckListener returns the address of a listener whose accept queue is
// full, so the kernel drops further SYNs and a connect hangs.
func stuckListener(t *testing.T) netip.AddrPort {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	raw, err := l.(*net.TCPListener).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	raw.Control(func(fd uintptr) { syscall.Listen(int(fd), 0) })
	addr := addrOf(t, l.Addr())
	// Never accepted: they fill the queue (backlog 0 holds one).
	for range 4 {
		c, err := net.DialTimeout("tcp", addr.String(), 200*time.Millisecond)
		if err != nil {
			break
		}
		t.Cleanup(func() { c.Close() })
	}
	return addr
}

func TestTCPConnectTimeoutAndCancel(t *testing.T) {
	addr := stuckListener(t)
	c := &config.Check{Type: "tcp", Settings: &TCPSettings{}}
	start := time.Now()
	r := runOnce(t, c, addr, 200*time.Millisecond)
	wantResult(t, r, false, "timeout")
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("a 200ms probe took %s", took)
	}

	checker, err := New(complete(t, c), addr)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	time.AfterFunc(100*time.Millisecond, cancel)
	start = time.Now()
	r = checker.Check(ctx)
	wantResult(t, r, false, "timeout")
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("a cancelled probe returned after %s", took)
	}
}

// A loopback handshake completes inside connect itself, before the probe
// waits: that wakeup must not be lost, not even once in many probes.
func TestTCPConnectLoopbackNeverMissesTheHandshake(t *testing.T) {
	srv := startLineServer(t)
	checker, err := New(complete(t, &config.Check{Type: "tcp"}), addrOf(t, srv.l.Addr()))
	if err != nil {
		t.Fatal(err)
	}
	for i := range 300 {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		r := checker.Check(ctx)
		cancel()
		if !r.Healthy {
			t.Fatalf("probe %d: %s", i, r.Reason)
		}
	}
}

// The connect-only path builds its own sockaddrs: IPv6, and an IPv4 target
// written 4-in-6, must reach the listener.
func TestTCPConnectFamilies(t *testing.T) {
	for _, network := range []string{"tcp4", "tcp6"} {
		t.Run(network, func(t *testing.T) {
			l, err := net.Listen(network, map[string]string{"tcp4": "127.0.0.1:0", "tcp6": "[::1]:0"}[network])
			if err != nil {
				t.Skipf("no %s loopback: %v", network, err)
			}
			defer l.Close()
			go acceptAndClose(l)
			addr := addrOf(t, l.Addr())
			targets := []netip.AddrPort{addr}
			if addr.Addr().Is4() {
				targets = append(targets, netip.AddrPortFrom(netip.AddrFrom16(addr.Addr().As16()), addr.Port()))
			}
			for _, target := range targets {
				r := runOnce(t, &config.Check{Type: "tcp", Settings: &TCPSettings{}}, target, time.Second)
				wantResult(t, r, true, "ok")
			}
		})
	}
}
