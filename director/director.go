package director

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/lvsd/lvsd/config"
)

// Director keeps the kernel IPVS table equal to what config plus health
// asks for.
//
// Failure semantics, chosen to match what keepalived users expect and to
// never leave a half-applied config:
//   - A config is validated as a whole before any op is sent; a config with
//     any error is rejected (Update returns the error, the old config keeps
//     running) and no op is made.
//   - The kernel can still refuse a valid op (a scheduler module missing,
//     no route to a NAT destination). Then that op is reported and counted,
//     ops that depend on it (destinations of a service that failed to be
//     created) are skipped, every independent op is still applied, and the
//     pass is retried with backoff until it succeeds. One bad service never
//     holds the others back, and the kernel never holds anything lvsd did not
//     ask for.
type Director struct {
	ipvs    IPVS
	log     *slog.Logger
	now     func() time.Time
	metrics *metrics

	mu       sync.Mutex
	services []*compiledService
	byName   map[string]*compiledService
	ownAll   bool
	interval time.Duration
	// retired are keys of services removed from config, still owned until
	// the kernel no longer has them.
	retired map[ServiceKey]bool
	state   map[rsID]*rsState
	pools   map[string]*pool
	// last is the kernel as last seen and changed, for Status.
	last    map[ServiceKey]*KernelService
	lastErr error
	// guard holds mass failures while lvsd itself is in trouble, as
	// localFault says (see guard.go); guardLog is when it last logged a
	// summary.
	guard      *guard
	localFault func() (reason string, faulty bool)
	onRelease  func(services []string)
	guardLog   time.Time

	// passMu serialises passes and every use of ipvs.
	passMu sync.Mutex
	// expected is what the kernel held after our last pass; a difference at
	// the next dump was made by someone else: drift.
	expected map[ServiceKey]*KernelService

	trigger chan struct{}
	// onPass runs after every pass (WithPassHook).
	onPass func()
}

// Option changes a Director's defaults.
type Option func(*Director)

// WithLogger sets the logger.
func WithLogger(l *slog.Logger) Option { return func(d *Director) { d.log = l } }

// WithClock sets the clock, for tests of warmup.
func WithClock(now func() time.Time) Option { return func(d *Director) { d.now = now } }

// WithLocalFault tells the director whether lvsd itself is in trouble
// (behind on its checks, short of file descriptors or memory) and why, for
// the eviction guard. f is called on every failed check and about once a
// second while failures are held, with the director's lock held: it must
// return at once, reading a value sampled elsewhere.
func WithLocalFault(f func() (reason string, faulty bool)) Option {
	return func(d *Director) { d.localFault = f }
}

// WithOnRelease calls f, outside the director's locks, with the services
// whose held failures the eviction guard has just applied by itself (not
// in answer to a SetHealth), so whoever follows their health can look
// again.
func WithOnRelease(f func(services []string)) Option {
	return func(d *Director) { d.onRelease = f }
}

// New returns a Director for cfg programming ipvs. It does not touch the
// kernel: call Reconcile or Run.
func New(cfg *config.Config, ipvs IPVS, opts ...Option) (*Director, error) {
	d := &Director{
		ipvs:       ipvs,
		log:        slog.New(slog.DiscardHandler),
		now:        time.Now,
		retired:    map[ServiceKey]bool{},
		state:      map[rsID]*rsState{},
		pools:      map[string]*pool{},
		trigger:    make(chan struct{}, 1),
		metrics:    newMetrics(),
		interval:   30 * time.Second,
		guard:      newGuard(),
		localFault: func() (string, bool) { return "", false },
	}
	for _, o := range opts {
		o(d)
	}
	d.metrics.d = d
	if err := d.Update(cfg); err != nil {
		return nil, err
	}
	return d, nil
}

// Update switches to a new config. Health, operator drains and quorum
// state carry over for servers that stay. On error nothing changes.
func (d *Director) Update(cfg *config.Config) error {
	svcs, err := compile(cfg)
	if err != nil {
		return fmt.Errorf("config rejected, nothing changed: %w", err)
	}
	if released := d.update(cfg, svcs); len(released) > 0 && d.onRelease != nil {
		d.onRelease(released)
	}
	return nil
}

