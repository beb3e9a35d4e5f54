package checks

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lvsd/lvsd/config"
	"github.com/prometheus/client_golang/prometheus"
)

// fakeProbes stands in for real checkers: each probe address answers the way
// the test says, and every build and call is counted.
type fakeProbes struct {
	mu      sync.Mutex
	healthy map[string]bool
	weight  map[string]int
	hang    map[string]bool
	release chan struct{} // closed when the test ends, freeing hung probes
	built   map[string]int
	calls   map[string]int
}

func (f *fakeProbes) newChecker(c *config.Check, target netip.AddrPort) (Checker, error) {
	addr := probeAddr(c, target).String()
	f.mu.Lock()
	defer f.mu.Unlock()
	f.built[addr]++
	return fakeChecker{f: f, addr: addr}, nil
}

func (f *fakeProbes) set(addr string, healthy bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.healthy[addr] = healthy
}

func (f *fakeProbes) count(m map[string]int, addr string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return m[addr]
}

type fakeChecker struct {
	f    *fakeProbes
	addr string
}

func (c fakeChecker) Check(ctx context.Context) Result {
	c.f.mu.Lock()
	c.f.calls[c.addr]++
	healthy, hang := c.f.healthy[c.addr], c.f.hang[c.addr]
	weight, ok := c.f.weight[c.addr]
	c.f.mu.Unlock()
	if !ok {
		weight = -1
	}
	if hang {
		// Ignores ctx on purpose: even a probe that overstays its
		// timeout must hold only itself.
		<-c.f.release
		return failf("timeout", "%s hung", c.addr)
	}
	if healthy {
		return Result{Healthy: true, Reason: "ok: " + c.addr, Weight: weight}
	}
	return failf("refused", "%s refused", c.addr)
}

// harness runs a Scheduler on a fake clock with fake checkers.
type harness struct {
	t           *testing.T
	clock       *fakeClock
	fakes       *fakeProbes
	s           *Scheduler
	transitions chan Transition
	runs        chan ProbeRun
}

func newHarness(t *testing.T) *harness {
	h := &harness{
		t:           t,
		clock:       newFakeClock(),
		fakes:       &fakeProbes{healthy: map[string]bool{}, weight: map[string]int{}, hang: map[string]bool{}, built: map[string]int{}, calls: map[string]int{}, release: make(chan struct{})},
		transitions: make(chan Transition, 1000),
		runs:        make(chan ProbeRun, 1000),
	}
	h.s = NewScheduler(nil, func(tr Transition) { h.transitions <- tr },
		WithClock(h.clock), WithProbeHook(func(r ProbeRun) { h.runs <- r }))
	h.s.newChecker = h.fakes.newChecker
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		h.s.Run(ctx)
		close(done)
	}()
	t.Cleanup(func() {
		close(h.fakes.release)
		cancel()
		<-done
	})
	return h
}

// tick advances the clock by one second and waits until n probes finished.
// Transitions are delivered before a probe counts as finished.
func (h *harness) tick(n int) {
	h.t.Helper()
	h.clock.Advance(time.Second)
	for i := 0; i < n; i++ {
		select {
		case <-h.runs:
		case <-time.After(10 * time.Second):
			h.t.Fatalf("only %d of %d probes finished after the clock moved", i, n)
		}
	}
}

// expect checks that exactly these transitions are pending, in any order
// (probes of different servers finish concurrently).
func (h *harness) expect(want ...Transition) {
	h.t.Helper()
	var got []Transition
	for len(h.transitions) > 0 {
		tr := <-h.transitions
		tr.Reason = ""
		got = append(got, tr)
	}
	missing := append([]Transition(nil), want...)
	var extra []Transition
	for _, g := range got {
		found := false
		for i, w := range missing {
			if g == w {
				missing = append(missing[:i], missing[i+1:]...)
				found = true
				break
			}
		}
		if !found {
			extra = append(extra, g)
		}
	}
	if len(missing) > 0 || len(extra) > 0 {
		h.t.Errorf("transitions: missing %+v, unexpected %+v", missing, extra)
	}
}

