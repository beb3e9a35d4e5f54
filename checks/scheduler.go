package checks

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/netip"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/lvsd/lvsd/config"
)

// Health is what the scheduler knows about a real server or one of its checks.
type Health int

const (
	Unknown Health = iota // not yet decided: alpha servers start here
	Up
	Down
)

func (h Health) String() string {
	switch h {
	case Up:
		return "up"
	case Down:
		return "down"
	}
	return "unknown"
}

// MarshalText lets status output show "up" rather than a number.
func (h Health) MarshalText() ([]byte, error) { return []byte(h.String()), nil }

// Target is one real server of one service and the checks that judge it.
type Target struct {
	Service    string
	RealServer string // the real server's key, "ip:port"
	Addr       netip.AddrPort
	Checks     []*config.Check
	// StartHealthy starts the server up (alpha off) instead of unknown.
	StartHealthy bool
	// Previous is the service's name before a reload renamed it: the
	// target keeps the state it had under that name.
	Previous string
}

// Transition reports that a real server became healthy or unhealthy, or
// that a healthy server's dynamic weight changed.
type Transition struct {
	Service, RealServer string
	Healthy             bool
	Reason              string
	Weight              int // dynamic weight, -1 for the configured weight
}

// ProbeRun describes one finished probe, for WithProbeHook.
type ProbeRun struct {
	Type       string
	Addr       netip.AddrPort
	Due, Start time.Time
	Result     Result
	// Inconclusive: the probe timed out while lvsd itself was late, so
	// its result said nothing about the server and was not counted
	// towards rise or fall (see judgeTimeout).
	Inconclusive bool
}

// Option configures a Scheduler.
type Option func(*Scheduler)

// WithClock replaces the wall clock, for tests.
func WithClock(c Clock) Option { return func(s *Scheduler) { s.clock = c } }

// WithProbeHook calls f after every probe's result has been applied and
// its transitions delivered.
func WithProbeHook(f func(ProbeRun)) Option { return func(s *Scheduler) { s.hook = f } }

// Scheduler runs every check of every target on its own timer and turns the
// results into transitions with rise/fall hysteresis.
//
// Connect-only TCP probes, the bulk of a large config, run on one event
// loop (connectLoop). Every other probe is a runtime timer (time.AfterFunc)
// that starts a goroutine when due: the probe runs in it, re-arms the timer
// for its next turn and hands over the result. Between runs such a probe
// holds no goroutine and no stack, only a timer; while running it holds
// only its own goroutine. Either way a hung server never delays another.
// Checks with the same settings against the same address, shared by several
// services, run once and their results fan out to every target that uses
// them.
type Scheduler struct {
	log          *slog.Logger
	onTransition func(Transition)
	clock        Clock
	hook         func(ProbeRun)
	newChecker   func(*config.Check, netip.AddrPort) (Checker, error)

	// mu guards targets, probes and everything hanging off them, except
	// the fields qmu guards. Lock order: mu, then qmu.
	mu      sync.Mutex
	targets map[targetKey]*target
	probes  map[string]*probe
	// qmu guards each probe's due and timer, and started, so timing never
	// waits for result processing. A probe's start takes no lock at all:
	// under CPU contention a lock there convoys thousands of due probes.
	qmu      sync.Mutex
	started  bool
	stopping atomic.Bool
	// running is read-held by every probe while it runs; Run write-locks it
	// to wait for them.
	running sync.RWMutex
	// results carries finished probes to the one goroutine that applies
	// them: a mutex taken by every probe instead convoys under contention.
	results chan []finished
	// loop runs connect-only TCP probes, nil when they run as goroutines
	// (no epoll). It runs on the scheduler's clock, injected ones too.
	loop    *connectLoop
	metrics *metrics
	// epoch is the clock's time at construction: probes keep their
	// schedule for Backlog as offsets from it.
	epoch  time.Time
	stalls stallWatch
	// holdLoop and holdProbe, set by tests only, hold up the connect loop
	// (see connectLoop.hold) and a goroutine probe just after its start.
	holdLoop  func(l *connectLoop, now time.Time)
	holdProbe func(p *probe, deadline time.Time)

	// deliverMu keeps transitions in the order state changed: it is taken
	// before mu is released, and held while the callback runs.
	deliverMu sync.Mutex
}