// update switches to svcs and returns the services whose held failures it
// applied (the guard turned off).
func (d *Director) update(cfg *config.Config, svcs []*compiledService) []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	keep := map[ServiceKey]bool{}
	for _, cs := range svcs {
		keep[cs.svc.Key] = true
	}
	for _, cs := range d.services {
		if !keep[cs.svc.Key] {
			d.retired[cs.svc.Key] = true
		}
	}
	for k := range keep {
		delete(d.retired, k)
	}
	d.carryRenamesLocked(svcs)
	live := map[rsID]bool{}
	names := map[string]bool{}
	for _, cs := range svcs {
		names[cs.name] = true
		for _, r := range cs.reals {
			id := rsID{cs.name, r.name}
			live[id] = true
			if d.state[id] == nil {
				d.state[id] = &rsState{health: Health{Weight: -1}}
			}
		}
		if d.pools[cs.name] == nil {
			d.pools[cs.name] = &pool{}
		}
	}
	for id := range d.state {
		if !live[id] {
			delete(d.state, id)
		}
	}
	for n := range d.pools {
		if !names[n] {
			delete(d.pools, n)
		}
	}
	d.services = svcs
	d.byName = make(map[string]*compiledService, len(svcs))
	for _, cs := range svcs {
		d.byName[cs.name] = cs
	}
	d.ownAll = cfg.Director.OwnAll
	if iv := cfg.Director.ReconcileInterval.Duration; iv > 0 {
		d.interval = iv
	}
	pools := make(map[string][]string, len(svcs))
	for _, cs := range svcs {
		for _, r := range cs.reals {
			pools[cs.name] = append(pools[cs.name], r.name)
		}
	}
	rel := d.guard.configure(guardConfigOf(cfg.Director.EvictionGuard), pools)
	d.releaseLocked(rel)
	d.updatePoolsLocked()
	d.Trigger()
	return releasedServices(rel)
}

// carryRenamesLocked gives a renamed service (see Renames) the health,
// drains and quorum state of its servers under the old name, as the checks
// keep their verdicts: a rename must not take healthy servers out of the
// table.
func (d *Director) carryRenamesLocked(next []*compiledService) {
	var before, after []namedKey
	for _, cs := range d.services {
		before = append(before, namedKey{cs.name, cs.svc.Key})
	}
	byName := map[string]*compiledService{}
	for _, cs := range next {
		after = append(after, namedKey{cs.name, cs.svc.Key})
		byName[cs.name] = cs
	}
	moved := renames(before, after)
	d.guard.rename(moved)
	for name, prev := range moved {
		for _, r := range byName[name].reals {
			if st := d.state[rsID{prev, r.name}]; st != nil && d.state[rsID{name, r.name}] == nil {
				moved := *st
				d.state[rsID{name, r.name}] = &moved
			}
		}
		if p := d.pools[prev]; p != nil && d.pools[name] == nil {
			moved := *p
			d.pools[name] = &moved
		}
	}
}

type namedKey struct {
	name string
	key  ServiceKey
}

// Renames maps each service of next that is a service of old under a new
// name (the same kernel service, the old name gone) to its old name.
// Services whose kernel identity cannot be computed are left out.
func Renames(old, next *config.Config) map[string]string {
	keyed := func(cfg *config.Config) []namedKey {
		var out []namedKey
		for _, s := range cfg.Services {
			if k, err := serviceKey(s); err == nil {
				out = append(out, namedKey{s.Name, k})
			}
		}
		return out
	}
	return renames(keyed(old), keyed(next))
}

func renames(before, after []namedKey) map[string]string {
	was := map[ServiceKey]string{}
	for _, b := range before {
		was[b.key] = b.name
	}
	names := map[string]bool{}
	for _, a := range after {
		names[a.name] = true
	}
	out := map[string]string{}
	for _, a := range after {
		if prev, ok := was[a.key]; ok && prev != a.name && !names[prev] {
			out[a.name] = prev
		}
	}
	return out
}

func (d *Director) updatePoolsLocked() {
	for _, cs := range d.services {
		d.updatePoolLocked(cs)
	}
}

func (d *Director) updatePoolLocked(cs *compiledService) {
	p := d.pools[cs.name]
	if updatePool(cs, p, d.state) && p.set {
		d.log.Info("quorum state changed", "service", cs.name, "up", p.up, "sorry_server", cs.sorry != nil && !p.up)
	}
}

