package director

import (
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
	guardLog   time.Time
	// cfg is the config in force, for Update's renames.
	cfg *config.Config

	// watcher hears which services are down (see ServiceDown); down is
	// what it last heard. pubMu keeps its calls in the order of the
	// changes, outside mu.
	watcher ServiceWatcher
	pubMu   sync.Mutex
	down    map[string]bool

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

// WithServiceWatcher tells w whenever a service goes down or comes back
// (see ServiceDown).
func WithServiceWatcher(w ServiceWatcher) Option {
	return func(d *Director) { d.watcher = w }
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
		down:       map[string]bool{},
	}
	for _, o := range opts {
		o(d)
	}
	d.metrics.d = d
	commit, err := d.Prepare(cfg, nil)
	if err != nil {
		return nil, err
	}
	commit()
	return d, nil
}

// Update switches to a new config, as Prepare and its commit do. The
// services it renames are worked out from the config in force.
func (d *Director) Update(cfg *config.Config) error {
	d.mu.Lock()
	renames := Renames(d.cfg, cfg)
	d.mu.Unlock()
	commit, err := d.Prepare(cfg, renames)
	if err != nil {
		return err
	}
	commit()
	return nil
}

// Prepare checks and compiles cfg, changing nothing, and returns the
// commit that switches to it. Health, operator drains and quorum state
// carry over for servers that stay, and for those of services renamed
// (new name -> old, see Renames). A config with any error is rejected
// as a whole.
func (d *Director) Prepare(cfg *config.Config, renames map[string]string) (commit func(), err error) {
	svcs, err := compile(cfg)
	if err != nil {
		return nil, fmt.Errorf("config rejected, nothing changed: %w", err)
	}
	return func() {
		changed := d.update(cfg, svcs, renames)
		d.publish(changed)
	}, nil
}

// update switches to svcs and returns every service whose down state may
// have moved: those of either config.
func (d *Director) update(cfg *config.Config, svcs []*compiledService, renames map[string]string) []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	var touched []string
	for _, cs := range d.services {
		touched = append(touched, cs.name)
	}
	keep := map[ServiceKey]bool{}
	for _, cs := range svcs {
		keep[cs.svc.Key] = true
		touched = append(touched, cs.name)
	}
	for _, cs := range d.services {
		if !keep[cs.svc.Key] {
			d.retired[cs.svc.Key] = true
		}
	}
	for k := range keep {
		delete(d.retired, k)
	}
	d.carryRenamesLocked(svcs, renames)
	live := map[rsID]bool{}
	names := map[string]bool{}
	for _, cs := range svcs {
		names[cs.name] = true
		for _, r := range cs.reals {
			id := rsID{cs.name, r.name}
			live[id] = true
			if d.state[id] == nil {
				d.state[id] = &rsState{health: Health{Weight: -1}, since: d.now()}
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
	d.cfg = cfg
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
	return touched
}

// carryRenamesLocked gives each renamed service (new name -> old) the
// health, drains and quorum state of its servers under the old name, as
// the checks keep their verdicts: a rename must not take healthy servers
// out of the table.
func (d *Director) carryRenamesLocked(next []*compiledService, renames map[string]string) {
	d.guard.rename(renames)
	for _, cs := range next {
		prev, ok := renames[cs.name]
		if !ok {
			continue
		}
		for _, r := range cs.reals {
			if st := d.state[rsID{prev, r.name}]; st != nil && d.state[rsID{cs.name, r.name}] == nil {
				moved := *st
				d.state[rsID{cs.name, r.name}] = &moved
			}
		}
		if p := d.pools[prev]; p != nil && d.pools[cs.name] == nil {
			moved := *p
			d.pools[cs.name] = &moved
		}
	}
}

// Renames maps each service of next that is a service of old under a new
// name (the same kernel service, the old name gone) to its old name. A
// reload works them out once and hands them to the director (Prepare) and
// the checks, so both carry a renamed service's state alike. Services
// whose kernel identity cannot be computed are left out; a nil old
// renames nothing.
func Renames(old, next *config.Config) map[string]string {
	out := map[string]string{}
	if old == nil || next == nil {
		return out
	}
	was := map[ServiceKey]string{}
	for _, s := range old.Services {
		if k, err := serviceKey(s); err == nil {
			was[k] = s.Name
		}
	}
	names := map[string]bool{}
	for _, s := range next.Services {
		names[s.Name] = true
	}
	for _, s := range next.Services {
		k, err := serviceKey(s)
		if err != nil {
			continue
		}
		if prev, ok := was[k]; ok && prev != s.Name && !names[prev] {
			out[s.Name] = prev
		}
	}
	return out
}
