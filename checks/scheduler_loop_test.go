package checks

import (
	"context"
	"net/netip"
	"os"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/lvsd/lvsd/config"
)

func openFDs(t *testing.T) int {
	t.Helper()
	fds, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skipf("cannot count open files: %v", err)
	}
	return len(fds)
}

// Connect-only TCP checks run on the connect loop under the real clock and
// give the goroutine path's results: up, refused and timeout, each on its
// own interval and never overlapping itself, so a hung server delays no
// other. A check with something to send still runs as a goroutine. Stopping
// closes the sockets still connecting.
func TestConnectLoop(t *testing.T) {
	srv := startLineServer(t)
	up := addrOf(t, srv.l.Addr())
	replies := addrOf(t, startLineServer(t).l.Addr())
	refused := closedPort(t)
	stuck := stuckListener(t)
	before := openFDs(t)

	var mu sync.Mutex
	runs := map[netip.AddrPort][]ProbeRun{}
	s := NewScheduler(nil, nil, WithProbeHook(func(r ProbeRun) {
		mu.Lock()
		defer mu.Unlock()
		runs[r.Addr] = append(runs[r.Addr], r)
	}))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- s.Run(ctx) }()

	connect := complete(t, &config.Check{Type: "tcp", Interval: dur(60 * time.Millisecond), Timeout: dur(50 * time.Millisecond)})
	sendExpect := complete(t, &config.Check{Type: "tcp", Interval: dur(60 * time.Millisecond), Timeout: dur(50 * time.Millisecond),
		Settings: &TCPSettings{Send: "PING\r\n", Expect: "PONG"}})
	s.Update([]Target{
		{Service: "up", RealServer: up.String(), Addr: up, Checks: []*config.Check{connect}},
		{Service: "replies", RealServer: replies.String(), Addr: replies, Checks: []*config.Check{sendExpect}},
		{Service: "refused", RealServer: refused.String(), Addr: refused, Checks: []*config.Check{connect}},
		{Service: "stuck", RealServer: stuck.String(), Addr: stuck, Checks: []*config.Check{connect}},
	})
	var loop *connectLoop
	for deadline := time.Now().Add(5 * time.Second); loop == nil && time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		s.mu.Lock()
		loop = s.loop
		s.mu.Unlock()
	}
	if loop == nil {
		t.Fatal("the scheduler runs no connect loop under the real clock")
	}
	s.mu.Lock()
	for _, p := range s.probes {
		if want := p.checker.(*tcpChecker).connectOnly != nil; (p.tcp != nil) != want {
			t.Errorf("probe %s: on the connect loop %v, want %v", p.key, p.tcp != nil, want)
		}
	}
	s.mu.Unlock()

	// Several turns of every probe, however slow this machine is today.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		mu.Lock()
		fewest := len(runs[up])
		for _, a := range []netip.AddrPort{replies, refused, stuck} {
			fewest = min(fewest, len(runs[a]))
		}
		mu.Unlock()
		if fewest >= 3 || time.Now().After(deadline) {
			break
		}
	}
	cancel()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return with connects under way")
	}

	mu.Lock()
	defer mu.Unlock()
	wantClass := map[netip.AddrPort]string{up: "ok", replies: "ok", refused: "refused", stuck: "timeout"}
	for addr, class := range wantClass {
		got := runs[addr]
		if len(got) < 3 {
			t.Errorf("%s: %d probe runs in 10 s at a 60 ms interval, want several", addr, len(got))
			continue
		}
		var last ProbeRun
		for _, r := range got {
			if c := ReasonClass(r.Result.Reason); c != class {
				t.Errorf("%s: result %q, want class %s", addr, r.Result.Reason, class)
			}
			if r.Result.Duration <= 0 {
				t.Errorf("%s: result without a duration: %+v", addr, r.Result)
			}
			if class == "timeout" && r.Result.Duration < 50*time.Millisecond {
				t.Errorf("%s: timed out after %s, before the 50ms timeout", addr, r.Result.Duration)
			}
			if !last.Start.IsZero() && r.Start.Before(last.Start.Add(last.Result.Duration)) {
				t.Errorf("%s: a run started at %s, before the previous one (%s for %s) ended", addr, r.Start, last.Start, last.Result.Duration)
			}
			// A turn that started on time keeps the probe's phase; a late
			// one slides it (nextTurn), so a loop behind its schedule
			// never runs a probe more often than its interval.
			if !last.Start.IsZero() {
				onTime := last.Start.Sub(last.Due) <= lateTolerance(60*time.Millisecond)
				if onTime && r.Due.Sub(last.Due)%(60*time.Millisecond) != 0 {
					t.Errorf("%s: due %s is off the 60ms phase of the previous turn, which started on time", addr, r.Due)
				}
				if r.Due.Before(last.Start.Add(60*time.Millisecond - lateTolerance(60*time.Millisecond))) {
					t.Errorf("%s: due %s, less than an interval after the previous turn started at %s", addr, r.Due, last.Start)
				}
			}
			last = r
		}
	}
	if after := openFDs(t); after > before {
		t.Errorf("%d open files after Run returned, %d before: the loop leaks sockets", after, before)
	}
}

