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

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	nsrun "github.com/lvsd/lvsd/internal/netns"
)

// NS is a network namespace created for one test. Its methods fail the test
// (t.Fatal) on error, so they must be called from the test's goroutine.
// Links, addresses and routes are set over netlink from the test process:
// under the VM's emulated CPU every exec of ip(8) costs a good fraction of a second.
type NS struct {
	Name string // as known to `ip netns`
	t    testing.TB
	fd   netns.NsHandle
	nl   *netlink.Handle
}

var nsCounter atomic.Int64

// NewNS creates a network namespace with a unique name starting with prefix,
// brings its loopback up and deletes it when the test ends.
func NewNS(t testing.TB, prefix string) *NS {
	t.Helper()
	RequireRoot(t)
	name := fmt.Sprintf("lvsd-%s-%d-%d", prefix, os.Getpid(), nsCounter.Add(1))
	if err := addNamedNetns(name); err != nil {
		t.Fatalf("lab: create netns %s: %v", name, err)
	}
	t.Cleanup(func() {
		if err := netns.DeleteNamed(name); err != nil {
			t.Logf("lab: delete netns %s: %v", name, err)
		}
	})
	fd, err := netns.GetFromName(name)
	if err != nil {
		t.Fatalf("lab: open netns %s: %v", name, err)
	}
	nl, err := netlink.NewHandleAt(fd, unix.NETLINK_ROUTE)
	if err != nil {
		fd.Close()
		t.Fatalf("lab: netlink in %s: %v", name, err)
	}
	t.Cleanup(func() {
		nl.Close()
		fd.Close()
	})
	ns := &NS{Name: name, t: t, fd: fd, nl: nl}
	// Without lo up the kernel has no local routes, and IPVS rejects NAT
	// destinations with EINVAL.
	ns.up("lo")
	return ns
}

// addNamedNetns does what `ip netns add` does, without the exec: a new
// namespace bind-mounted at /run/netns/NAME.
func addNamedNetns(name string) error {
	runtime.LockOSThread()
	self, err := netns.Get()
	if err != nil {
		runtime.UnlockOSThread()
		return err
	}
	defer self.Close()
	created, err := netns.NewNamed(name) // moves this thread into it
	if err == nil {
		created.Close()
	}
	if err := netns.Set(self); err != nil {
		// Leave the thread locked: the runtime discards it with this goroutine.
		return fmt.Errorf("return from new netns %s: %w", name, err)
	}
	runtime.UnlockOSThread()
	return err
}

func (ns *NS) String() string { return ns.Name }

// Netlink returns a netlink handle working inside the namespace, for what
// the helpers below do not cover.
func (ns *NS) Netlink() *netlink.Handle { return ns.nl }

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

func (ns *NS) fatalf(format string, args ...any) {
	ns.t.Helper()
	ns.t.Fatalf("lab: %s: "+format, append([]any{ns.Name}, args...)...)
}

func (ns *NS) link(dev string) netlink.Link {
	ns.t.Helper()
	l, err := ns.nl.LinkByName(dev)
	if err != nil {
		ns.fatalf("link %s: %v", dev, err)
	}
	return l
}

func (ns *NS) up(dev string) {
	ns.t.Helper()
	if err := ns.nl.LinkSetUp(ns.link(dev)); err != nil {
		ns.fatalf("set %s up: %v", dev, err)
	}
}

// Veth connects this namespace to peer with a veth pair named name here and
// peerName there, both up.
func (ns *NS) Veth(name string, peer *NS, peerName string) {
	ns.t.Helper()
	veth := &netlink.Veth{
		LinkAttrs:     netlink.LinkAttrs{Name: name},
		PeerName:      peerName,
		PeerNamespace: netlink.NsFd(peer.fd),
	}
	if err := ns.nl.LinkAdd(veth); err != nil {
		ns.fatalf("veth %s to %s/%s: %v", name, peer.Name, peerName, err)
	}
	ns.up(name)
	peer.up(peerName)
}