// SetHealth records a check verdict and triggers a pass. Unknown names
// are ignored: a verdict can race a reload that removed the server. A
// failure the eviction guard holds leaves the server as it was.
func (d *Director) SetHealth(service, realserver string, h Health) {
	why, faulty := d.localFault()
	d.mu.Lock()
	defer d.mu.Unlock()
	id := rsID{service, realserver}
	st, cs := d.state[id], d.byName[service]
	if st == nil || cs == nil {
		return
	}
	if !h.Known {
		h.Healthy = false
	}
	now := d.now()
	d.observeLocked(now, why, faulty)
	wasHeld := d.guard.held[id] != nil
	switch {
	case h.Known && !h.Healthy && st.up(cs.alpha):
		if d.guard.fail(id, h, cs.rejudge(realserver), now) {
			d.heldLocked(id, h, wasHeld)
			d.Trigger() // Run arms its guard timer
			return
		}
		if wasHeld && h.Cause == CauseAnswered {
			d.metrics.released(outcomeAnswered)
		} else if wasHeld {
			d.metrics.released(outcomeApplied)
		}
	case d.guard.forget(id):
		outcome := outcomeRecovered
		if !h.Healthy {
			outcome = outcomeApplied
		}
		d.metrics.released(outcome)
	}
	d.applyHealthLocked(cs, st, h, now)
	d.Trigger()
}

func (d *Director) applyHealthLocked(cs *compiledService, st *rsState, h Health, now time.Time) {
	wasDown := st.health.Known && !st.health.Healthy
	st.health = h
	if wasDown && h.Healthy {
		st.warmSince = now
	}
	// Only this service's quorum can move: O(1) per verdict, not O(services).
	d.updatePoolLocked(cs)
}

// Drain sets or clears an operator drain on a real server: weight 0, no
// new connections, existing ones finish. It survives reloads.
func (d *Director) Drain(service, realserver string, on bool) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	st := d.state[rsID{service, realserver}]
	if st == nil {
		return fmt.Errorf("no realserver %q in service %q", realserver, service)
	}
	if st.drained && !on {
		st.warmSince = d.now()
	}
	st.drained = on
	d.updatePoolLocked(d.byName[service])
	d.Trigger()
	return nil
}

// Trigger asks Run for a pass soon.
func (d *Director) Trigger() {
	select {
	case d.trigger <- struct{}{}:
	default:
	}
}

// Result is the outcome of one pass.
type Result struct {
	Ops   []Op // ops sent (or, for Plan, that would be sent)
	Drift int  // ops that repaired changes made by someone else
	// NextStep is when a warmup weight must step next (zero if none).
	NextStep time.Time
}

// Plan dumps the kernel and returns the ops a pass would make, without
// making them.
func (d *Director) Plan(ctx context.Context) (Result, error) {
	d.passMu.Lock()
	defer d.passMu.Unlock()
	kernel, err := d.ipvs.Dump(ctx)
	if err != nil {
		return Result{}, fmt.Errorf("dump ipvs table: %w", err)
	}
	ops, next := d.planLocked(kernel)
	return Result{Ops: ops, NextStep: next}, nil
}

func (d *Director) planLocked(kernel []KernelService) ([]Op, time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	desired, next := buildDesired(d.services, d.state, d.pools, d.now())
	owned := func(k ServiceKey) bool { return d.ownAll || d.retired[k] }
	return diff(desired, kernel, owned), next
}

// Reconcile runs one pass: dump, diff, apply. The error joins every
// failed op; ops that did not fail are applied regardless.
func (d *Director) Reconcile(ctx context.Context) (Result, error) {
	d.passMu.Lock()
	defer d.passMu.Unlock()
	start := d.now()
	res, err := d.reconcileLocked(ctx)
	d.metrics.pass(res, err, d.now().Sub(start))
	d.mu.Lock()
	d.lastErr = err
	d.mu.Unlock()
	if d.onPass != nil {
		d.onPass()
	}
	return res, err
}

