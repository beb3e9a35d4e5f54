package main

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"runtime"
	"runtime/pprof"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/lvsd/lvsd/checks"
	"github.com/lvsd/lvsd/config"
)

// recorder keeps the due→start lag of every probe started inside the
// window (counted by start, as the listeners count connections: a checker
// behind its schedule starts turns due long before),
// and the failures and downs of targets that all stay up.
type recorder struct {
	windowStart, windowEnd atomic.Int64 // UnixNano; nothing counts until set
	mu                     sync.Mutex
	lags                   []time.Duration
	healthy, failed        int
	// up is how many targets are up now, downs how many times one went
	// down (over the whole run), fewestUp the fewest up in the window.
	up, downs, fewestUp int
	inWindow            bool
	inconclusive        atomic.Int64
}

func newRecorder(capacity int) *recorder {
	r := &recorder{lags: make([]time.Duration, 0, capacity)}
	r.windowStart.Store(math.MaxInt64)
	return r
}

func (r *recorder) record(due, start time.Time, healthy bool) {
	if t := start.UnixNano(); t < r.windowStart.Load() || t >= r.windowEnd.Load() {
		return
	}
	r.mu.Lock()
	r.lags = append(r.lags, start.Sub(due)) // negative: started early (connect loop slack)
	if healthy {
		r.healthy++
	} else {
		r.failed++
	}
	r.mu.Unlock()
}

// transition counts a target going up or down.
func (r *recorder) transition(healthy, wasUp bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	switch {
	case healthy && !wasUp:
		r.up++
	case !healthy:
		r.downs++
		if wasUp {
			r.up--
		}
	}
	if r.inWindow {
		r.fewestUp = min(r.fewestUp, r.up)
	}
}

// openWindow starts tracking the fewest targets up.
func (r *recorder) openWindow() {
	r.mu.Lock()
	r.inWindow, r.fewestUp = true, r.up
	r.mu.Unlock()
}

func (r *recorder) closeWindow() {
	r.mu.Lock()
	r.inWindow = false
	r.mu.Unlock()
}

func writeHeapProfile(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	err = pprof.Lookup("heap").WriteTo(f, 0)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

func cpuAndRSS() (user, system time.Duration, maxRSSKB int64) {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano()), time.Duration(ru.Stime.Nano()), ru.Maxrss
}

