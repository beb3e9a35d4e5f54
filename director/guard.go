package director

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/lvsd/lvsd/config"
)

// The eviction guard keeps lvsd's own trouble from emptying the table.
//
// When lvsd is behind on its checks or short of file descriptors or memory,
// probes of healthy servers time out or cannot even start, and every one of
// those failures looks like a dead server. Envoy answers this with a panic
// threshold; the guard does the same, but only while lvsd knows it is in
// trouble, and never for an answer from the server. The rule:
//
//  1. A failure in which the server answered (refused, reset, a TLS alert, a
//     wrong status, body, reply or DNS answer, an LDAP result, a script's
//     exit code; see checks.ServerAnswered) is applied at once, always.
//  2. A probe that never reached the server because lvsd had no file
//     descriptor, memory or buffer for it (class "local") is held: it says
//     nothing about the server. It also counts as lvsd being in trouble for
//     one window.
//  3. A silent failure (a timeout, no route, a connect or read error of no
//     known kind) is applied at once while lvsd is not in trouble. While it
//     is, the failure is held for up to one window to see whether it is one
//     of many, and held on only if, within the window, more than threshold
//     percent of its pool or of all real servers have failed silently, and
//     those failures are not confined to its own pool (unless that pool is
//     the only one). Otherwise it is applied when the window ends, unless
//     the servers whose checks are in doubt (lvsd was late, so a run said
//     nothing; or a check is failing but not yet fall times) could still
//     make it one of many: then it waits until they are decided. lvsd's
//     own lateness spreads the verdicts of one mass event over more than
//     the window, and must not turn its first failures into lone ones. So
//     one pool that fails while the others are fine is taken out, one
//     window late or once lvsd can tell the others are fine, whatever
//     state lvsd is in.
//  4. A held failure ends when the checks report the server healthy (it
//     never left the table), when the server answers with a failure (rule
//     1), once lvsd has been out of trouble long enough for the checks to
//     judge the server again (rise × interval + timeout of its slowest
//     check, at least one window) and they still find it down (applied;
//     not while its checks are in doubt, as lvsd was too late to judge it
//     again), and in any case after max_hold (applied).
//
// Holding keeps a server with the health and weight it had: the table stays
// as it was last known to be good. guard is pure state: the Director calls
// it under its lock with the time and the state of lvsd's own health.

// Cause says what a failed check tells about the server itself.
type Cause int

const (
	// CauseAnswered: the server answered, wrongly. Never held. The zero
	// value, so a caller that does not know never has a failure held.
	CauseAnswered Cause = iota
	// CauseSilent: nothing came back in time, or an error that names no
	// answer. lvsd's own lateness produces these.
	CauseSilent
	// CauseLocal: the probe never left; lvsd lacked the resources for it.
	CauseLocal
)

// guardConfig is [director.eviction_guard] as the director uses it.
type guardConfig struct {
	threshold       int // percent; 0: the guard is off
	window, maxHold time.Duration
}

func guardConfigOf(g config.EvictionGuard) guardConfig {
	return guardConfig{threshold: g.Threshold, window: g.Window.Duration, maxHold: g.MaxHold.Duration}
}

func (c guardConfig) on() bool { return c.threshold > 0 && c.window > 0 && c.maxHold > 0 }

// rejudgeTime is how long the checks of a server need to call it up again
// once lvsd is healthy: rise probes of its slowest check, plus a timeout.
func rejudgeTime(checks []*config.Check) time.Duration {
	var d time.Duration
	for _, c := range checks {
		d = max(d, time.Duration(max(c.Rise, 1))*c.Interval.Duration+c.Timeout.Duration)
	}
	return d
}

type held struct {
	verdict Health
	since   time.Time
	// mass: part of a mass failure, or a local one; held until lvsd is out
	// of trouble. Otherwise the failure waits out its window.
	mass    bool
	why     string
	rejudge time.Duration
}

type failure struct {
	id rsID
	at time.Time
}

// Release outcomes, as in lvsd_eviction_guard_released_total.
const (
	outcomeRecovered = "recovered" // the checks called the server healthy again
	outcomeAnswered  = "answered"  // the server answered with a failure: applied
	outcomeApplied   = "applied"   // not a mass failure, or the checks still fail after lvsd recovered
	outcomeExpired   = "expired"   // max_hold passed: applied
)

// released is a held failure the guard lets go of.
type released struct {
	id      rsID
	verdict Health
	outcome string
}

