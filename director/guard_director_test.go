package director

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/lvsd/lvsd/config"
)

// faultSwitch is lvsd's own state as a test sets it.
type faultSwitch struct {
	mu  sync.Mutex
	why string
}

func (f *faultSwitch) set(why string) {
	f.mu.Lock()
	f.why = why
	f.mu.Unlock()
}

func (f *faultSwitch) fault() (string, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.why, f.why != ""
}

// guardedConfig is three pools of four servers, every server with a
// check of rise 2 at 1 s, and the guard on with its defaults.
func guardedConfig() *config.Config {
	var svcs []*config.Service
	for i, name := range []string{"a", "b", "c"} {
		s := service(name, fmt.Sprintf("192.0.2.%d:80", i+1), "10.0.0.1:80", "10.0.0.2:80", "10.0.0.3:80", "10.0.0.4:80")
		for _, r := range s.RealServers {
			r.Checks = []*config.Check{{Type: "tcp", Interval: config.Duration{Duration: time.Second},
				Timeout: config.Duration{Duration: 500 * time.Millisecond}, Rise: 2, Fall: 1}}
		}
		svcs = append(svcs, s)
	}
	c := cfgOf(svcs...)
	c.Director.EvictionGuard = config.EvictionGuard{Threshold: 50, Window: config.Duration{Duration: 10 * time.Second},
		MaxHold: config.Duration{Duration: 2 * time.Minute}}
	return c
}

func newGuardedHarness(t *testing.T, fault *faultSwitch, opts ...Option) (*harness, *syncBuffer) {
	t.Helper()
	logs := &syncBuffer{}
	h := &harness{t: t, fake: NewFake(), now: time.Unix(1000, 0)}
	opts = append([]Option{WithClock(func() time.Time { return h.now }), WithLocalFault(fault.fault),
		WithLogger(slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})))}, opts...)
	d, err := New(guardedConfig(), h.fake, opts...)
	if err != nil {
		t.Fatal(err)
	}
	h.d = d
	h.settle()
	return h, logs
}

func timedOut(reason string) Health {
	return Health{Known: true, Weight: -1, Cause: CauseSilent, Reason: "timeout: " + reason}
}

// inKernel counts the destinations of each service in the fake kernel.
func inKernel(f *Fake) map[string]int {
	out := map[string]int{}
	ks, _ := f.Dump(context.Background())
	for _, s := range ks {
		out[s.Service.Key.String()] = len(s.Dests)
	}
	return out
}

func (h *harness) allDests() int {
	n := 0
	for _, c := range inKernel(h.fake) {
		n += c
	}
	return n
}