type targetKey struct{ service, realServer string }

type target struct {
	Target
	slots  []*slot
	health Health
	weight int
	reason string // why the target has its current health
	// lastFailureClass is the reason class exported as an info metric.
	lastFailureClass string
}

// slot is one check of one target: the hysteresis state over a probe that
// may be shared with other targets.
type slot struct {
	target              *target
	probe               *probe
	rise, fall          int
	health              Health
	successes, failures int
	last                Result
	lastAt              time.Time
	duration            prometheus.Observer // nil until the first result with metrics on
}

type probe struct {
	key               string
	typ               string
	addr              netip.AddrPort
	checker           Checker
	interval, timeout time.Duration
	warmup            time.Duration
	due               time.Time
	timer             Timer // nil until Run arms it
	cancel            atomic.Pointer[context.CancelFunc]
	tcp               *tcpChecker // set when connectLoop can run the probe
	removed           atomic.Bool
	slots             []*slot
	// lastLate is how late (ns, negative: early) the latest turn started;
	// actBy when lvsd must next act on the probe: while it waits, when its
	// next turn is due; while a turn runs, that turn's deadline (ns after
	// the scheduler's epoch). Written by the probe's runner, read by Backlog.
	lastLate, actBy atomic.Int64
	// inconclusive: the latest run was inconclusive (judgeTimeout).
	// Owned by the probe's runner, one at a time.
	inconclusive bool
	flight       flight // the connect loop's connect under way
}

// NewScheduler returns a scheduler that reports transitions to onTransition.
// The callback is called from one goroutine at a time, in order, and may
// block; it must not call Update.
func NewScheduler(logger *slog.Logger, onTransition func(Transition), opts ...Option) *Scheduler {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if onTransition == nil {
		onTransition = func(Transition) {}
	}
	s := &Scheduler{
		log:          logger,
		onTransition: onTransition,
		clock:        realClock{},
		newChecker:   New,
		targets:      map[targetKey]*target{},
		probes:       map[string]*probe{},
		results:      make(chan []finished, 4096),
	}
	for _, o := range opts {
		o(s)
	}
	s.epoch = s.clock.Now()
	s.stalls.clock = s.clock
	return s
}

// Run runs probes until ctx is done, then cancels running probes and waits
// for them to return. Run may be called once.
func (s *Scheduler) Run(ctx context.Context) error {
	s.mu.Lock()
	s.qmu.Lock()
	if s.started {
		s.qmu.Unlock()
		s.mu.Unlock()
		return errors.New("checks: scheduler has already run")
	}
	s.started = true
	if loop, err := newConnectLoop(s); err != nil {
		s.log.Warn("connect checks run as goroutines", "err", err)
	} else {
		s.loop = loop
		s.running.RLock()
		go func() {
			defer s.running.RUnlock()
			loop.run()
		}()
	}
	for _, p := range s.probes {
		s.arm(p, p.due)
	}
	s.qmu.Unlock()
	s.mu.Unlock()

	applied := make(chan struct{})
	go func() {
		for batch := range s.results {
			for _, f := range batch {
				s.apply(f)
			}
		}
		close(applied)
	}()

	<-ctx.Done()
	s.mu.Lock()
	s.qmu.Lock()
	s.stopping.Store(true)
	for _, p := range s.probes {
		s.halt(p)
	}
	if s.loop != nil {
		s.loop.stop()
	}
	s.qmu.Unlock()
	s.mu.Unlock()
	s.running.Lock() // every probe has returned and sent its result
	close(s.results)
	s.running.Unlock()
	<-applied
	return nil
}

// finished is one probe run on its way to apply.
type finished struct {
	probe        *probe
	due, start   time.Time
	end          time.Time
	skipped      int
	result       Result
	inconclusive bool
}