type guard struct {
	cfg      guardConfig
	poolSize map[string]int
	total    int

	recent   []failure          // silent failures of the last window, oldest first
	recentAt map[rsID]time.Time // each server's latest entry in recent
	held     map[rsID]*held
	// failing counts, per pool, the servers that failed silently within
	// the window or are held; failingAll and failingPools sum it up.
	failing      map[string]int
	failingAll   int
	failingPools int
	// doubt is the servers whose checks are in doubt (SetDoubt), true for
	// those that may be failing unseen (not down already); waiting says a
	// held failure waits for a doubt, so one that ends should wake the
	// guard.
	doubt   map[rsID]bool
	waiting bool

	external   string    // why lvsd is in trouble, from its own monitor; "" if it is not
	localUntil time.Time // a local probe failure keeps lvsd in trouble until then
	localWhy   string
	fault      string // external, else localWhy while it lasts
	faultSince time.Time
	clearSince time.Time // when the last fault ended; zero while one lasts
}

func newGuard() *guard {
	return &guard{poolSize: map[string]int{}, recentAt: map[rsID]time.Time{}, held: map[rsID]*held{}, failing: map[string]int{},
		doubt: map[rsID]bool{}}
}

// configure takes a new config and the servers it has (pool -> servers).
// Servers that are gone are forgotten; with the guard turned off, every
// held failure is released to be applied.
func (g *guard) configure(cfg guardConfig, pools map[string][]string) []released {
	g.cfg = cfg
	live := map[rsID]bool{}
	clear(g.poolSize)
	g.total = 0
	for p, servers := range pools {
		if len(servers) == 0 {
			continue
		}
		g.poolSize[p] = len(servers)
		g.total += len(servers)
		for _, s := range servers {
			live[rsID{p, s}] = true
		}
	}
	var out []released
	for id, h := range g.held {
		switch {
		case !live[id]:
			delete(g.held, id)
		case !cfg.on():
			out = append(out, released{id, h.verdict, outcomeApplied})
			delete(g.held, id)
		}
	}
	kept := g.recent[:0]
	for _, f := range g.recent {
		if live[f.id] {
			kept = append(kept, f)
		}
	}
	g.recent = kept
	for id := range g.recentAt {
		if !live[id] {
			delete(g.recentAt, id)
		}
	}
	for id := range g.doubt {
		if !live[id] {
			delete(g.doubt, id)
		}
	}
	g.recount()
	sortReleased(out)
	return out
}

// rename moves the state of servers of a renamed pool (old -> new name).
func (g *guard) rename(renames map[string]string) {
	if len(renames) == 0 {
		return
	}
	move := func(id rsID) rsID {
		for name, prev := range renames {
			if id.service == prev {
				return rsID{name, id.realserver}
			}
		}
		return id
	}
	for id, h := range g.held {
		if n := move(id); n != id {
			delete(g.held, id)
			g.held[n] = h
		}
	}
	for i := range g.recent {
		g.recent[i].id = move(g.recent[i].id)
	}
	at := make(map[rsID]time.Time, len(g.recentAt))
	for id, t := range g.recentAt {
		at[move(id)] = t
	}
	g.recentAt = at
	doubt := make(map[rsID]bool, len(g.doubt))
	for id, unseen := range g.doubt {
		doubt[move(id)] = unseen
	}
	g.doubt = doubt
}

// setDoubt records whether the checks of id are in doubt, and whether it
// is down already (a failure applied). It reports whether a held failure
// waits for doubts to end and this one did.
func (g *guard) setDoubt(id rsID, doubt, down bool) bool {
	if doubt {
		g.doubt[id] = !down
		return false
	}
	delete(g.doubt, id)
	return g.waiting
}

// setDown tells a server in doubt is down now, or no longer.
func (g *guard) setDown(id rsID, down bool) {
	if _, ok := g.doubt[id]; ok {
		g.doubt[id] = !down
	}
}

func (g *guard) recount() {
	clear(g.failing)
	g.failingAll, g.failingPools = 0, 0
	seen := map[rsID]bool{}
	for id := range g.held {
		seen[id] = true
	}
	for id := range g.recentAt {
		seen[id] = true
	}
	for id := range seen {
		g.count(id, 1)
	}
}

func (g *guard) in(id rsID) bool {
	_, r := g.recentAt[id]
	return r || g.held[id] != nil
}

