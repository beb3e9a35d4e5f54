package checks

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/lvsd/lvsd/config"
	"github.com/lvsd/lvsd/e2e/lab"
)

// complete fills c's defaults and validates it through config, as Load
// does for a check from a file: checks accepts only complete checks.
func complete(t testing.TB, c *config.Check) *config.Check {
	t.Helper()
	done, err := config.NewCheck(*c)
	if err != nil {
		t.Fatalf("config.NewCheck(%+v): %v", c, err)
	}
	return done
}

// validate returns what config says about c.
func validate(c *config.Check) error {
	_, err := config.NewCheck(*c)
	return err
}

// runOnce builds c for addr and runs one probe under timeout.
func runOnce(t *testing.T, c *config.Check, addr netip.AddrPort, timeout time.Duration) Result {
	t.Helper()
	checker, err := New(complete(t, c), addr)
	if err != nil {
		t.Fatalf("New(%+v): %v", c, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	return checker.Check(ctx)
}

// wantResult compares the health and reason class of r.
func wantResult(t *testing.T, r Result, healthy bool, class string) {
	t.Helper()
	if r.Healthy != healthy || ReasonClass(r.Reason) != class {
		t.Errorf("got healthy=%v reason %q (class %s), want healthy=%v class %s",
			r.Healthy, r.Reason, ReasonClass(r.Reason), healthy, class)
	}
}

func addrOf(t *testing.T, a net.Addr) netip.AddrPort {
	t.Helper()
	ap, err := netip.ParseAddrPort(a.String())
	if err != nil {
		t.Fatal(err)
	}
	return ap
}

// closedPort returns a loopback address nothing listens on.
func closedPort(t *testing.T) netip.AddrPort {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ap := addrOf(t, l.Addr())
	l.Close()
	return ap
}

func dur(d time.Duration) config.Duration { return config.Duration{Duration: d} }

func srcAddr(ip string) config.Addr { return config.Addr{IP: netip.MustParseAddr(ip)} }

// acceptAndClose accepts and closes connections on l until it is closed:
// a server that is up and says nothing.
func acceptAndClose(l net.Listener) {
	for {
		c, err := l.Accept()
		if err != nil {
			return
		}
		c.Close()
	}
}

// requireRoot skips a test that builds network namespaces when it cannot.
func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: probes real hosts in network namespaces (run go test as root)")
	}
}

// waitReachable waits until host answers from inside ns: a datagram to its
// closed discard port draws an ICMP port unreachable once neighbour
// discovery works. A namespace lab is ready only then; before, the first
// solicitation on a link just brought up can go unanswered.
func waitReachable(t *testing.T, ns *lab.NS, host string) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); ; {
		conn, err := ns.Dial("udp", net.JoinHostPort(host, "9"), time.Second)
		if err != nil {
			t.Fatalf("lab: %v", err)
		}
		_, _ = conn.Write([]byte("x"))
		_ = conn.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
		_, err = conn.Read(make([]byte, 1))
		conn.Close()
		if errors.Is(err, syscall.ECONNREFUSED) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("lab: %s does not answer from %s: %v", host, ns, err)
		}
	}
}