// arm sets p's timer for due. qmu must be held.
func (s *Scheduler) arm(p *probe, due time.Time) {
	p.due = due
	s.turnDue(p, due)
	if s.loop != nil && p.tcp != nil {
		s.loop.arm(p, due)
		return
	}
	p.timer = s.clock.AfterFunc(due, func() { s.fire(p, due) })
}

// halt stops p's timer and cancels its run, if any. qmu must be held.
func (s *Scheduler) halt(p *probe) {
	if p.timer != nil {
		p.timer.Stop()
	}
	if cancel := p.cancel.Load(); cancel != nil {
		(*cancel)()
	}
}

// nextDue keeps a probe on its phase: due plus whole intervals, after now.
// skipped counts the turns missed because a run outlasted its interval.
func nextDue(due time.Time, interval time.Duration, now time.Time) (next time.Time, skipped int) {
	next = due.Add(interval)
	if !next.After(now) {
		behind := now.Sub(due) / interval
		next = due.Add((behind + 1) * interval)
		skipped = int(behind)
	}
	return next, skipped
}

func (s *Scheduler) dropped(p *probe) bool { return p.removed.Load() || s.stopping.Load() }

// fire runs the turn of p due at due, in the timer's goroutine.
func (s *Scheduler) fire(p *probe, due time.Time) {
	s.running.RLock()
	defer s.running.RUnlock()
	if s.dropped(p) {
		return
	}
	// Not derived from Run's context: thousands of probes a second would
	// all register with, and contend on, one parent. halt cancels instead.
	ctx, cancel := context.WithTimeout(context.Background(), p.timeout)
	defer cancel()
	p.cancel.Store(&cancel)
	if s.dropped(p) {
		cancel() // halted between the check above and the Store
	}
	start := s.clock.Now()
	s.turnStarted(p, due, start)
	deadline := start.Add(p.timeout)
	s.stalls.enter(start)
	if s.holdProbe != nil {
		s.holdProbe(p, deadline)
	}
	r := p.checker.Check(ctx)
	end := s.clock.Now()
	s.stalls.leave()
	p.cancel.Store(nil)
	if r.Duration == 0 {
		r.Duration = end.Sub(start)
	}
	if s.dropped(p) {
		// A probe stopped by Update or shutdown says nothing about the server.
		return
	}
	inconclusive := false
	if !r.Healthy && ReasonClass(r.Reason) == "timeout" {
		verdict, lateBy := s.judgeTimeout(start, deadline, end, p.timeout)
		if !verdict {
			inconclusive = true
			r.Reason += fmt.Sprintf(" (inconclusive: lvsd itself was %s late)", lateBy.Round(time.Millisecond))
		}
	}
	next, skipped := nextTurn(due, start, end, p.interval)
	if inconclusive && !p.inconclusive {
		next, skipped = end, 0 // retry at once, but not twice in a row
	}
	p.inconclusive = inconclusive
	s.results <- []finished{{probe: p, due: due, start: start, end: end, skipped: skipped, result: r, inconclusive: inconclusive}}
	// The next turn is armed only now, so runs of one probe never overlap
	// and their results reach apply in order.
	s.qmu.Lock()
	if !s.dropped(p) {
		s.arm(p, next)
	}
	s.qmu.Unlock()
}

// apply feeds one probe result to every target using the probe and
// delivers the transitions that follow.
func (s *Scheduler) apply(f finished) {
	s.mu.Lock()
	if f.probe.removed.Load() {
		s.mu.Unlock()
		return
	}
	// A connect check may start a little early (wakeSlack); only lateness is lag.
	s.metrics.probed(max(f.start.Sub(f.due), 0), f.skipped, f.result, f.inconclusive)
	if f.inconclusive {
		s.mu.Unlock()
		s.log.Debug("probe inconclusive: lvsd was late, not the server", "type", f.probe.typ, "addr", f.probe.addr, "reason", f.result.Reason)
		if s.hook != nil {
			s.hook(ProbeRun{Type: f.probe.typ, Addr: f.probe.addr, Due: f.due, Start: f.start, Result: f.result, Inconclusive: true})
		}
		return
	}
	var transitions []Transition
	for _, sl := range f.probe.slots {
		if tr, ok := s.observe(sl, f.result, f.end); ok {
			transitions = append(transitions, tr)
		}
	}
	if len(transitions) > 0 {
		s.deliverMu.Lock()
		s.mu.Unlock()
		s.deliver(transitions)
		s.deliverMu.Unlock()
	} else {
		s.mu.Unlock()
	}
	if s.hook != nil {
		s.hook(ProbeRun{Type: f.probe.typ, Addr: f.probe.addr, Due: f.due, Start: f.start, Result: f.result})
	}
}

