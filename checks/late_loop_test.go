package checks

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/lvsd/lvsd/config"
)

// lvsd's own lateness must never become a verdict on a server. These tests
// hold lvsd up on purpose, deterministically (a hook that blocks the
// connect loop or a probe's goroutine, with a fake clock moved by the
// test, or a real deadline that has certainly passed), against real
// sockets, and check that servers that are up stay up, that the scheduler
// says it is behind and probes less often, and that a server that really
// does not answer is still failed.

func TestNextTurn(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	const interval = time.Second // tolerance 50 ms
	for _, tc := range []struct {
		name             string
		start, end, next time.Duration // after t0, where the turn was due
		skipped          int
	}{
		{"on time keeps the phase", 0, 300 * time.Millisecond, time.Second, 0},
		{"early (sharing a wakeup) keeps the phase", -30 * time.Millisecond, 10 * time.Millisecond, time.Second, 0},
		{"late within the tolerance keeps the phase", 50 * time.Millisecond, 60 * time.Millisecond, time.Second, 0},
		{"late slides the phase by the excess", 500 * time.Millisecond, 510 * time.Millisecond, 1450 * time.Millisecond, 0},
		{"a run outlasting the interval skips turns", 0, 2500 * time.Millisecond, 3 * time.Second, 2},
		{"late and outlasting", 500 * time.Millisecond, 3 * time.Second, 3450 * time.Millisecond, 2},
	} {
		next, skipped := nextTurn(t0, t0.Add(tc.start), t0.Add(tc.end), interval)
		if got := next.Sub(t0); got != tc.next || skipped != tc.skipped {
			t.Errorf("%s: next turn at +%s, %d skipped; want +%s, %d", tc.name, got, skipped, tc.next, tc.skipped)
		}
	}
}

// loopHarness runs a Scheduler with its connect loop on a fake clock
// against real sockets.
type loopHarness struct {
	t           *testing.T
	clock       *fakeClock
	s           *Scheduler
	reg         *prometheus.Registry
	runs        chan ProbeRun
	transitions chan Transition

	// holdIf, when set, is asked at the end of every turn of the loop; the
	// first time it says yes the loop blocks until release is called.
	holdIf  atomic.Pointer[func(l *connectLoop) bool]
	held    chan struct{}
	release chan struct{}
	// seen is the start of the latest turn of the loop (UnixNano) and
	// flights how many connects it left under way.
	seen    atomic.Int64
	flights atomic.Int64
}

func newLoopHarness(t *testing.T) *loopHarness {
	h := &loopHarness{t: t, clock: newFakeClock(), reg: prometheus.NewRegistry(),
		runs: make(chan ProbeRun, 10000), transitions: make(chan Transition, 10000),
		held: make(chan struct{}), release: make(chan struct{})}
	h.s = NewScheduler(nil, func(tr Transition) { h.transitions <- tr },
		WithClock(h.clock), WithProbeHook(func(r ProbeRun) { h.runs <- r }))
	if err := h.s.RegisterMetrics(h.reg); err != nil {
		t.Fatal(err)
	}
	h.s.holdLoop = func(l *connectLoop, now time.Time) {
		h.flights.Store(int64(l.inFlight))
		h.seen.Store(now.UnixNano())
		if f := h.holdIf.Load(); f != nil && (*f)(l) {
			h.holdIf.Store(nil)
			h.held <- struct{}{}
			<-h.release
		}
	}
	return h
}

// start runs the scheduler on targets, every first turn due at +1 s.
func (h *loopHarness) start(targets []Target) {
	h.s.Update(targets)
	h.s.mu.Lock()
	for _, p := range h.s.probes {
		p.due = h.clock.Now().Add(time.Second)
		h.s.turnDue(p, p.due)
	}
	h.s.mu.Unlock()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		h.s.Run(ctx)
		close(done)
	}()
	h.t.Cleanup(func() {
		cancel()
		<-done
	})
	h.waitLoop(h.clock.Now(), -1)
}

