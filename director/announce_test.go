package director

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/lvsd/lvsd/config"
)

// kernelList replays the destination ops the fake saw the way the kernel
// keeps a service's destination list: an added destination goes to the
// head (list_add in __ip_vs_update_dest), a deleted one leaves. The fake
// itself dumps destinations sorted, which hides the order mh hashes over.
type kernelList struct{ addrs []string }

func (k *kernelList) record(op Op) error {
	switch op.Kind {
	case OpNewDest:
		k.addrs = append([]string{op.Dest.Addr.String()}, k.addrs...)
	case OpDelDest:
		k.addrs = slices.DeleteFunc(k.addrs, func(a string) bool { return a == op.Dest.Addr.String() })
	}
	return nil
}

func mustOrder(order, _ string) string { return order }

func announced(alpha bool, reals ...string) *config.Config {
	s := service("web", "192.0.2.1:80", reals...)
	s.Scheduler, s.Forwarding, s.Announce = "mh", "dr", true
	s.Alpha = &alpha
	return cfgOf(s)
}

// A connection the routers move to another director is hashed again
// there: the directors must have the same destination list in the same
// order. Two directors whose checks see the servers come up in different
// orders, one of them also seeing a server flap, end with the same list.
func TestAnnouncedServiceKeepsOneOrderOnEveryDirector(t *testing.T) {
	reals := []string{"10.0.0.1:80", "10.0.0.2:80", "10.0.0.3:80"}
	run := func(announce bool, events []string) (order, weights string) {
		cfg := announced(true, reals...)
		cfg.Services[0].Announce = announce
		h := newHarness(t, cfg)
		list := &kernelList{}
		h.fake.FailOp = list.record
		h.pass()
		for _, ev := range events {
			rs, verdict, _ := strings.Cut(ev, " ")
			h.d.SetHealth("web", rs, Health{Known: true, Healthy: verdict == "up", Weight: -1})
			h.pass()
		}
		return strings.Join(list.addrs, " "), h.dests("192.0.2.1:80")
	}
	a := []string{"10.0.0.1:80 up", "10.0.0.2:80 up", "10.0.0.3:80 up"}
	b := []string{"10.0.0.3:80 up", "10.0.0.2:80 up", "10.0.0.1:80 up", "10.0.0.2:80 down", "10.0.0.2:80 up"}

	orderA, weightsA := run(true, a)
	orderB, weightsB := run(true, b)
	if orderA != orderB {
		t.Errorf("announced: directors hold the real servers in different orders:\n  A %s\n  B %s", orderA, orderB)
	}
	if want := "10.0.0.1:80=1 10.0.0.2:80=1 10.0.0.3:80=1"; weightsA != want || weightsB != want {
		t.Errorf("announced, all up: A %q, B %q; want %q on both", weightsA, weightsB, want)
	}
	// What the pinning prevents: a plain service's list follows the order
	// of the verdicts.
	if plainA, plainB := mustOrder(run(false, a)), mustOrder(run(false, b)); plainA == plainB {
		t.Fatalf("the test cannot tell: plain services got one order %q from both histories", plainA)
	}
}

// Down or not yet checked, a real server of an announced service stays in
// the table at weight 0; quorum and Ready follow health.
func TestAnnouncedServiceDownServersStayAtWeightZero(t *testing.T) {
	cfg := announced(true, "10.0.0.1:80", "10.0.0.2:80")
	cfg.Services[0].Quorum = 2
	h := newHarness(t, cfg)
	if ok, why := h.d.Ready("web"); ok || !strings.Contains(why, "below quorum: 0 of 2 real servers up, quorum 2") {
		t.Errorf("before any check: Ready = %v, %q", ok, why)
	}
	h.pass()
	if got := h.dests("192.0.2.1:80"); got != "10.0.0.1:80=0 10.0.0.2:80=0" {
		t.Errorf("unchecked servers: %q, want both at weight 0", got)
	}
	cfg.Services[0].Quorum = 1
	if err := h.d.Update(cfg); err != nil {
		t.Fatal(err)
	}
	h.d.SetHealth("web", "10.0.0.1:80", Health{Known: true, Healthy: true, Weight: -1})
	h.pass()
	if ok, why := h.d.Ready("web"); ok || why != "first checks pending for 1 of 2 real servers" {
		t.Errorf("quorum 1 met, one server unchecked: Ready = %v, %q", ok, why)
	}
	cfg.Services[0].Quorum = 2
	if err := h.d.Update(cfg); err != nil {
		t.Fatal(err)
	}
	h.d.SetHealth("web", "10.0.0.2:80", Health{Known: true, Healthy: true, Weight: -1})
	if ok, why := h.d.Ready("web"); ok || why != "1 real servers with weight above 0 in the kernel table, quorum 2" {
		t.Errorf("quorum up, kernel not yet updated: Ready = %v, %q", ok, why)
	}
	h.pass()
	if ok, why := h.d.Ready("web"); !ok {
		t.Errorf("all up and in the kernel: not ready: %s", why)
	}
	h.d.SetHealth("web", "10.0.0.2:80", Health{Known: true, Healthy: false, Weight: -1})
	h.pass()
	if got := h.dests("192.0.2.1:80"); got != "10.0.0.1:80=1 10.0.0.2:80=0" {
		t.Errorf("one down: %q, want it kept at weight 0", got)
	}
	if ok, _ := h.d.Ready("web"); ok {
		t.Error("below quorum but ready")
	}
	if ok, why := h.d.Ready("nope"); ok || why != "not configured" {
		t.Errorf("unknown service: %v, %q", ok, why)
	}
}