// deliver logs each transition, the one line lvsd writes per health change
// (a loss at warning level), and hands it on.
func (s *Scheduler) deliver(transitions []Transition) {
	for _, tr := range transitions {
		level := slog.LevelInfo
		if !tr.Healthy {
			level = slog.LevelWarn
		}
		s.log.Log(context.Background(), level, "real server health changed", "service", tr.Service, "realserver", tr.RealServer,
			"healthy", tr.Healthy, "weight", tr.Weight, "reason", tr.Reason)
		s.onTransition(tr)
	}
}

// observe applies one result to a check's hysteresis and reports whether
// its target's health (or dynamic weight) changed.
func (s *Scheduler) observe(sl *slot, r Result, at time.Time) (Transition, bool) {
	sl.last, sl.lastAt = r, at
	if r.Healthy {
		sl.successes++
		sl.failures = 0
	} else {
		sl.failures++
		sl.successes = 0
	}
	switch {
	case r.Healthy && sl.health != Up && sl.successes >= sl.rise:
		sl.health = Up
	case !r.Healthy && sl.health != Down && sl.failures >= sl.fall:
		sl.health = Down
	}
	t := sl.target
	s.metrics.observed(t, sl, r)
	return s.evaluate(t, r.Reason)
}

// evaluate recomputes a target's health from its checks: up when all are
// up, down when any is down. It returns the transition to report, if any.
func (s *Scheduler) evaluate(t *target, reason string) (Transition, bool) {
	health, weight := Up, -1
	for _, sl := range t.slots {
		switch sl.health {
		case Down:
			if health != Down {
				health, reason = Down, sl.last.Reason
			}
		case Unknown:
			if health == Up {
				health = Unknown
			}
		}
		if sl.health == Up && sl.last.Weight >= 0 && (weight < 0 || sl.last.Weight < weight) {
			weight = sl.last.Weight
		}
	}
	if health == Unknown {
		// Only a reload adds undecided checks, and those inherit the
		// target's health, so a decided target never falls back to unknown.
		return Transition{}, false
	}
	changed := health != t.health || health == Up && weight != t.weight
	if !changed {
		if health == Down && t.reason != reason && reason != "" {
			t.reason = reason
		}
		return Transition{}, false
	}
	t.health, t.weight, t.reason = health, weight, reason
	s.metrics.transition(t)
	return Transition{Service: t.Service, RealServer: t.RealServer, Healthy: health == Up, Reason: reason, Weight: weight}, true
}