func (d *Director) reconcileLocked(ctx context.Context) (Result, error) {
	kernel, err := d.ipvs.Dump(ctx)
	if err != nil {
		return Result{}, fmt.Errorf("dump ipvs table: %w", err)
	}
	var res Result
	if d.expected != nil {
		res.Drift = len(driftOps(d.expected, kernel))
	}
	ops, next := d.planLocked(kernel)
	res.NextStep = next
	table := make(map[ServiceKey]*KernelService, len(kernel))
	for i := range kernel {
		table[kernel[i].Key] = &kernel[i]
	}
	var errs []error
	// Creations of services first, alone: destinations of a service the
	// kernel refused are then skipped instead of failing one by one.
	split := 0
	for split < len(ops) && ops[split].Kind == OpNewService {
		split++
	}
	failed := map[ServiceKey]bool{}
	run := func(batch []Op) {
		if len(batch) == 0 {
			return
		}
		for i, err := range d.ipvs.Apply(ctx, batch) {
			op := batch[i]
			d.metrics.op(op.Kind, err)
			if err != nil {
				failed[op.Service.Key] = true
				errs = append(errs, fmt.Errorf("%s: %w", op, err))
				d.log.Error("ipvs op failed", "service", op.Name, "realserver", op.RealServer, "op", op.String(), "err", err)
				continue
			}
			res.Ops = append(res.Ops, op)
			_ = applyToTable(table, op)
		}
	}
	if len(ops) > 0 {
		res.Ops = make([]Op, 0, len(ops))
	}
	run(ops[:split])
	rest := ops[split:]
	if len(failed) > 0 {
		rest = make([]Op, 0, len(rest))
		for i := range ops[split:] {
			if op := &ops[split+i]; !failed[op.Service.Key] {
				rest = append(rest, *op)
			}
		}
	}
	run(rest)
	if res.Drift > 0 {
		d.log.Warn("repaired out-of-band changes to the ipvs table", "ops", res.Drift)
	}
	d.expected = table
	d.mu.Lock()
	d.last = table
	for k := range d.retired {
		if table[k] == nil {
			delete(d.retired, k)
		}
	}
	d.mu.Unlock()
	return res, errors.Join(errs...)
}

// driftOps are the ops that would restore what we left in the kernel,
// counting only services we had there.
func driftOps(expected map[ServiceKey]*KernelService, kernel []KernelService) []Op {
	want := make(map[ServiceKey]*desiredService, len(expected))
	for k, s := range expected {
		ds := &desiredService{svc: s.Service}
		for _, d := range s.Dests {
			ds.dests = append(ds.dests, desiredDest{Dest: d})
		}
		want[k] = ds
	}
	return diff(want, kernel, func(ServiceKey) bool { return false })
}

// Run reconciles on every trigger, every reconcile_interval, when a warmup
// weight must step, when the eviction guard lets held failures go, and
// after a failed pass with backoff (1 s doubling up to the interval). It
// returns when ctx ends.
func (d *Director) Run(ctx context.Context) error {
	backoff := time.Duration(0)
	for {
		res, err := d.Reconcile(ctx)
		d.mu.Lock()
		wait := d.interval
		d.mu.Unlock()
		if err != nil {
			backoff = min(max(2*backoff, time.Second), wait)
			wait = backoff
			d.log.Error("reconcile pass failed; retrying", "err", err, "retry_in", wait)
		} else {
			backoff = 0
		}
		if !res.NextStep.IsZero() {
			wait = min(wait, max(res.NextStep.Sub(d.now()), 10*time.Millisecond))
		}
		if !d.waitForPass(ctx, wait) {
			return ctx.Err()
		}
	}
}

// waitForPass waits up to wait for a reason to run the next pass: a
// trigger, or the eviction guard letting held failures go. It reports
// false when ctx ends.
func (d *Director) waitForPass(ctx context.Context, wait time.Duration) bool {
	t := time.NewTimer(wait)
	defer t.Stop()
	for {
		released, next := d.tickGuard()
		if released {
			return true
		}
		var look <-chan time.Time
		var g *time.Timer
		if !next.IsZero() {
			g = time.NewTimer(max(next.Sub(d.now()), 10*time.Millisecond))
			look = g.C
		}
		woke := true
		select {
		case <-ctx.Done():
			return false
		case <-d.trigger:
		case <-t.C:
		case <-look:
			woke = false
		}
		if g != nil {
			g.Stop()
		}
		if woke {
			return true
		}
	}
}
