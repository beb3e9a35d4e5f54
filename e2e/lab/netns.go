package lab

import (
	"testing"
	"time"

	ilab "github.com/lvsd/lvsd/internal/lab"
)

// NS is a network namespace created for one test: internal/lab's NS, whose
// methods here fail the test (t.Fatal) instead of returning an error, so
// they must be called from the test's goroutine. Do, Dial, Listen,
// HTTPClient, Command, Try and Netlink are internal/lab's.
type NS struct {
	*ilab.NS
	t testing.TB
}

// NewNS creates a network namespace with a unique name ending in role,
// brings its loopback up and deletes it when the test ends.
func NewNS(t testing.TB, role string) *NS {
	t.Helper()
	RequireRoot(t)
	ns, err := ilab.NewNS(t, role)
	if err != nil {
		t.Fatalf("lab: %v", err)
	}
	return &NS{NS: ns, t: t}
}

func (ns *NS) String() string { return ns.Name }

func (ns *NS) must(err error) {
	ns.t.Helper()
	if err != nil {
		ns.t.Fatalf("lab: %v", err)
	}
}

// Run runs argv in the namespace, fails the test if it fails, and returns its output.
func (ns *NS) Run(argv ...string) string {
	ns.t.Helper()
	out, err := ns.Try(argv...)
	ns.must(err)
	return out
}

// Veth connects this namespace to peer with a veth pair named name here and
// peerName there, both up.
func (ns *NS) Veth(name string, peer *NS, peerName string) {
	ns.t.Helper()
	ns.must(ns.NS.Veth(name, peer.NS, peerName))
}

// Bridge creates bridge name (IGMP snooping off) with the given member
// interfaces, all up.
func (ns *NS) Bridge(name string, members ...string) {
	ns.t.Helper()
	ns.must(ns.NS.Bridge(name, members...))
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
	ns.must(ns.NS.Addr(dev, cidr))
}

// Route adds a route written as for `ip route add`: a destination ("default",
// a prefix or an address) then any of "via GW", "dev DEV", "src ADDR".
// Anything else is passed to ip(8) as is.
func (ns *NS) Route(args ...string) {
	ns.t.Helper()
	ns.must(ns.NS.Route(args...))
}

// Sysctl sets a sysctl inside the namespace, e.g. Sysctl("net.ipv4.ip_forward", "1").
func (ns *NS) Sysctl(key, value string) {
	ns.t.Helper()
	ns.must(ns.NS.Sysctl(key, value))
}

// WaitTCP waits until a TCP connection to addr from inside the namespace
// succeeds, and fails the test after timeout.
func (ns *NS) WaitTCP(addr string, timeout time.Duration) {
	ns.t.Helper()
	ns.must(ns.NS.WaitTCP(addr, timeout))
}