// Update replaces the set of targets. Targets with the same service, real
// server and address keep their state, and so do their unchanged checks, so
// a reload does not flap them; new probes start at a random point of their
// first interval; probes no longer used are stopped.
func (s *Scheduler) Update(targets []Target) {
	s.mu.Lock()
	now := s.clock.Now()
	for _, p := range s.probes {
		p.slots = nil
	}
	next := make(map[targetKey]*target, len(targets))
	used := map[string]*probe{}
	var transitions []Transition
	for _, spec := range targets {
		key := targetKey{spec.Service, spec.RealServer}
		if _, dup := next[key]; dup {
			s.log.Warn("duplicate check target ignored", "service", spec.Service, "realserver", spec.RealServer)
			continue
		}
		old := s.targets[key]
		if old == nil && spec.Previous != "" {
			old = s.targets[targetKey{spec.Previous, spec.RealServer}]
		}
		if old != nil && old.Addr != spec.Addr {
			old = nil
		}
		t := s.buildTarget(spec, old, used)
		next[key] = t
		if tr, ok := s.evaluate(t, "ok: checks changed by reload"); ok {
			transitions = append(transitions, tr)
		}
	}
	s.qmu.Lock()
	for key, p := range s.probes {
		if used[key] != p {
			p.removed.Store(true)
			s.halt(p)
		}
	}
	for key, p := range used {
		if s.probes[key] != p {
			// Spread first runs over the interval, or over warmup.
			span := p.interval
			if p.warmup > 0 {
				span = p.warmup
			}
			p.due = now.Add(time.Duration(rand.Int64N(int64(span))))
			s.turnDue(p, p.due)
			if s.started && !s.stopping.Load() {
				s.arm(p, p.due)
			}
		}
	}
	s.qmu.Unlock()
	for key, t := range s.targets {
		if n, ok := next[key]; !ok || n.Addr != t.Addr {
			s.metrics.forget(t)
		}
	}
	s.targets, s.probes = next, used
	for _, t := range next {
		s.metrics.track(t)
	}
	s.deliverMu.Lock()
	s.mu.Unlock()
	s.deliver(transitions)
	s.deliverMu.Unlock()
}

func (s *Scheduler) buildTarget(spec Target, old *target, used map[string]*probe) *target {
	spec.Checks = append([]*config.Check(nil), spec.Checks...)
	t := &target{Target: spec, health: Unknown, weight: -1, reason: "unknown: not checked yet"}
	if spec.StartHealthy {
		t.health, t.reason = Up, "ok: assumed up until checked (alpha off)"
	}
	previous := map[string][]*slot{}
	if old != nil {
		t.health, t.weight, t.reason, t.lastFailureClass = old.health, old.weight, old.reason, old.lastFailureClass
		for _, sl := range old.slots {
			previous[sl.probe.key] = append(previous[sl.probe.key], sl)
		}
	}
	for _, c := range spec.Checks {
		p := s.probeFor(c, spec.Addr, used)
		// A new check starts where the target stands, so adding a check on
		// reload neither evicts nor admits the server before it has run.
		sl := &slot{target: t, probe: p, rise: max(c.Rise, 1), fall: max(c.Fall, 1), health: t.health, last: Result{Weight: -1}}
		if prev := previous[p.key]; len(prev) > 0 {
			kept := prev[0]
			previous[p.key] = prev[1:]
			sl.health, sl.successes, sl.failures, sl.last, sl.lastAt = kept.health, kept.successes, kept.failures, kept.last, kept.lastAt
		}
		p.slots = append(p.slots, sl)
		t.slots = append(t.slots, sl)
	}
	return t
}

// probeFor returns the probe for check c against addr, sharing one with the
// same settings if it exists in this update or the previous one.
func (s *Scheduler) probeFor(c *config.Check, addr netip.AddrPort, used map[string]*probe) *probe {
	if !c.Complete() {
		// A caller's bug, not a config error: show it on the target
		// instead of probing with zero timers.
		err := errors.New("check: not completed by config (build checks with config.Load or config.NewCheck)")
		bad := *c
		bad.Interval.Duration, bad.Timeout.Duration = incompleteEvery, incompleteEvery/2
		return s.sharedProbe(probeKeyOf(&bad, addr, err), &bad, addr, brokenChecker{err}, used)
	}
	paddr := probeAddr(c, addr)
	key := probeKeyOf(c, paddr, nil)
	if p := used[key]; p != nil {
		return p
	}
	if p := s.probes[key]; p != nil {
		used[key] = p
		return p
	}
	checker, err := s.newChecker(c, addr)
	if err != nil {
		checker = brokenChecker{err}
	}
	return s.sharedProbe(key, c, paddr, checker, used)
}

// incompleteEvery is how often a check that config never completed reports
// so; such a check has no interval of its own.
const incompleteEvery = 5 * time.Second