func (h *harness) status(service, rs string) TargetStatus {
	h.t.Helper()
	for _, st := range h.s.Status() {
		if st.Service == service && st.RealServer == rs {
			return st
		}
	}
	h.t.Fatalf("no status for %s %s", service, rs)
	return TargetStatus{}
}

// tcpCheck is a complete connect-only check; a test may then change its
// common keys.
func tcpCheck(rise, fall int) *config.Check {
	c, err := config.NewCheck(config.Check{Type: "tcp", Interval: dur(time.Second), Timeout: dur(500 * time.Millisecond),
		Rise: rise, Fall: fall})
	if err != nil {
		panic(err) // the literal above is valid
	}
	return c
}

func tgt(service, rs string, start bool, checks ...*config.Check) Target {
	return Target{Service: service, RealServer: rs, Addr: netip.MustParseAddrPort(rs), Checks: checks, StartHealthy: start}
}

func up(service, rs string) Transition {
	return Transition{Service: service, RealServer: rs, Healthy: true, Weight: -1}
}
func down(service, rs string) Transition {
	return Transition{Service: service, RealServer: rs, Healthy: false, Weight: -1}
}

// A server failing fewer times in a row than fall is in doubt: the eviction
// guard must not count it fine. It leaves doubt when it is judged down,
// after that verdict, or when a check passes.
func TestSchedulerDoubtWhileFailingBelowFall(t *testing.T) {
	h := newHarness(t)
	// One channel, so the order of transitions and doubts shows.
	type event struct {
		what string
		on   bool
	}
	events := make(chan event, 100)
	h.s.onTransition = func(tr Transition) { events <- event{"transition", tr.Healthy} }
	h.s.onDoubt = func(d Doubt) { events <- event{"doubt", d.InDoubt} }
	const rs = "10.0.0.1:80"
	h.fakes.set(rs, true)
	h.s.Update([]Target{tgt("web", rs, true, tcpCheck(1, 3))})
	next := func() (string, bool) {
		select {
		case e := <-events:
			return e.what, e.on
		default:
			return "", false
		}
	}
	h.tick(1)
	if what, _ := next(); what != "" {
		t.Fatalf("a passing check reported %s", what)
	}
	h.fakes.set(rs, false)
	h.tick(1)
	if what, on := next(); what != "doubt" || !on {
		t.Fatalf("first failure of fall 3: got %s %v, want in doubt", what, on)
	}
	h.tick(1)
	if what, _ := next(); what != "" {
		t.Fatalf("second failure reported %s", what)
	}
	h.tick(1)
	if what, healthy := next(); what != "transition" || healthy {
		t.Fatalf("third failure: got %s %v, want the down verdict first", what, healthy)
	}
	if what, on := next(); what != "doubt" || on {
		t.Fatalf("judged down: got %s %v, want out of doubt after the verdict", what, on)
	}
	h.fakes.set(rs, true)
	h.tick(1)
	h.fakes.set(rs, false)
	h.tick(1)
	h.fakes.set(rs, true)
	h.tick(1)
	var got []string
	for what, on := next(); what != ""; what, on = next() {
		got = append(got, fmt.Sprintf("%s %v", what, on))
	}
	if want := []string{"transition true", "doubt true", "doubt false"}; !slices.Equal(got, want) {
		t.Errorf("up, one failure, a pass: %v, want %v", got, want)
	}
}

// scriptedChecker returns whatever result the test last set.
type scriptedChecker struct {
	mu sync.Mutex
	r  Result
}

func (c *scriptedChecker) set(r Result) {
	c.mu.Lock()
	c.r = r
	c.mu.Unlock()
}

func (c *scriptedChecker) Check(context.Context) Result {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.r
}