// waitLoop waits until a turn of the loop that started at or after at has
// ended with flights connects under way (any number for -1).
func (h *loopHarness) waitLoop(at time.Time, flights int64) {
	h.t.Helper()
	for deadline := time.Now().Add(10 * time.Second); ; {
		h.s.mu.Lock()
		l := h.s.loop
		h.s.mu.Unlock()
		if l != nil {
			if h.seen.Load() >= at.UnixNano() && (flights < 0 || h.flights.Load() == flights) {
				return
			}
			l.poke()
		}
		if time.Now().After(deadline) {
			h.t.Fatalf("the connect loop did not turn at %s with %d connects under way (last turn %s, %d under way)",
				at, flights, time.Unix(0, h.seen.Load()).UTC(), h.flights.Load())
		}
		time.Sleep(time.Millisecond)
	}
}

// hold makes the loop block at the end of its next turn for which cond holds.
func (h *loopHarness) hold(cond func(l *connectLoop) bool) { h.holdIf.Store(&cond) }

// waitHeld waits until the loop blocks in the hold, poking it so that it
// turns even when nothing is due.
func (h *loopHarness) waitHeld() {
	h.t.Helper()
	for deadline := time.Now().Add(10 * time.Second); ; {
		select {
		case <-h.held:
			return
		case <-time.After(time.Millisecond):
		}
		if time.Now().After(deadline) {
			h.t.Fatal("the connect loop never reached the hold")
		}
		h.s.loop.poke()
	}
}

// collect returns the next n probe runs.
func (h *loopHarness) collect(n int) []ProbeRun {
	h.t.Helper()
	out := make([]ProbeRun, 0, n)
	for len(out) < n {
		select {
		case r := <-h.runs:
			out = append(out, r)
		case <-time.After(10 * time.Second):
			h.t.Fatalf("only %d of %d probe runs came", len(out), n)
		}
	}
	return out
}

// noDowns fails the test for any transition to down so far.
func (h *loopHarness) noDowns() {
	h.t.Helper()
	for len(h.transitions) > 0 {
		if tr := <-h.transitions; !tr.Healthy {
			h.t.Errorf("server that is up taken down: %+v", tr)
		}
	}
}

func (h *loopHarness) gauge(name string) float64 {
	h.t.Helper()
	families, err := h.reg.Gather()
	if err != nil {
		h.t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() == name {
			return f.GetMetric()[0].GetGauge().GetValue()
		}
	}
	h.t.Fatalf("no metric %s", name)
	return 0
}

func (h *loopHarness) wantBacklog(behind int, worst time.Duration) {
	h.t.Helper()
	b := h.s.Backlog()
	if b.Behind != behind || b.Worst != worst {
		h.t.Errorf("Backlog() = %+v, want %d checks behind by %s", b, behind, worst)
	}
	if g := h.gauge("lvsd_check_behind_schedule"); g != float64(behind) {
		h.t.Errorf("lvsd_check_behind_schedule = %v, want %d", g, behind)
	}
	if g := h.gauge("lvsd_check_behind_schedule_seconds"); g != worst.Seconds() {
		h.t.Errorf("lvsd_check_behind_schedule_seconds = %v, want %v", g, worst.Seconds())
	}
}

// connectTargets returns n connect-only checks of the listener at addr,
// each from its own loopback source address, so that each is a probe of
// its own.
func connectTargets(t testing.TB, n int, addr netip.AddrPort, interval, timeout time.Duration, fall int) []Target {
	var targets []Target
	for i := range n {
		c := complete(t, &config.Check{Type: "tcp", Interval: dur(interval), Timeout: dur(timeout), Rise: 1, Fall: fall,
			SourceAddress: srcAddr(fmt.Sprintf("127.0.%d.%d", 1+i/250, 1+i%250))})
		targets = append(targets, Target{Service: fmt.Sprintf("svc%d", i), RealServer: addr.String(), Addr: addr,
			Checks: []*config.Check{c}, StartHealthy: true})
	}
	return targets
}