// A probe that a reload drops stops being run by the loop.
func TestConnectLoopUpdateStopsProbes(t *testing.T) {
	srv := startLineServer(t)
	addr := addrOf(t, srv.l.Addr())
	var mu sync.Mutex
	var runs, otherRuns []time.Time // of the probe dropped, and of the one added
	s := NewScheduler(nil, nil, WithProbeHook(func(r ProbeRun) {
		mu.Lock()
		if r.Addr == addr {
			runs = append(runs, r.Start)
		} else {
			otherRuns = append(otherRuns, r.Start)
		}
		mu.Unlock()
	}))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go s.Run(ctx)
	c := complete(t, &config.Check{Type: "tcp", Interval: dur(10 * time.Millisecond), Timeout: dur(5 * time.Millisecond)})
	s.Update([]Target{{Service: "web", RealServer: addr.String(), Addr: addr, Checks: []*config.Check{c}}})
	deadline := time.Now().Add(5 * time.Second)
	for {
		mu.Lock()
		n := len(runs)
		mu.Unlock()
		if n >= 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("only %d probe runs in 5 s at a 10 ms interval", n)
		}
		time.Sleep(10 * time.Millisecond)
	}
	// The reload drops the probe and adds another on the same interval;
	// once that one has taken five turns, the loop has had five chances to
	// run the dropped one.
	other := addrOf(t, startLineServer(t).l.Addr())
	s.Update([]Target{{Service: "other", RealServer: other.String(), Addr: other, Checks: []*config.Check{c}}})
	stopped := time.Now()
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		mu.Lock()
		n := len(otherRuns)
		mu.Unlock()
		if n >= 5 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("only %d runs of the new probe in 5 s at a 10 ms interval", n)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	for _, at := range runs {
		if at.After(stopped) {
			t.Errorf("probe started at +%s after the reload dropped it", at.Sub(stopped))
		}
	}
}

// Passing results wait up to flushWindow to share a handover to apply; a
// failure goes at once, with whatever waited before it, so batching never
// delays an eviction.
func TestConnectLoopHandsOverFailuresAtOnce(t *testing.T) {
	s := NewScheduler(nil, nil)
	c := &config.Check{Type: "tcp", Interval: dur(time.Second), Timeout: dur(100 * time.Millisecond)}
	checker, err := New(complete(t, c), netip.MustParseAddrPort("127.0.0.1:9"))
	if err != nil {
		t.Fatal(err)
	}
	p := &probe{tcp: checker.(*tcpChecker), interval: time.Second, timeout: 100 * time.Millisecond}
	l := &connectLoop{s: s}
	due := time.Now()
	l.finish(p, due, due, nil)
	l.flush(time.Now())
	if n := len(s.results); n != 0 {
		t.Fatalf("a passing result was handed over at once (%d batches), want it held for up to %s", n, flushWindow)
	}
	l.finish(p, due.Add(time.Second), due.Add(time.Second), syscall.ECONNREFUSED)
	l.flush(time.Now())
	if n := len(s.results); n != 1 {
		t.Fatalf("%d batches after a failure, want 1", n)
	}
	batch := <-s.results
	if len(batch) != 2 || !batch[0].result.Healthy || ReasonClass(batch[1].result.Reason) != "refused" {
		t.Errorf("batch %+v, want the pass then the refusal, in order", batch)
	}
	l.finish(p, due.Add(2*time.Second), due.Add(2*time.Second), nil)
	l.flush(l.batchSince.Add(flushWindow))
	if n := len(s.results); n != 1 {
		t.Errorf("%d batches once a pass waited %s, want 1", n, flushWindow)
	}
}