// A server down for a silence that then answers with a failure is
// reported again, with the answer: the eviction guard may hold the one and
// must apply the other at once. Another failure of the same kind is not
// reported.
func TestSchedulerReportsAnAnswerAfterASilence(t *testing.T) {
	h := newHarness(t)
	sc := &scriptedChecker{r: Result{Healthy: true, Reason: "ok: fine", Weight: -1}}
	h.s.newChecker = func(*config.Check, netip.AddrPort) (Checker, error) { return sc, nil }
	const rs = "10.0.0.1:80"
	h.s.Update([]Target{tgt("web", rs, true, tcpCheck(1, 1))})
	h.tick(1)
	// A silence other than a timeout, which the fake clock's jumps would
	// make inconclusive (judgeTimeout).
	sc.set(failf("unreachable", "no route"))
	h.tick(1)
	sc.set(failf("unreachable", "no route again"))
	h.tick(1)
	sc.set(failf("refused", "connection refused"))
	h.tick(1)
	sc.set(failf("status", "got 500"))
	h.tick(1)
	var got []string
	for len(h.transitions) > 0 {
		tr := <-h.transitions
		got = append(got, fmt.Sprintf("%v %s", tr.Healthy, ReasonClass(tr.Reason)))
	}
	if want := []string{"false unreachable", "false refused"}; !slices.Equal(got, want) {
		t.Errorf("transitions %v, want %v", got, want)
	}
}

func TestSchedulerRiseFall(t *testing.T) {
	h := newHarness(t)
	const rs = "10.0.0.1:80"
	h.fakes.set(rs, true)
	h.s.Update([]Target{tgt("web", rs, false, tcpCheck(2, 3))})
	if st := h.status("web", rs); st.Health != Unknown {
		t.Fatalf("alpha server starts %s, want unknown", st.Health)
	}
	steps := []struct {
		healthy bool
		want    []Transition
		health  Health
	}{
		{true, nil, Unknown},
		{true, []Transition{up("web", rs)}, Up}, // rise 2
		{true, nil, Up},
		{false, nil, Up},
		{false, nil, Up},
		{false, []Transition{down("web", rs)}, Down}, // fall 3
		{false, nil, Down},
		{true, nil, Down},
		{false, nil, Down}, // a lone success does not rise
		{true, nil, Down},
		{true, []Transition{up("web", rs)}, Up},
	}
	for i, step := range steps {
		h.fakes.set(rs, step.healthy)
		h.tick(1)
		h.expect(step.want...)
		if st := h.status("web", rs); st.Health != step.health {
			t.Fatalf("step %d: health %s, want %s", i, st.Health, step.health)
		}
		if n, want := undecided(h.s), map[bool]int{true: 1, false: 0}[step.health == Unknown]; n != want {
			t.Fatalf("step %d: %d undecided, want %d", i, n, want)
		}
	}
	st := h.status("web", rs)
	if st.Successes != 2 || st.Failures != 0 || !strings.HasPrefix(st.Reason, "ok:") || st.LastCheck.IsZero() {
		t.Errorf("status %+v", st)
	}
}

func TestSchedulerStartHealthy(t *testing.T) {
	h := newHarness(t)
	const rs = "10.0.0.2:80"
	h.s.Update([]Target{tgt("web", rs, true, tcpCheck(2, 2))})
	if st := h.status("web", rs); st.Health != Up {
		t.Fatalf("alpha-off server starts %s, want up", st.Health)
	}
	if n := undecided(h.s); n != 0 {
		t.Errorf("an alpha-off server counts as undecided (%d)", n)
	}
	h.tick(1)
	h.expect()
	h.tick(1)
	h.expect(down("web", rs))
	st := h.status("web", rs)
	if st.Failures != 2 || ReasonClass(st.Reason) != "refused" {
		t.Errorf("status %+v", st)
	}
}

func TestSchedulerAllChecksMustPass(t *testing.T) {
	h := newHarness(t)
	const rs = "10.0.0.3:80"
	web, admin := tcpCheck(1, 1), tcpCheck(1, 1)
	admin.Port = 8080
	h.fakes.set(rs, true)
	h.s.Update([]Target{tgt("web", rs, false, web, admin)})
	h.tick(2)
	h.expect(down("web", rs)) // port 8080 refuses
	if st := h.status("web", rs); len(st.Checks) != 2 || st.Checks[1].Health != Down || st.Checks[0].Health != Up {
		t.Errorf("checks %+v", st.Checks)
	}
	h.fakes.set("10.0.0.3:8080", true)
	h.tick(2)
	h.expect(up("web", rs))
}