// The connect loop is held up for 2 s just after it started more connects
// than one epoll read returns, all to a listener that accepts them at
// once. Every one is reported up, none timed out; while held, the loop
// says it is behind. Then, held while turns are due, it starts them late,
// says so, and stretches their interval rather than catching up; once it
// runs on time again it is no longer behind.
func TestConnectLoopHeldUpReportsUp(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go acceptAndClose(l)
	addr := addrOf(t, l.Addr())
	const n = eventBatch + 44
	const interval, timeout = time.Second, 900 * time.Millisecond
	tol := lateTolerance(interval)

	h := newLoopHarness(t)
	t0 := h.clock.Now()
	h.start(connectTargets(t, n, addr, interval, timeout, 1))

	// 1. Held with every connect under way, past their timeout.
	h.hold(func(l *connectLoop) bool { return l.inFlight > 0 })
	h.clock.Advance(time.Second)
	h.waitHeld()
	h.clock.Advance(2 * time.Second) // now t0+3s; the connects' timeouts ran out at t0+1.9s
	h.wantBacklog(n, 1100*time.Millisecond)
	close(h.release)
	h.waitLoop(t0.Add(3*time.Second), 0)
	h.clock.Advance(flushWindow) // passing results wait this long to share a handover
	for _, r := range h.collect(n) {
		if !r.Result.Healthy || r.Inconclusive {
			t.Errorf("%s held up with its handshake done: %q (inconclusive %v), want up", r.Addr, r.Result.Reason, r.Inconclusive)
		}
	}
	h.noDowns()
	// They were judged late, but were on time and are done: nothing is
	// behind; the turns due meanwhile were skipped (next turn t0+4s).
	h.wantBacklog(0, 0)

	// 2. Held while every next turn comes due, until 500 ms past it.
	h.release = make(chan struct{})
	h.hold(func(l *connectLoop) bool { return l.inFlight == 0 })
	h.waitHeld()
	h.clock.Advance(t0.Add(4500 * time.Millisecond).Sub(h.clock.Now()))
	h.wantBacklog(n, 500*time.Millisecond)
	close(h.release)
	h.waitLoop(t0.Add(4500*time.Millisecond), 0)
	h.clock.Advance(flushWindow)
	for _, r := range h.collect(n) {
		if !r.Result.Healthy || r.Start.Sub(r.Due) != 500*time.Millisecond {
			t.Errorf("%s: turn due +%s started +%s: %q, want up, 500ms late", r.Addr, r.Due.Sub(t0), r.Start.Sub(t0), r.Result.Reason)
			break
		}
	}
	h.noDowns()
	h.wantBacklog(n, 500*time.Millisecond) // their latest turns started late

	// 3. Run on time again: the next turns are an interval after the late
	// ones started, less the tolerance (not at t0+5s, the old phase).
	h.clock.Advance(interval - tol - flushWindow) // now t0+5.45s
	h.waitLoop(t0.Add(5450*time.Millisecond), 0)
	h.clock.Advance(flushWindow)
	for _, r := range h.collect(n) {
		if want := t0.Add(5450 * time.Millisecond); !r.Due.Equal(want) {
			t.Errorf("%s: turn after a late one due at +%s, want +%s", r.Addr, r.Due.Sub(t0), want.Sub(t0))
			break
		}
	}
	h.noDowns()
	h.wantBacklog(0, 0)
}

// Whatever the loop has or has not read, a connect it judges after its
// timeout is what its socket says: up, refused, or, still connecting, a
// timeout.
func TestConnectLoopExpiryAsksTheSocket(t *testing.T) {
	srv := startLineServer(t)
	upAddr := addrOf(t, srv.l.Addr())
	refused := closedPort(t)
	stuck := stuckListener(t)
	s := NewScheduler(nil, nil)
	l, err := newConnectLoop(s)
	if err != nil {
		t.Fatal(err)
	}
	defer l.close()
	c := complete(t, &config.Check{Type: "tcp", Interval: dur(time.Second), Timeout: dur(100 * time.Millisecond)})
	want := map[netip.AddrPort]string{upAddr: "ok", refused: "refused", stuck: "timeout"}
	due := time.Now()
	for addr := range want {
		checker, err := New(c, addr)
		if err != nil {
			t.Fatal(err)
		}
		l.begin(&probe{addr: addr, tcp: checker.(*tcpChecker), interval: time.Second, timeout: 100 * time.Millisecond}, due)
	}
	// No event is read: expire alone decides, long after every timeout.
	l.expire(time.Now().Add(time.Hour))
	got := map[netip.AddrPort]string{}
	for _, f := range l.batch {
		got[f.probe.addr] = ReasonClass(f.result.Reason)
	}
	for addr, class := range want {
		if got[addr] != class {
			t.Errorf("%s: %q, want %s", addr, got[addr], class)
		}
	}
	l.abandon()
}

