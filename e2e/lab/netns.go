package lab

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// NS is a network namespace created for one test. Its methods fail the test
// (t.Fatal) on error, so they must be called from the test's goroutine.
type NS struct {
	Name string // as known to `ip netns`
	t    testing.TB
}

var nsCounter atomic.Int64

// NewNS creates a network namespace with a unique name starting with prefix,
// brings its loopback up and deletes it when the test ends.
func NewNS(t testing.TB, prefix string) *NS {
	t.Helper()
	RequireRoot(t)
	name := fmt.Sprintf("lvsd-%s-%d-%d", prefix, os.Getpid(), nsCounter.Add(1))
	ns := &NS{Name: name, t: t}
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		t.Fatalf("lab: ip netns add %s: %v: %s", name, err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("ip", "netns", "del", name).CombinedOutput(); err != nil {
			t.Logf("lab: ip netns del %s: %v: %s", name, err, out)
		}
	})
	// Without lo up the kernel has no local routes, and IPVS rejects NAT
	// destinations with EINVAL.
	ns.Run("ip", "link", "set", "lo", "up")
	return ns
}

func (ns *NS) String() string { return ns.Name }

// Command returns an unstarted command that will run argv inside the namespace.
func (ns *NS) Command(argv ...string) *exec.Cmd {
	return exec.Command("ip", append([]string{"netns", "exec", ns.Name}, argv...)...)
}

// Try runs argv in the namespace and returns its combined output and error.
func (ns *NS) Try(argv ...string) (string, error) {
	out, err := ns.Command(argv...).CombinedOutput()
	if err != nil {
		err = fmt.Errorf("in %s: %s: %w: %s", ns.Name, strings.Join(argv, " "), err, bytes.TrimSpace(out))
	}
	return string(out), err
}

// Run runs argv in the namespace, fails the test if it fails, and returns its output.
func (ns *NS) Run(argv ...string) string {
	ns.t.Helper()
	out, err := ns.Try(argv...)
	if err != nil {
		ns.t.Fatalf("lab: %v", err)
	}
	return out
}

// Veth connects this namespace to peer with a veth pair named name here and
// peerName there, both up.
func (ns *NS) Veth(name string, peer *NS, peerName string) {
	ns.t.Helper()
	ns.Run("ip", "link", "add", name, "type", "veth", "peer", "name", peerName, "netns", peer.Name)
	ns.Run("ip", "link", "set", name, "up")
	peer.Run("ip", "link", "set", peerName, "up")
}

// Bridge creates bridge name with the given member interfaces, all up.
func (ns *NS) Bridge(name string, members ...string) {
	ns.t.Helper()
	ns.Run("ip", "link", "add", name, "type", "bridge")
	ns.Run("ip", "link", "set", name, "up")
	for _, m := range members {
		ns.Run("ip", "link", "set", m, "master", name)
		ns.Run("ip", "link", "set", m, "up")
	}
}

// Link runs `ip link ARGS...` (e.g. "add", "dummy0", "type", "dummy").
func (ns *NS) Link(args ...string) {
	ns.t.Helper()
	ns.Run(append([]string{"ip", "link"}, args...)...)
}

// Addr adds an address (CIDR form) to dev. IPv6 addresses skip duplicate
// address detection, which would otherwise keep them unusable for a second or two.
func (ns *NS) Addr(dev, cidr string) {
	ns.t.Helper()
	argv := []string{"ip", "addr", "add", cidr, "dev", dev}
	if strings.Contains(cidr, ":") {
		argv = append(argv, "nodad")
	}
	ns.Run(argv...)
}

// Route runs `ip route add ARGS...`, e.g. Route("default", "via", "10.0.0.1").
// IPv6 routes are recognised by a ':' in any argument.
func (ns *NS) Route(args ...string) {
	ns.t.Helper()
	argv := []string{"ip", "route", "add"}
	for _, a := range args {
		if strings.Contains(a, ":") {
			argv = []string{"ip", "-6", "route", "add"}
			break
		}
	}
	ns.Run(append(argv, args...)...)
}

// Sysctl sets a sysctl inside the namespace, e.g. Sysctl("net.ipv4.ip_forward", "1").
func (ns *NS) Sysctl(key, value string) {
	ns.t.Helper()
	path := "/proc/sys/" + strings.ReplaceAll(key, ".", "/")
	err := ns.Do(func() error { return os.WriteFile(path, []byte(value+"\n"), 0o644) })
	if err != nil {
		ns.t.Fatalf("lab: sysctl %s=%s in %s: %v", key, value, ns.Name, err)
	}
}

// Do runs fn on an OS thread switched into the namespace. Sockets and
// /proc/sys/net files opened by fn belong to the namespace; goroutines fn
// starts do not run in it.
func (ns *NS) Do(fn func() error) error {
	target, err := os.Open("/run/netns/" + ns.Name)
	if err != nil {
		return err
	}
	defer target.Close()
	runtime.LockOSThread()
	self, err := os.Open(fmt.Sprintf("/proc/self/task/%d/ns/net", unix.Gettid()))
	if err != nil {
		runtime.UnlockOSThread()
		return err
	}
	defer self.Close()
	if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("setns %s: %w", ns.Name, err)
	}
	fnErr := fn()
	if err := unix.Setns(int(self.Fd()), unix.CLONE_NEWNET); err != nil {
		// The thread is stuck in the wrong namespace: leave it locked so the
		// runtime throws it away when this goroutine ends.
		return fmt.Errorf("setns back from %s: %w", ns.Name, err)
	}
	runtime.UnlockOSThread()
	return fnErr
}

// DialContext opens a connection from inside the namespace.
func (ns *NS) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	var conn net.Conn
	err := ns.Do(func() error {
		var err error
		conn, err = (&net.Dialer{}).DialContext(ctx, network, addr)
		return err
	})
	return conn, err
}

// Dial opens a connection from inside the namespace with a timeout.
func (ns *NS) Dial(network, addr string, timeout time.Duration) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	return ns.DialContext(ctx, network, addr)
}

// HTTPClient returns a client whose connections start inside the namespace.
// Keep-alives are off so that every request is a new connection, which is
// what IPVS schedules.
func (ns *NS) HTTPClient(timeout time.Duration) *http.Client {
	return &http.Client{
		Timeout:   timeout,
		Transport: &http.Transport{DialContext: ns.DialContext, DisableKeepAlives: true},
	}
}

// WaitTCP waits until a TCP connection to addr from inside the namespace
// succeeds, and fails the test after timeout.
func (ns *NS) WaitTCP(addr string, timeout time.Duration) {
	ns.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		conn, err := ns.Dial("tcp", addr, time.Second)
		if err == nil {
			conn.Close()
			return
		}
		if time.Now().After(deadline) {
			ns.t.Fatalf("lab: %s: nothing accepts on %s after %v: %v", ns.Name, addr, timeout, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