func TestSchedulerSharesIdenticalChecks(t *testing.T) {
	h := newHarness(t)
	const rs = "10.0.0.4:2170"
	h.fakes.set(rs, true)
	// Three services balance the same BDII; two use the same check (rise
	// and fall are per target and do not prevent sharing), one a different one.
	other := tcpCheck(1, 1)
	other.Timeout = dur(400 * time.Millisecond)
	h.s.Update([]Target{
		tgt("bdii-a", rs, false, tcpCheck(1, 1)),
		tgt("bdii-b", rs, false, tcpCheck(2, 1)),
		tgt("bdii-c", rs, false, other),
	})
	if got := h.fakes.count(h.fakes.built, rs); got != 2 {
		t.Fatalf("built %d checkers, want 2", got)
	}
	h.tick(2)
	h.tick(2)
	if got := h.fakes.count(h.fakes.calls, rs); got != 4 {
		t.Fatalf("%d probe calls in 2 intervals, want 4 (two probes, each once per interval)", got)
	}
	var got []Transition
	for len(h.transitions) > 0 {
		got = append(got, <-h.transitions)
	}
	if len(got) != 3 {
		t.Fatalf("transitions %+v, want one up for each service", got)
	}
	for _, st := range h.s.Status() {
		if st.Health != Up {
			t.Errorf("%s: %s", st.Service, st.Health)
		}
		want := 2
		if st.Service == "bdii-c" {
			want = 1
		}
		if st.Checks[0].SharedBy != want {
			t.Errorf("%s: probe shared by %d, want %d", st.Service, st.Checks[0].SharedBy, want)
		}
	}
}

func TestSchedulerReloadKeepsState(t *testing.T) {
	h := newHarness(t)
	a, b, c := "10.0.0.5:80", "10.0.0.6:80", "10.0.0.7:80"
	for _, rs := range []string{a, b, c} {
		h.fakes.set(rs, true)
	}
	h.s.Update([]Target{tgt("web", a, false, tcpCheck(2, 2)), tgt("web", b, false, tcpCheck(2, 2))})
	h.tick(2)
	h.tick(2)
	h.expect(up("web", a), up("web", b))

	// Reload: a unchanged (fresh config structs, equal values), b removed, c new.
	h.s.Update([]Target{tgt("web", a, false, tcpCheck(2, 2)), tgt("web", c, false, tcpCheck(2, 2))})
	h.expect()
	if st := h.status("web", a); st.Health != Up || st.Successes != 2 {
		t.Errorf("a after reload: %+v", st)
	}
	if got := h.fakes.count(h.fakes.built, a); got != 1 {
		t.Errorf("a's checker was rebuilt (%d builds): its probe must carry over", got)
	}
	if len(h.s.Status()) != 2 {
		t.Errorf("status has %d targets, want 2", len(h.s.Status()))
	}
	callsB := h.fakes.count(h.fakes.calls, b)
	h.tick(2)
	h.tick(2)
	h.expect(up("web", c))
	if got := h.fakes.count(h.fakes.calls, b); got != callsB {
		t.Errorf("removed target b was probed %d more times", got-callsB)
	}

	// Adding a check to a healthy server neither evicts nor flaps it.
	extra := tcpCheck(2, 2)
	extra.Port = 81
	h.s.Update([]Target{tgt("web", a, false, tcpCheck(2, 2), extra), tgt("web", c, false, tcpCheck(2, 2))})
	h.expect()
	if st := h.status("web", a); st.Health != Up {
		t.Errorf("a after adding a check: %s", st.Health)
	}
	h.tick(3) // port 81 refuses: one failure is below fall
	h.expect()
	h.tick(3)
	h.expect(down("web", a))

	// Removing the failing check on reload brings the server back at once.
	h.s.Update([]Target{tgt("web", a, false, tcpCheck(2, 2)), tgt("web", c, false, tcpCheck(2, 2))})
	h.expect(up("web", a))
}

