package checks

import (
	"context"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/lvsd/lvsd/config"
)

// lvsd's own lateness must never become a verdict on a server: the
// goroutine path (every check but connect-only tcp). See late_loop_test.go
// for the connect loop.

// A goroutine probe whose goroutine runs only after its deadline (held
// here by a hook past it) finds its context expired: that timeout is lvsd
// being late, not the server. The run is inconclusive, is retried at
// once, and the server, which answers, is never taken down.
func TestGoroutineProbeHeldPastDeadlineIsInconclusive(t *testing.T) {
	srv := startLineServer(t)
	addr := addrOf(t, srv.l.Addr())
	const interval, timeout = time.Second, 100 * time.Millisecond
	runs := make(chan ProbeRun, 100)
	transitions := make(chan Transition, 100)
	reg := prometheus.NewRegistry()
	s := NewScheduler(nil, func(tr Transition) { transitions <- tr }, WithProbeHook(func(r ProbeRun) { runs <- r }))
	if err := s.RegisterMetrics(reg); err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	s.holdProbe = func(_ *probe, deadline time.Time) {
		once.Do(func() { time.Sleep(time.Until(deadline) + 2*probeTolerance(timeout)) })
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		s.Run(ctx)
		close(done)
	}()
	defer func() {
		cancel()
		<-done
	}()
	c := complete(t, &config.Check{Type: "tcp", Interval: dur(interval), Timeout: dur(timeout), Rise: 1, Fall: 1,
		Settings: &TCPSettings{Send: "PING\r\n", Expect: "PONG"}})
	s.Update([]Target{{Service: "web", RealServer: addr.String(), Addr: addr, Checks: []*config.Check{c}, StartHealthy: true}})

	var first ProbeRun
	select {
	case first = <-runs:
	case <-time.After(10 * time.Second):
		t.Fatal("no probe run")
	}
	if !first.Inconclusive || ReasonClass(first.Result.Reason) != "timeout" {
		t.Fatalf("run held past its deadline: %q (inconclusive %v), want an inconclusive timeout", first.Result.Reason, first.Inconclusive)
	}
	// Retried at once, not at its next turn; then up (or, on a machine
	// busy enough to stall lvsd again, inconclusive again, never down).
	for i := 0; ; i++ {
		var r ProbeRun
		select {
		case r = <-runs:
		case <-time.After(10 * time.Second):
			t.Fatal("no healthy run after the inconclusive one")
		}
		if i == 0 && !r.Due.Before(first.Due.Add(interval)) {
			t.Errorf("retry due at %s, not before the next turn %s", r.Due, first.Due.Add(interval))
		}
		if r.Result.Healthy {
			break
		}
		if !r.Inconclusive {
			t.Fatalf("run after the inconclusive one: %q, want up", r.Result.Reason)
		}
	}
	for len(transitions) > 0 {
		if tr := <-transitions; !tr.Healthy {
			t.Errorf("server that answers taken down: %+v", tr)
		}
	}
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var inconclusive float64
	for _, f := range families {
		for _, m := range f.GetMetric() {
			if f.GetName() == "lvsd_check_probes_total" && m.GetLabel()[0].GetValue() == "inconclusive" {
				inconclusive = m.GetCounter().GetValue()
			}
		}
	}
	if inconclusive < 1 {
		t.Errorf(`lvsd_check_probes_total{result="inconclusive"} = %v, want at least 1`, inconclusive)
	}
}

// gateChecker blocks each probe until the test lets it return its result.
type gateChecker struct {
	entered chan struct{}
	results chan Result
}

func (g gateChecker) Check(context.Context) Result {
	g.entered <- struct{}{}
	return <-g.results
}