func TestPassHookRunsAfterEveryPass(t *testing.T) {
	n := 0
	h := newHarness(t, announced(false, "10.0.0.1:80"))
	WithPassHook(func() { n++ })(h.d)
	h.pass()
	h.pass()
	if n != 2 {
		t.Errorf("hook ran %d times in 2 passes", n)
	}
}

func TestSloppySysctlsFollowAnnouncedProtocols(t *testing.T) {
	cfg := announced(false, "10.0.0.1:80")
	sctp := service("sig", "192.0.2.2:3868", "10.0.0.1:3868")
	sctp.Protocol = "sctp"
	cfg.Services = append(cfg.Services, sctp)
	has := func(path string) bool {
		return slices.ContainsFunc(Sysctls(cfg), func(s Sysctl) bool { return s.Path == path && s.Value == "1" })
	}
	if !has("net/ipv4/vs/sloppy_tcp") || has("net/ipv4/vs/sloppy_sctp") {
		t.Errorf("announced tcp service, plain sctp one: %+v", Sysctls(cfg))
	}
	sctp.Announce = true
	if !has("net/ipv4/vs/sloppy_sctp") {
		t.Errorf("announced sctp service: %+v", Sysctls(cfg))
	}
	cfg.Services[0].Announce, sctp.Announce = false, false
	if has("net/ipv4/vs/sloppy_tcp") || has("net/ipv4/vs/sloppy_sctp") {
		t.Errorf("nothing announced: %+v", Sysctls(cfg))
	}
}

func TestAnnouncedVIPIsNotStatic(t *testing.T) {
	cfg := announced(false, "10.0.0.1:80")
	if vips := StaticVIPs(cfg); len(vips) != 0 {
		t.Errorf("announced VIP held statically: %v", vips)
	}
	cfg.Services[0].Announce = false
	if vips := StaticVIPs(cfg); len(vips) != 1 {
		t.Errorf("plain VIP: %v", vips)
	}
}

// An announced service's destinations are created at their configured
// weight and quiesced in the same pass, so the kernel's mh table (built
// from each destination's last non-zero weight) holds them all.
func TestAnnouncedDestsAreCreatedPrimed(t *testing.T) {
	h := newHarness(t, announced(true, "10.0.0.1:80@3", "10.0.0.2:80"))
	var ops []string
	h.fake.FailOp = func(op Op) error {
		if op.Kind == OpNewDest || op.Kind == OpUpdateDest {
			ops = append(ops, fmt.Sprintf("%s %s=%d", op.Kind, op.Dest.Addr, op.Dest.Weight))
		}
		return nil
	}
	h.settle()
	want := []string{"new_dest 10.0.0.1:80=3", "new_dest 10.0.0.2:80=1", "update_dest 10.0.0.1:80=0", "update_dest 10.0.0.2:80=0"}
	if !slices.Equal(ops, want) {
		t.Errorf("first pass:\n%v\nwant\n%v", ops, want)
	}
	if got := h.dests("192.0.2.1:80"); got != "10.0.0.1:80=0 10.0.0.2:80=0" {
		t.Errorf("after the pass: %q", got)
	}
	// A plain service is created at the weight it needs.
	cfg := announced(true, "10.0.0.1:80")
	cfg.Services[0].Announce = false
	cfg.Services[0].Alpha = no
	p := newHarness(t, cfg)
	ops = nil
	p.fake.FailOp = h.fake.FailOp
	p.pass()
	if !slices.Equal(ops, []string{"new_dest 10.0.0.1:80=1"}) {
		t.Errorf("plain service: %v", ops)
	}
}