// change runs f and keeps the failing counts right for id.
func (g *guard) change(id rsID, f func()) {
	before := g.in(id)
	f()
	switch after := g.in(id); {
	case after && !before:
		g.count(id, 1)
	case before && !after:
		g.count(id, -1)
	}
}

func (g *guard) count(id rsID, n int) {
	was := g.failing[id.service]
	g.failing[id.service] = was + n
	g.failingAll += n
	switch {
	case was == 0 && n > 0:
		g.failingPools++
	case was+n == 0:
		g.failingPools--
		delete(g.failing, id.service)
	}
}

// observe records lvsd's own state: why it is in trouble (external, "" if
// it is not), as its monitor says now.
func (g *guard) observe(now time.Time, external string) {
	g.external = external
	why := external
	if why == "" && now.Before(g.localUntil) {
		why = g.localWhy
	}
	switch {
	case why != "" && g.fault == "":
		g.faultSince, g.clearSince = now, time.Time{}
	case why == "" && g.fault != "":
		g.clearSince = now
	}
	g.fault = why
}

// prune forgets silent failures older than the window.
func (g *guard) prune(now time.Time) {
	cut := now.Add(-g.cfg.window)
	for len(g.recent) > 0 && !g.recent[0].at.After(cut) {
		f := g.recent[0]
		g.recent = g.recent[1:]
		if g.recentAt[f.id].Equal(f.at) {
			g.change(f.id, func() { delete(g.recentAt, f.id) })
		}
	}
}

// fail judges a failure of a server that is in the table now. It reports
// whether the guard holds it; if not, the caller applies it, and any
// earlier hold of the server ends.
func (g *guard) fail(id rsID, h Health, rejudge time.Duration, now time.Time) bool {
	hold := g.judge(id, h, rejudge, now)
	if !hold {
		g.change(id, func() { delete(g.held, id) })
	}
	return hold
}

func (g *guard) judge(id rsID, h Health, rejudge time.Duration, now time.Time) bool {
	if !g.cfg.on() || h.Cause == CauseAnswered {
		return false
	}
	g.prune(now)
	g.change(id, func() {
		g.recent = append(g.recent, failure{id, now})
		g.recentAt[id] = now
	})
	if h.Cause == CauseLocal {
		g.localUntil, g.localWhy = now.Add(g.cfg.window), "probes: "+h.Reason
		g.observe(now, g.external)
		g.hold(id, h, rejudge, now, true, "the probe never reached the server: lvsd had no resources for it")
		return true
	}
	if g.fault == "" {
		return false
	}
	mass, why := g.mass(id)
	if !mass {
		why = fmt.Sprintf("lvsd is in trouble; waiting up to %s to see whether this failure is one of many", g.cfg.window)
	}
	g.hold(id, h, rejudge, now, mass, why)
	return true
}

func (g *guard) hold(id rsID, h Health, rejudge time.Duration, now time.Time, mass bool, why string) {
	if prev := g.held[id]; prev != nil {
		prev.verdict, prev.mass, prev.why = h, prev.mass || mass, why
		return
	}
	g.change(id, func() { g.held[id] = &held{verdict: h, since: now, mass: mass, why: why, rejudge: rejudge} })
}

// mass reports whether the silent failure of id is part of a mass failure
// not confined to its own pool, and describes it.
func (g *guard) mass(id rsID) (bool, string) {
	p := id.service
	if !g.massOf(g.failing[p], g.failingAll, g.failingPools, p) {
		return false, ""
	}
	return true, fmt.Sprintf("mass failure while lvsd is in trouble: %d of %d servers of %s, %d of %d in all, in %d pools, within %s",
		g.failing[p], g.poolSize[p], p, g.failingAll, g.total, g.failingPools, g.cfg.window)
}

// massOf is the rule of mass: failing servers of pool p, failing ones in
// all and the pools they are in.
func (g *guard) massOf(pool, all, pools int, p string) bool {
	inPool := pool*100 > g.cfg.threshold*g.poolSize[p]
	inAll := all*100 > g.cfg.threshold*g.total
	spread := pools >= 2 || len(g.poolSize) == 1
	return (inPool || inAll) && spread
}

// undecided counts the servers in doubt that are not failing already, per
// pool and in all.
func (g *guard) undecided() (map[string]int, int) {
	per := map[string]int{}
	all := 0
	for id, unseen := range g.doubt {
		if unseen && !g.in(id) {
			per[id.service]++
			all++
		}
	}
	return per, all
}