// A target whose service a reload renamed keeps its state and its probe:
// no transition, no rebuilt checker, no return to unknown.
func TestSchedulerRenamedServiceKeepsState(t *testing.T) {
	h := newHarness(t)
	const rs = "10.0.0.8:80"
	h.fakes.set(rs, true)
	h.s.Update([]Target{tgt("web", rs, false, tcpCheck(2, 2))})
	h.tick(1)
	h.tick(1)
	h.expect(up("web", rs))
	renamed := tgt("www", rs, false, tcpCheck(2, 2))
	renamed.Previous = "web"
	h.s.Update([]Target{renamed})
	h.expect()
	if st := h.status("www", rs); st.Health != Up || st.Successes != 2 {
		t.Errorf("after the rename: %+v", st)
	}
	if n := undecided(h.s); n != 0 {
		t.Errorf("%d undecided after the rename", n)
	}
	if got := h.fakes.count(h.fakes.built, rs); got != 1 {
		t.Errorf("the checker was rebuilt (%d builds)", got)
	}
}

func TestSchedulerHungProbeDoesNotDelayOthers(t *testing.T) {
	h := newHarness(t)
	hung, fine := "10.0.0.8:80", "10.0.0.9:80"
	h.fakes.hang[hung] = true
	h.fakes.set(fine, true)
	h.s.Update([]Target{tgt("web", hung, false, tcpCheck(1, 1)), tgt("web", fine, false, tcpCheck(1, 1))})
	for i := 0; i < 5; i++ {
		h.tick(1) // only the healthy server's probe finishes
	}
	if got := h.fakes.count(h.fakes.calls, fine); got != 5 {
		t.Errorf("healthy server probed %d times in 5 intervals, want 5", got)
	}
	// The hung probe's goroutine may not have been scheduled yet.
	for deadline := time.Now().Add(10 * time.Second); h.fakes.count(h.fakes.calls, hung) == 0 && time.Now().Before(deadline); {
		time.Sleep(time.Millisecond)
	}
	if got := h.fakes.count(h.fakes.calls, hung); got != 1 {
		t.Errorf("hung probe started %d times, want 1 (no overlapping runs)", got)
	}
	h.expect(up("web", fine))
}

func TestSchedulerDynamicWeight(t *testing.T) {
	h := newHarness(t)
	const rs = "10.0.0.10:80"
	h.fakes.set(rs, true)
	h.fakes.weight[rs] = 5
	h.s.Update([]Target{tgt("web", rs, false, tcpCheck(1, 1))})
	h.tick(1)
	h.expect(Transition{Service: "web", RealServer: rs, Healthy: true, Weight: 5})
	h.tick(1)
	h.expect()
	h.fakes.mu.Lock()
	h.fakes.weight[rs] = 7
	h.fakes.mu.Unlock()
	h.tick(1)
	h.expect(Transition{Service: "web", RealServer: rs, Healthy: true, Weight: 7})
	if st := h.status("web", rs); st.Weight != 7 {
		t.Errorf("status weight %d, want 7", st.Weight)
	}
}

func TestSchedulerSpreadsFirstRuns(t *testing.T) {
	s := NewScheduler(nil, nil, WithClock(newFakeClock()))
	s.newChecker = (&fakeProbes{built: map[string]int{}}).newChecker
	var targets []Target
	for i := range 200 {
		c := tcpCheck(1, 1)
		c.Interval = dur(10 * time.Second)
		if i%2 == 1 {
			c.Warmup = dur(time.Minute)
		}
		targets = append(targets, tgt("web", netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 1, 0, byte(i)}), 80).String(), false, c))
	}
	now := s.clock.Now()
	s.Update(targets)
	var early, late int
	for _, p := range s.probes {
		limit := p.interval
		if p.warmup > 0 {
			limit = p.warmup
		}
		d := p.due.Sub(now)
		if d < 0 || d >= limit {
			t.Errorf("first run after %s, want within [0, %s)", d, limit)
		}
		if d < limit/2 {
			early++
		} else {
			late++
		}
	}
	// 200 uniform draws: both halves empty has probability 2^-199.
	if early == 0 || late == 0 {
		t.Errorf("first runs not spread: %d early, %d late", early, late)
	}
}