// A server that does not answer is still failed, and within fall ×
// interval + timeout of the start of the turn that first found it
// silent, when lvsd is not behind (here on the fake clock, so exactly).
func TestConnectLoopRealTimeoutWithinBound(t *testing.T) {
	stuck := stuckListener(t)
	const interval, timeout, fall = time.Second, 500 * time.Millisecond, 2
	h := newLoopHarness(t)
	t0 := h.clock.Now()
	c := complete(t, &config.Check{Type: "tcp", Interval: dur(interval), Timeout: dur(timeout), Rise: 1, Fall: fall})
	h.start([]Target{{Service: "web", RealServer: stuck.String(), Addr: stuck, Checks: []*config.Check{c}, StartHealthy: true}})
	for turn := range fall {
		due := t0.Add(time.Second + time.Duration(turn)*interval)
		h.clock.Advance(due.Sub(h.clock.Now()))
		h.waitLoop(due, 1)
		h.clock.Advance(timeout)
		r := h.collect(1)[0]
		if ReasonClass(r.Result.Reason) != "timeout" || r.Inconclusive {
			t.Fatalf("turn %d: %q (inconclusive %v), want a timeout", turn+1, r.Result.Reason, r.Inconclusive)
		}
	}
	select {
	case tr := <-h.transitions:
		if tr.Healthy {
			t.Fatalf("transition %+v, want down", tr)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a silent server was never taken down")
	}
	if bound := t0.Add(time.Second + fall*interval + timeout); h.clock.Now().After(bound) {
		t.Errorf("down at +%s, after the bound +%s", h.clock.Now().Sub(t0), bound.Sub(t0))
	}
	h.wantBacklog(0, 0)
}

type steppingClock struct {
	mu   sync.Mutex
	now  time.Time
	step time.Duration
}

func (c *steppingClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(c.step)
	return c.now
}

func (c *steppingClock) AfterFunc(time.Time, func()) Timer { return fakeTimerStub{} }

type fakeTimerStub struct{}

func (fakeTimerStub) Stop() bool { return false }

// A burst of due turns is started in slices of startBudget, so the loop
// reads completed handshakes and hands results over between them.
func TestConnectLoopStartsABurstInSlices(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go acceptAndClose(l)
	addr := addrOf(t, l.Addr())
	clock := &steppingClock{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), step: time.Millisecond}
	s := NewScheduler(nil, nil, WithClock(clock))
	loop, err := newConnectLoop(s)
	if err != nil {
		t.Fatal(err)
	}
	defer loop.close()
	defer loop.abandon()
	checker, err := New(complete(t, &config.Check{Type: "tcp", Interval: dur(time.Second), Timeout: dur(500 * time.Millisecond)}), addr)
	if err != nil {
		t.Fatal(err)
	}
	now := clock.Now()
	const due = 50
	for range due {
		loop.due = append(loop.due, dueProbe{now, &probe{addr: addr, tcp: checker.(*tcpChecker), interval: time.Second, timeout: 500 * time.Millisecond}})
	}
	if more := loop.startDue(now); !more {
		t.Fatal("startDue started all 50 turns in one go, each 1 ms apart, want a slice of startBudget")
	}
	started := due - len(loop.due)
	if want := int(startBudget / time.Millisecond); started != want {
		t.Errorf("%d turns started in one slice, want %d (startBudget at 1 ms per start)", started, want)
	}
}

type heapInt int

func (a heapInt) before(b heapInt) bool { return a < b }

func TestMinHeap(t *testing.T) {
	var h minHeap[heapInt]
	in := []heapInt{5, 3, 9, 1, 1, 7, 2, 8, 0, 6}
	for _, x := range in {
		h.Push(x)
	}
	var out []heapInt
	for h.Len() > 0 {
		out = append(out, h.Pop())
	}
	for i := 1; i < len(out); i++ {
		if out[i] < out[i-1] || len(out) != len(in) {
			t.Fatalf("popped %v, want %v sorted", out, in)
		}
	}
}