// couldBeMass reports whether the failure of id would be part of a mass
// failure if every server in doubt (per, all: undecided) failed too.
func (g *guard) couldBeMass(id rsID, per map[string]int, all int) bool {
	pools := g.failingPools
	for p, n := range per {
		if n > 0 && g.failing[p] == 0 {
			pools++
		}
	}
	return g.massOf(g.failing[id.service]+per[id.service], g.failingAll+all, pools, id.service)
}

// forget ends the hold of id, if any, because the checks call the server
// healthy or it is out of the table anyway. It reports whether it held one.
func (g *guard) forget(id rsID) bool {
	if g.held[id] == nil {
		return false
	}
	g.change(id, func() { delete(g.held, id) })
	return true
}

// due releases what must be applied by now and returns when it must look
// again (zero: nothing held).
func (g *guard) due(now time.Time) ([]released, time.Time) {
	g.prune(now)
	var out []released
	var next time.Time
	at := func(t time.Time) {
		if next.IsZero() || t.Before(next) {
			next = t
		}
	}
	g.waiting = false
	var per map[string]int // undecided, counted once when first needed
	var all int
	for id, h := range g.held {
		if !h.mass && g.fault != "" {
			if m, why := g.mass(id); m {
				h.mass, h.why = true, why
			}
		}
		expiry := h.since.Add(g.cfg.maxHold)
		end := expiry
		switch {
		case !h.mass:
			end = h.since.Add(g.cfg.window)
			if now.Before(end) || g.fault == "" || len(g.doubt) == 0 {
				break
			}
			if per == nil {
				per, all = g.undecided()
			}
			if g.couldBeMass(id, per, all) {
				// Wait for the doubts to end (setDoubt wakes the guard)
				// or max_hold; the director also looks every second.
				end = expiry
				g.waiting = true
				h.why = fmt.Sprintf("lvsd is in trouble and was too late to judge %d other servers; waiting for their checks to see whether this failure is one of many", all)
			}
		case g.fault == "":
			end = g.clearSince.Add(max(h.rejudge, g.cfg.window))
			if _, doubt := g.doubt[id]; doubt && !now.Before(end) {
				// The checks had their time but lvsd was too late to
				// use it: wait for a verdict (setDoubt wakes the guard).
				end = expiry
				g.waiting = true
				h.why = "lvsd is out of trouble but was too late to judge the server again; waiting for its checks"
			}
		}
		if !now.Before(end) || !now.Before(expiry) {
			outcome := outcomeApplied
			if !now.Before(expiry) {
				outcome = outcomeExpired
			}
			out = append(out, released{id, h.verdict, outcome})
			g.change(id, func() { delete(g.held, id) })
			continue
		}
		at(end)
		at(expiry)
	}
	sortReleased(out)
	return out, next
}

func sortReleased(r []released) {
	slices.SortFunc(r, func(a, b released) int {
		return cmp.Or(strings.Compare(a.id.service, b.id.service), strings.Compare(a.id.realserver, b.id.realserver))
	})
}

// GuardStatus is what the eviction guard is doing, for status output.
type GuardStatus struct {
	On bool // the guard may hold failures (threshold > 0)
	// Fault is why lvsd counts itself in trouble ("fds: ...", "probes:
	// ..."), "" when it does not; FaultSince is when that began.
	Fault      string
	FaultSince time.Time
	Held       []HeldStatus
}

// HeldStatus is one failure the guard holds.
type HeldStatus struct {
	Service, RealServer string
	Since               time.Time
	Reason              string    // the check's reason for the failure
	Why                 string    // why the guard holds it
	Until               time.Time // applied at the latest then (max_hold)
}

func (g *guard) status() GuardStatus {
	st := GuardStatus{On: g.cfg.on(), Fault: g.fault}
	if g.fault != "" {
		st.FaultSince = g.faultSince
	}
	for id, h := range g.held {
		st.Held = append(st.Held, HeldStatus{Service: id.service, RealServer: id.realserver, Since: h.since,
			Reason: h.verdict.Reason, Why: h.why, Until: h.since.Add(g.cfg.maxHold)})
	}
	slices.SortFunc(st.Held, func(a, b HeldStatus) int {
		return cmp.Or(strings.Compare(a.Service, b.Service), strings.Compare(a.RealServer, b.RealServer))
	})
	return st
}