// measure runs one checker design in this process and reports its window.
func measure(o options) (result, error) {
	tg := targets(o)
	scheduled := int(int64(len(tg)) * int64(o.duration) / int64(o.interval))
	rec := newRecorder(scheduled + len(tg))
	rec.up = len(tg) // every checker starts with every server up
	check, err := config.NewCheck(config.Check{Type: "tcp", Interval: config.Duration{Duration: o.interval},
		Timeout: config.Duration{Duration: o.timeout}, Rise: 1, Fall: 1})
	if err != nil {
		return result{}, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	var wait func()
	var backlog func() checks.Backlog // lvsd only
	switch o.role {
	case "lvsd":
		// Transitions come from one goroutine at a time.
		up := make(map[string]bool, len(tg))
		for _, t := range tg {
			up[t.String()] = true
		}
		onTransition := func(tr checks.Transition) {
			rec.transition(tr.Healthy, up[tr.RealServer])
			up[tr.RealServer] = tr.Healthy
		}
		s := checks.NewScheduler(nil, onTransition, checks.WithProbeHook(func(p checks.ProbeRun) {
			if p.Inconclusive {
				rec.inconclusive.Add(1)
				return // not a probe of the server, and retried
			}
			rec.record(p.Due, p.Start, p.Result.Healthy)
		}))
		backlog = s.Backlog
		// lvsd run exports the scheduler's metrics, so their cost is part
		// of a probe's.
		if err := s.RegisterMetrics(prometheus.NewRegistry()); err != nil {
			return result{}, err
		}
		ts := make([]checks.Target, len(tg))
		for i, t := range tg {
			// Up until checked, as keepalived's servers (alpha off): a
			// check that fails takes a server out, as there.
			ts[i] = checks.Target{Service: "bench", RealServer: t.String(), Addr: t, Checks: []*config.Check{check}, StartHealthy: true}
		}
		s.Update(ts)
		done := make(chan struct{})
		go func() {
			s.Run(ctx)
			close(done)
		}()
		wait = func() { <-done }
	case "goroutines":
		var wg sync.WaitGroup
		for _, t := range tg {
			checker, err := checks.New(check, t)
			if err != nil {
				return result{}, err
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				tickerLoop(ctx, checker, o, rec)
			}()
		}
		wait = wg.Wait
	}

	// The window is fixed before it opens: lvsd's connect loop may run a
	// probe due just inside it a little early.
	start := time.Now().Add(o.settle)
	rec.windowEnd.Store(start.Add(o.duration).UnixNano())
	rec.windowStart.Store(start.UnixNano())
	time.Sleep(time.Until(start))
	user0, sys0, _ := cpuAndRSS()
	rec.openWindow()
	fmt.Println("window")
	if o.cpuProfile != "" {
		f, err := os.Create(o.cpuProfile)
		if err != nil {
			return result{}, err
		}
		defer f.Close()
		pprof.StartCPUProfile(f)
	}
	peakG := 0
	var behind checks.Backlog // the most checks behind, and the worst lateness, seen
	for end := start.Add(o.duration); time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
		peakG = max(peakG, runtime.NumGoroutine())
		if backlog != nil {
			b := backlog()
			behind.Behind, behind.Worst = max(behind.Behind, b.Behind), max(behind.Worst, b.Worst)
		}
	}
	user1, sys1, maxRSS := cpuAndRSS()
	rec.closeWindow()
	fmt.Println("end")
	if o.cpuProfile != "" {
		pprof.StopCPUProfile()
	}
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	if o.memProfile != "" {
		if err := writeHeapProfile(o.memProfile); err != nil {
			return result{}, err
		}
	}
	// Probes due just before the end may still be running; let them land.
	time.Sleep(o.timeout + 100*time.Millisecond)
	cancel()
	wait()

	rec.mu.Lock()
	defer rec.mu.Unlock()
	r := result{Mode: o.role, Checks: len(tg), Scheduled: scheduled, Done: len(rec.lags), Healthy: rec.healthy,
		CPUSec: (user1 - user0 + sys1 - sys0).Seconds(), MaxRSSKB: maxRSS,
		Failed: rec.failed, Downs: rec.downs, FewestUp: rec.fewestUp, Inconclusive: int(rec.inconclusive.Load()),
		BehindMax: -1}
	if backlog != nil {
		r.BehindMax, r.BehindByMS = behind.Behind, float64(behind.Worst)/float64(time.Millisecond)
	}
	design := "one goroutine and timer per check"
	if o.role == "lvsd" {
		design = "checks.Scheduler: connect-only probes on one epoll loop"
	}
	r.Note = fmt.Sprintf("%s; user %.2f s, system %.2f s; peak goroutines %d, Go heap in use %.1f MB, stacks %.1f MB, GC cycles %d",
		design, (user1 - user0).Seconds(), (sys1 - sys0).Seconds(), peakG, float64(ms.HeapInuse)/(1<<20), float64(ms.StackInuse)/(1<<20), ms.NumGC)
	slices.Sort(rec.lags)
	if len(rec.lags) > 0 && rec.lags[0] < 0 {
		r.EarlyMax = -float64(rec.lags[0]) / float64(time.Millisecond)
	}
	late := rec.lags
	for i, l := range late {
		late[i] = max(l, 0)
	}
	r.LagP50, r.LagP99, r.LagMax = quantileMS(late, 0.5), quantileMS(late, 0.99), quantileMS(late, 1)
	return r, nil
}

func quantileMS(sorted []time.Duration, q float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	i := min(int(q*float64(len(sorted))), len(sorted)-1)
	return float64(sorted[i]) / float64(time.Millisecond)
}

// tickerLoop is the design the scheduler replaces: a goroutine per check
// sleeping on its own timer and probing inline.
func tickerLoop(ctx context.Context, checker checks.Checker, o options, rec *recorder) {
	due := time.Now().Add(time.Duration(rand.Int64N(int64(o.interval))))
	timer := time.NewTimer(time.Until(due))
	defer timer.Stop()
	up := true // as the scheduler's servers, up until checked
	for {
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		}
		start := time.Now()
		pctx, cancel := context.WithTimeout(ctx, o.timeout)
		res := checker.Check(pctx)
		cancel()
		rec.record(due, start, res.Healthy)
		// No hysteresis here: fall 1, rise 1.
		if res.Healthy != up {
			rec.transition(res.Healthy, up)
			up = res.Healthy
		}
		for due = due.Add(o.interval); !due.After(time.Now()); due = due.Add(o.interval) {
		}
		timer.Reset(time.Until(due))
	}
}