func TestGuardHoldsTheTableOnALocalFault(t *testing.T) {
	fault := &faultSwitch{}
	heard := &downRecorder{}
	h, logs := newGuardedHarness(t, fault, WithServiceWatcher(heard))
	reg := prometheus.NewPedanticRegistry()
	if err := h.d.Register(reg); err != nil {
		t.Fatal(err)
	}
	if h.allDests() != 12 {
		t.Fatalf("%d dests in the kernel, want 12", h.allDests())
	}

	fault.set("fds: 1010 of 1024 open files (98%)")
	for _, s := range []string{"a", "b", "c"} {
		for i := 1; i <= 4; i++ {
			h.d.SetHealth(s, fmt.Sprintf("10.0.0.%d:80", i), timedOut("connect: deadline exceeded"))
			h.now = h.now.Add(100 * time.Millisecond)
		}
	}
	h.d.tickGuard()
	h.pass()
	if n := h.allDests(); n != 12 {
		t.Fatalf("%d dests in the kernel during the local fault, want all 12 kept", n)
	}
	gs := h.d.GuardStatus()
	if !gs.On || gs.Fault != "fds: 1010 of 1024 open files (98%)" || len(gs.Held) != 12 || !strings.Contains(gs.Held[11].Why, "mass failure") ||
		gs.Held[0].Reason != "timeout: connect: deadline exceeded" {
		t.Errorf("guard status: %+v", gs)
	}
	for _, s := range h.d.Status() {
		for _, r := range s.RealServers {
			if !r.Held || !r.InKernel || r.KernelWeight != 1 {
				t.Errorf("%s/%s: held %v, in kernel %v weight %d", s.Name, r.Name, r.Held, r.InKernel, r.KernelWeight)
			}
		}
	}
	got := gather(t, reg)
	for k, v := range map[string]float64{
		`lvsd_eviction_guard_held`:          12,
		`lvsd_eviction_guard_active`:        1,
		`lvsd_eviction_guard_held_total`:    12,
		`lvsd_local_fault{source="fds"}`:    1,
		`lvsd_local_fault{source="memory"}`: 0,
	} {
		if got[k] != v {
			t.Errorf("%s = %v, want %v", k, got[k], v)
		}
	}
	if n := strings.Count(logs.String(), "level=WARN msg=\"eviction guard: holding a failed check"); n != 1 {
		t.Errorf("%d warnings for 12 holds, want 1 (the rest at debug level):\n%s", n, logs)
	}

	// lvsd recovers; the checks call pool a up again, b and c still fail.
	fault.set("")
	h.now = h.now.Add(time.Second)
	h.d.tickGuard()
	for i := 1; i <= 4; i++ {
		h.d.SetHealth("a", fmt.Sprintf("10.0.0.%d:80", i), Health{Known: true, Healthy: true, Weight: -1})
	}
	h.now = h.now.Add(9 * time.Second)
	if applied, _ := h.d.tickGuard(); applied {
		t.Fatal("applied before the checks had time to re-judge")
	}
	h.now = h.now.Add(time.Second)
	if applied, next := h.d.tickGuard(); !applied || !next.IsZero() {
		t.Fatalf("tickGuard = %v, %v: want the held failures of b and c applied, nothing left", applied, next)
	}
	if got := heard.String(); got != "b down, c down" {
		t.Errorf("the service watcher heard %q, want b and c down once their held failures were applied", got)
	}
	h.pass()
	want := map[string]int{"tcp/192.0.2.1:80": 4, "tcp/192.0.2.2:80": 0, "tcp/192.0.2.3:80": 0}
	if got := inKernel(h.fake); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("kernel after recovery: %v, want %v", got, want)
	}
	got = gather(t, reg)
	for k, v := range map[string]float64{
		`lvsd_eviction_guard_held`:                                0,
		`lvsd_eviction_guard_active`:                              0,
		`lvsd_eviction_guard_released_total{outcome="recovered"}`: 4,
		`lvsd_eviction_guard_released_total{outcome="applied"}`:   8,
		`lvsd_local_fault{source="fds"}`:                          0,
	} {
		if got[k] != v {
			t.Errorf("%s = %v, want %v", k, got[k], v)
		}
	}
}

func TestGuardDoesNotHoldOnePoolFailing(t *testing.T) {
	for _, fault := range []string{"", "checks: 30 probes behind schedule"} {
		t.Run(fmt.Sprintf("fault=%q", fault), func(t *testing.T) {
			f := &faultSwitch{}
			f.set(fault)
			h, _ := newGuardedHarness(t, f)
			for i := 1; i <= 4; i++ {
				h.d.SetHealth("b", fmt.Sprintf("10.0.0.%d:80", i), timedOut("no reply"))
			}
			if fault == "" {
				h.pass()
				if n := inKernel(h.fake)["tcp/192.0.2.2:80"]; n != 0 {
					t.Fatalf("lvsd healthy: %d servers of b left, want all evicted at once", n)
				}
				return
			}
			h.now = h.now.Add(9 * time.Second)
			h.d.tickGuard()
			h.pass()
			if n := inKernel(h.fake)["tcp/192.0.2.2:80"]; n != 4 {
				t.Fatalf("within the window: %d servers of b left, want 4", n)
			}
			h.now = h.now.Add(time.Second)
			h.d.tickGuard()
			h.pass()
			if got := inKernel(h.fake); got["tcp/192.0.2.2:80"] != 0 || got["tcp/192.0.2.1:80"] != 4 || got["tcp/192.0.2.3:80"] != 4 {
				t.Fatalf("after the window: %v, want b evicted and the others whole", got)
			}
		})
	}
}