func (s *Scheduler) sharedProbe(key string, c *config.Check, addr netip.AddrPort, checker Checker, used map[string]*probe) *probe {
	if p := used[key]; p != nil {
		return p
	}
	if p := s.probes[key]; p != nil {
		used[key] = p
		return p
	}
	p := &probe{
		key: key, typ: c.Type, addr: addr, checker: checker,
		interval: c.Interval.Duration, timeout: c.Timeout.Duration, warmup: c.Warmup.Duration,
	}
	if tcp, ok := checker.(*tcpChecker); ok && tcp.connectOnly != nil {
		p.tcp = tcp
	}
	used[key] = p
	return p
}

// brokenChecker stands in for a check that could not be built, so the
// target shows why instead of silently passing.
type brokenChecker struct{ err error }

func (b brokenChecker) Check(context.Context) Result { return failf("config", "%v", b.err) }

// TargetStatus is a snapshot of one target for status output.
type TargetStatus struct {
	Service    string
	RealServer string
	Addr       netip.AddrPort
	Health     Health
	// Reason is why the target is down, or else the latest probe's reason.
	Reason  string
	Latency time.Duration // of the latest probe
	Weight  int           // dynamic weight, -1 for the configured weight
	// Successes is the fewest consecutive successes of any check, Failures
	// the most consecutive failures.
	Successes, Failures int
	LastCheck           time.Time
	Checks              []CheckStatus
}

// CheckStatus is a snapshot of one check of a target.
type CheckStatus struct {
	Type                string
	Addr                netip.AddrPort
	Health              Health
	Reason              string
	Latency             time.Duration
	Successes, Failures int
	LastCheck           time.Time
	// SharedBy is how many targets use this probe's results.
	SharedBy int
}

// Status returns every target, sorted by service and real server.
func (s *Scheduler) Status() []TargetStatus {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]TargetStatus, 0, len(s.targets))
	for _, t := range s.targets {
		ts := TargetStatus{Service: t.Service, RealServer: t.RealServer, Addr: t.Addr, Health: t.health,
			Reason: t.reason, Weight: t.weight, Successes: -1}
		for _, sl := range t.slots {
			ts.Checks = append(ts.Checks, CheckStatus{
				Type: sl.probe.typ, Addr: sl.probe.addr, Health: sl.health, Reason: sl.last.Reason,
				Latency: sl.last.Duration, Successes: sl.successes, Failures: sl.failures,
				LastCheck: sl.lastAt, SharedBy: len(sl.probe.slots),
			})
			if ts.Successes < 0 || sl.successes < ts.Successes {
				ts.Successes = sl.successes
			}
			ts.Failures = max(ts.Failures, sl.failures)
			if sl.lastAt.After(ts.LastCheck) {
				ts.LastCheck, ts.Latency = sl.lastAt, sl.last.Duration
				if t.health != Down {
					ts.Reason = sl.last.Reason
				}
			}
		}
		ts.Successes = max(ts.Successes, 0)
		out = append(out, ts)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Service != out[j].Service {
			return out[i].Service < out[j].Service
		}
		return out[i].RealServer < out[j].RealServer
	})
	return out
}

// probeKeyOf identifies a probe: everything that changes what goes on the
// wire or when, but not rise/fall (per target) or warmup (first run only).
func probeKeyOf(c *config.Check, addr netip.AddrPort, err error) string {
	key := struct {
		Type              string
		Addr              string
		Interval, Timeout time.Duration
		Source            string
		Settings          string
		Err               string
	}{
		Type: c.Type, Addr: addr.String(), Interval: c.Interval.Duration, Timeout: c.Timeout.Duration,
		Source: c.SourceAddress.IP.String() + ":" + strconv.Itoa(c.SourceAddress.Port),
	}
	if c.Settings != nil {
		key.Settings = c.Settings.DedupKey()
	}
	if err != nil {
		key.Err = err.Error()
	}
	b, jerr := json.Marshal(key)
	if jerr != nil {
		// Every field is plain data; fall back to the printed form anyway.
		return fmt.Sprintf("%+v", key)
	}
	return string(b)
}