// A goroutine probe during which lvsd stalled (its clock moved 2 s while
// nothing ran, as in a stop of the process) is inconclusive even when its
// goroutine saw the deadline on time: the reply may have come, unread,
// during the stall.
func TestGoroutineProbeTimeoutDuringStallIsInconclusive(t *testing.T) {
	clock := newFakeClock()
	t0 := clock.Now()
	runs := make(chan ProbeRun, 100)
	transitions := make(chan Transition, 100)
	gate := gateChecker{entered: make(chan struct{}), results: make(chan Result)}
	s := NewScheduler(nil, func(tr Transition) { transitions <- tr }, WithClock(clock), WithProbeHook(func(r ProbeRun) { runs <- r }))
	s.newChecker = func(*config.Check, netip.AddrPort) (Checker, error) { return gate, nil }
	const interval, timeout = 5 * time.Second, 3 * time.Second
	c := complete(t, &config.Check{Type: "tcp", Interval: dur(interval), Timeout: dur(timeout), Rise: 1, Fall: 1,
		Settings: &TCPSettings{Send: "PING\r\n", Expect: "PONG"}})
	rs := netip.MustParseAddrPort("192.0.2.1:80")
	s.Update([]Target{{Service: "web", RealServer: rs.String(), Addr: rs, Checks: []*config.Check{c}, StartHealthy: true}})
	s.mu.Lock()
	for _, p := range s.probes {
		p.due = t0.Add(time.Second)
	}
	s.mu.Unlock()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		s.Run(ctx)
		close(done)
	}()
	defer func() {
		cancel()
		<-done
	}()
	clock.Advance(time.Second)
	<-gate.entered
	clock.Advance(2 * time.Second) // a stall: the watch's tick is 2 s late
	clock.Advance(time.Second)     // the deadline, exactly
	gate.results <- failf("timeout", "no reply")
	r := <-runs
	if !r.Inconclusive {
		t.Fatalf("timeout across a 2 s stall of lvsd: %q, want inconclusive", r.Result.Reason)
	}
	if !strings.Contains(r.Result.Reason, "inconclusive") {
		t.Errorf("reason %q does not say why it did not count", r.Result.Reason)
	}
	// Retried at once, at the same fake instant.
	<-gate.entered
	gate.results <- Result{Healthy: true, Reason: "ok: replied", Weight: -1}
	if r := <-runs; !r.Result.Healthy || !r.Due.Equal(t0.Add(time.Second+timeout)) {
		t.Errorf("retry: %+v due +%s, want healthy, due at once (+%s)", r.Result, r.Due.Sub(t0), time.Second+timeout)
	}
	for len(transitions) > 0 {
		if tr := <-transitions; !tr.Healthy {
			t.Errorf("taken down for lvsd's stall: %+v", tr)
		}
	}
}

// A goroutine probe of a server that accepts and never answers is still a
// timeout, and the server is taken down, when lvsd keeps up.
func TestGoroutineProbeRealTimeoutIsAVerdict(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	t.Cleanup(func() {
		l.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c) // held open, never answered
			mu.Unlock()
		}
	}()
	addr := addrOf(t, l.Addr())
	transitions := make(chan Transition, 10)
	s := NewScheduler(nil, func(tr Transition) { transitions <- tr })
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		s.Run(ctx)
		close(done)
	}()
	defer func() {
		cancel()
		<-done
	}()
	c := complete(t, &config.Check{Type: "tcp", Interval: dur(100 * time.Millisecond), Timeout: dur(50 * time.Millisecond), Rise: 1, Fall: 2,
		Settings: &TCPSettings{Send: "PING\r\n", Expect: "PONG"}})
	s.Update([]Target{{Service: "web", RealServer: addr.String(), Addr: addr, Checks: []*config.Check{c}, StartHealthy: true}})
	select {
	case tr := <-transitions:
		if tr.Healthy || ReasonClass(tr.Reason) != "timeout" {
			t.Fatalf("transition %+v, want down for a timeout", tr)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a server that never answers was never taken down")
	}
}

// steppingClock moves on by step at every reading.
// A hung exec script whose escaped grandchild holds its output open is
// still failed as a timeout: waiting for the held pipes must not make its
// every timeout look like lvsd being late.
func TestGoroutineProbeHungScriptHoldingPipesIsAVerdict(t *testing.T) {
	pidFile := filepath.Join(t.TempDir(), "escaped.pid")
	t.Cleanup(func() {
		if data, err := os.ReadFile(pidFile); err == nil {
			for _, f := range strings.Fields(string(data)) {
				if pid, err := strconv.Atoi(f); err == nil {
					syscall.Kill(pid, syscall.SIGKILL)
				}
			}
		}
	})
	script := "setsid sleep 30 & echo $! >> " + pidFile + "; sleep 30"
	transitions := make(chan Transition, 10)
	s := NewScheduler(nil, func(tr Transition) { transitions <- tr })
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		s.Run(ctx)
		close(done)
	}()
	defer func() {
		cancel()
		<-done
	}()
	c := complete(t, &config.Check{Type: "exec", Interval: dur(300 * time.Millisecond), Timeout: dur(100 * time.Millisecond), Rise: 1, Fall: 1,
		Settings: &ExecSettings{Command: []string{"sh", "-c", script}}})
	rs := netip.MustParseAddrPort("192.0.2.1:80")
	s.Update([]Target{{Service: "web", RealServer: rs.String(), Addr: rs, Checks: []*config.Check{c}, StartHealthy: true}})
	select {
	case tr := <-transitions:
		if tr.Healthy || ReasonClass(tr.Reason) != "timeout" {
			t.Fatalf("transition %+v, want down for a timeout", tr)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a hung script holding its output open was never failed")
	}
}