func TestSchedulerMetrics(t *testing.T) {
	h := newHarness(t)
	reg := prometheus.NewRegistry()
	if err := h.s.RegisterMetrics(reg); err != nil {
		t.Fatal(err)
	}
	const rs = "10.0.0.11:80"
	h.s.Update([]Target{tgt("web", rs, false, tcpCheck(1, 1))})
	h.tick(1)
	h.expect(down("web", rs))
	h.fakes.set(rs, true)
	h.tick(1)
	h.expect(up("web", rs))

	got := map[string]float64{}
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		for _, m := range f.GetMetric() {
			var labels []string
			for _, l := range m.GetLabel() {
				labels = append(labels, l.GetName()+"="+l.GetValue())
			}
			key := f.GetName() + "{" + strings.Join(labels, ",") + "}"
			switch {
			case m.GetGauge() != nil:
				got[key] = m.GetGauge().GetValue()
			case m.GetCounter() != nil:
				got[key] = m.GetCounter().GetValue()
			case m.GetHistogram() != nil:
				got[key] = float64(m.GetHistogram().GetSampleCount())
			}
		}
	}
	for key, want := range map[string]float64{
		"lvsd_realserver_up{realserver=10.0.0.11:80,service=web}":                          1,
		"lvsd_check_transitions_total{realserver=10.0.0.11:80,service=web,to=down}":        1,
		"lvsd_check_transitions_total{realserver=10.0.0.11:80,service=web,to=up}":          1,
		"lvsd_check_last_failure_info{realserver=10.0.0.11:80,reason=refused,service=web}": 1,
		"lvsd_check_duration_seconds{realserver=10.0.0.11:80,service=web,type=tcp}":        2,
		"lvsd_check_schedule_lag_seconds{}":                                                2,
		"lvsd_check_probes_total{result=fail}":                                             1,
		"lvsd_check_probes_total{result=ok}":                                               1,
	} {
		if got[key] != want {
			t.Errorf("%s = %v, want %v", key, got[key], want)
		}
	}
	// Removing the target removes its series.
	h.s.Update(nil)
	families, _ = reg.Gather()
	for _, f := range families {
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetValue() == rs {
					t.Errorf("%s still has a series for the removed %s", f.GetName(), rs)
				}
			}
		}
	}
}

// The scheduler with real TCP checks and the real clock: a listener that
// goes away is evicted and comes back when it returns.
func TestSchedulerRealTCP(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go acceptAndClose(l)
	addr := addrOf(t, l.Addr())
	transitions := make(chan Transition, 10)
	s := NewScheduler(nil, func(tr Transition) { transitions <- tr })
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- s.Run(ctx) }()
	defer func() {
		cancel()
		<-done
	}()
	c := complete(t, &config.Check{Type: "tcp", Interval: dur(20 * time.Millisecond), Timeout: dur(10 * time.Millisecond), Rise: 2, Fall: 2})
	s.Update([]Target{{Service: "web", RealServer: addr.String(), Addr: addr, Checks: []*config.Check{c}}})
	wait := func(healthy bool) {
		t.Helper()
		select {
		case tr := <-transitions:
			if tr.Healthy != healthy {
				t.Fatalf("transition %+v, want healthy=%v", tr, healthy)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("no transition to healthy=%v", healthy)
		}
	}
	wait(true)
	l.Close()
	wait(false)
	if st := s.Status()[0]; ReasonClass(st.Reason) != "refused" {
		t.Errorf("reason %q, want a refused connection", st.Reason)
	}
	l2, err := net.Listen("tcp", addr.String())
	if err != nil {
		t.Skipf("cannot listen on %s again: %v", addr, err)
	}
	defer l2.Close()
	go acceptAndClose(l2)
	wait(true)
}

// undecided counts the targets whose health is still unknown: alpha
// servers whose checks have neither passed rise times nor failed fall times.
func undecided(s *Scheduler) int {
	n := 0
	for _, t := range s.Status() {
		if t.Health == Unknown {
			n++
		}
	}
	return n
}