func TestGuardAppliesAnAnswerAtOnce(t *testing.T) {
	fault := &faultSwitch{}
	fault.set("memory: 97% of memory.max in use")
	h, _ := newGuardedHarness(t, fault)
	for _, s := range []string{"a", "b", "c"} {
		for i := 1; i <= 3; i++ {
			h.d.SetHealth(s, fmt.Sprintf("10.0.0.%d:80", i), timedOut("no reply"))
		}
	}
	h.d.SetHealth("a", "10.0.0.1:80", Health{Known: true, Weight: -1, Cause: CauseAnswered, Reason: "refused: connect: connection refused"})
	h.d.SetHealth("c", "10.0.0.4:80", Health{Known: true, Weight: -1, Cause: CauseAnswered, Reason: "status: 503"})
	h.pass()
	want := map[string]int{"tcp/192.0.2.1:80": 3, "tcp/192.0.2.2:80": 4, "tcp/192.0.2.3:80": 3}
	if got := inKernel(h.fake); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("kernel: %v, want %v (two answers applied, the timeouts held)", got, want)
	}
}

// Run looks at the guard by itself: held failures are applied once lvsd
// recovers, with no verdict or trigger to wake it.
func TestRunAppliesHeldFailuresWhenTheFaultClears(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fault := &faultSwitch{}
		fake := NewFake()
		c := guardedConfig()
		c.Director.ReconcileInterval = config.Duration{Duration: time.Hour}
		d, err := New(c, fake, WithLocalFault(fault.fault))
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		go d.Run(ctx)
		synctest.Wait()
		count := func() int {
			n := 0
			for _, c := range inKernel(fake) {
				n += c
			}
			return n
		}
		if count() != 12 {
			t.Fatalf("%d dests, want 12", count())
		}
		fault.set("checks: 120 probes behind schedule")
		for _, s := range []string{"a", "b", "c"} {
			for i := 1; i <= 4; i++ {
				d.SetHealth(s, fmt.Sprintf("10.0.0.%d:80", i), timedOut("no reply"))
			}
		}
		time.Sleep(time.Minute)
		synctest.Wait()
		if count() != 12 || len(d.GuardStatus().Held) != 12 {
			t.Fatalf("a minute into the fault: %d dests, %d held; want 12 and 12", count(), len(d.GuardStatus().Held))
		}
		fault.set("")
		// The checks need rise × interval + timeout = 2.5 s, the window
		// is 10 s, and the fault is polled once a second.
		time.Sleep(11 * time.Second)
		synctest.Wait()
		if count() != 0 || len(d.GuardStatus().Held) != 0 {
			t.Fatalf("after recovery: %d dests, %d held; want the held failures applied", count(), len(d.GuardStatus().Held))
		}
	})
}

// A reload that renames a service keeps its held failures: the checks
// will not say "down" again.
func TestGuardKeepsHoldsAcrossARename(t *testing.T) {
	fault := &faultSwitch{}
	fault.set("fds: full")
	h, _ := newGuardedHarness(t, fault)
	for _, s := range []string{"a", "b", "c"} {
		for i := 1; i <= 4; i++ {
			h.d.SetHealth(s, fmt.Sprintf("10.0.0.%d:80", i), timedOut("no reply"))
		}
	}
	c := guardedConfig()
	c.Services[0].Name = "a2"
	if err := h.d.Update(c); err != nil {
		t.Fatal(err)
	}
	gs := h.d.GuardStatus()
	if len(gs.Held) != 12 || gs.Held[0].Service != "a2" {
		t.Fatalf("after the rename: %d held, first %+v", len(gs.Held), gs.Held[0])
	}
	fault.set("")
	h.now = h.now.Add(time.Second)
	h.d.tickGuard()
	h.now = h.now.Add(10 * time.Second)
	h.d.tickGuard()
	h.pass()
	if n := h.allDests(); n != 0 {
		t.Errorf("%d dests after recovery, want the renamed pool's held failures applied too", n)
	}
}

// syncBuffer is a bytes.Buffer safe for concurrent writers.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