// Bridge creates bridge name with the given member interfaces, all up.
func (ns *NS) Bridge(name string, members ...string) {
	ns.t.Helper()
	br := &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: name}}
	if err := ns.nl.LinkAdd(br); err != nil {
		ns.fatalf("bridge %s: %v", name, err)
	}
	ns.up(name)
	for _, m := range members {
		if err := ns.nl.LinkSetMaster(ns.link(m), br); err != nil {
			ns.fatalf("add %s to bridge %s: %v", m, name, err)
		}
		ns.up(m)
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
	addr, err := netlink.ParseAddr(cidr)
	if err != nil {
		ns.fatalf("address %q: %v", cidr, err)
	}
	if addr.IP.To4() == nil {
		addr.Flags |= unix.IFA_F_NODAD
	}
	if err := ns.nl.AddrAdd(ns.link(dev), addr); err != nil {
		ns.fatalf("add %s to %s: %v", cidr, dev, err)
	}
}

// Route adds a route written as for `ip route add`: a destination ("default",
// a prefix or an address) then any of "via GW", "dev DEV", "src ADDR".
// Anything else is passed to ip(8) as is.
func (ns *NS) Route(args ...string) {
	ns.t.Helper()
	route, ok := ns.parseRoute(args)
	if !ok {
		argv := []string{"ip", "route", "add"}
		if strings.Contains(strings.Join(args, " "), ":") {
			argv = []string{"ip", "-6", "route", "add"}
		}
		ns.Run(append(argv, args...)...)
		return
	}
	if err := ns.nl.RouteAdd(route); err != nil {
		ns.fatalf("route %s: %v", strings.Join(args, " "), err)
	}
}

func (ns *NS) parseRoute(args []string) (*netlink.Route, bool) {
	ns.t.Helper()
	if len(args)%2 != 1 {
		return nil, false
	}
	r := &netlink.Route{}
	if args[0] != "default" {
		dst := args[0]
		if !strings.Contains(dst, "/") {
			if strings.Contains(dst, ":") {
				dst += "/128"
			} else {
				dst += "/32"
			}
		}
		_, ipnet, err := net.ParseCIDR(dst)
		if err != nil {
			return nil, false
		}
		r.Dst = ipnet
	}
	for i := 1; i < len(args); i += 2 {
		switch key, val := args[i], args[i+1]; key {
		case "via":
			if r.Gw = net.ParseIP(val); r.Gw == nil {
				return nil, false
			}
		case "src":
			if r.Src = net.ParseIP(val); r.Src == nil {
				return nil, false
			}
		case "dev":
			r.LinkIndex = ns.link(val).Attrs().Index
		default:
			return nil, false
		}
	}
	if r.Dst == nil && r.Gw == nil {
		return nil, false
	}
	if r.Dst == nil && r.Gw.To4() == nil {
		r.Family = unix.AF_INET6
	}
	return r, true
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
	return nsrun.Do(nsrun.Path(ns.Name), fn)
}

// DialContext opens a connection from inside the namespace. Use a literal
// address: for a name with both IPv4 and IPv6 addresses the dialer races
// them on other goroutines, outside the namespace.
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

// Listen opens a listener inside the namespace. Serving it needs no further
// care: accepted connections belong to the listener's namespace.
func (ns *NS) Listen(network, addr string) (net.Listener, error) {
	var ln net.Listener
	err := ns.Do(func() error {
		var err error
		ln, err = net.Listen(network, addr)
		return err
	})
	return ln, err
}

// ListenPacket opens a packet socket (e.g. "udp") inside the namespace.
func (ns *NS) ListenPacket(network, addr string) (net.PacketConn, error) {
	var pc net.PacketConn
	err := ns.Do(func() error {
		var err error
		pc, err = net.ListenPacket(network, addr)
		return err
	})
	return pc, err
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
