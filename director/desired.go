package director

import (
	"time"
)

// Health is what the checks say about one real server.
type Health struct {
	Known   bool // false until the first verdict
	Healthy bool
	Weight  int // dynamic weight from the check; -1 = none, use the configured weight
	// Cause and Reason say, for a failure, what it tells about the server
	// and why the check failed; the eviction guard (guard.go) reads them.
	Cause  Cause
	Reason string
}

type rsID struct{ service, realserver string }

// rsState is everything lvsd remembers about one real server across
// passes and reloads.
type rsState struct {
	health  Health
	drained bool // operator drain: weight 0, kept across reloads
	// warmSince is when the server came back (restore or undrain); its
	// weight ramps from 1 to the configured weight over the warmup.
	warmSince time.Time
	// since is when the checks' verdict last changed between unknown, up
	// and down (or when lvsd first knew the server), for status.
	since time.Time
}

// pool holds the quorum state of a service, which has memory (hysteresis).
type pool struct {
	set bool
	up  bool
}

// lost reports that the service is below its quorum. A service without a
// pool (no quorum set) or whose quorum is not decided yet is not.
func (p *pool) lost() bool { return p != nil && p.set && !p.up }

// desiredService is one service of the table lvsd wants in the kernel.
type desiredService struct {
	name  string
	svc   Service
	dests []desiredDest
}

type desiredDest struct {
	Dest
	realserver string // config name; "sorry" for the sorry server
	// drainOnly: the server failed under on_failure = drain. It stays at
	// weight 0 while the kernel still counts connections on it, then goes.
	// It is never (re)created.
	drainOnly bool
	// prime: an announced service's destination is created with this
	// weight, then set to Weight (see primedWeight in announce.go).
	prime int
}

func (s *rsState) up(alpha bool) bool {
	if !s.health.Known {
		return !alpha
	}
	return s.health.Healthy
}

// countUp is the number of real servers that can take traffic, for quorum.
func countUp(cs *compiledService, state map[rsID]*rsState) int {
	n := 0
	for _, r := range cs.reals {
		st := state[rsID{cs.name, r.name}]
		if st != nil && st.up(cs.alpha) && !st.drained && effectiveWeight(r, st) > 0 {
			n++
		}
	}
	return n
}

func quorumOf(cs *compiledService) int {
	if cs.sorry != nil && cs.quorum < 1 {
		return 1 // a sorry server alone means "when no server is left"
	}
	return cs.quorum
}

// updatePool moves the service's quorum state, with hysteresis as
// keepalived has it: lost below quorum-hysteresis, regained at
// quorum+hysteresis. The first verdict has no hysteresis.
func updatePool(cs *compiledService, p *pool, state map[rsID]*rsState) (changed bool) {
	q := quorumOf(cs)
	if q == 0 {
		changed = !p.set || !p.up
		p.set, p.up = true, true
		return changed
	}
	n := countUp(cs, state)
	was := *p
	switch {
	case !p.set:
		p.set, p.up = true, n >= q
	case p.up && n < q-cs.hysteresis:
		p.up = false
	case !p.up && n >= q+cs.hysteresis:
		p.up = true
	}
	return was != *p
}

func effectiveWeight(r compiledReal, st *rsState) int {
	if st != nil && st.health.Known && st.health.Weight >= 0 {
		return st.health.Weight
	}
	return r.dest.Weight
}

// warmWeight ramps w linearly from 1 at since to w at since+warmup.
func warmWeight(w int, since time.Time, warmup time.Duration, now time.Time) (weight int, warming bool) {
	if warmup <= 0 || since.IsZero() || w <= 1 {
		return w, false
	}
	el := now.Sub(since)
	if el >= warmup {
		return w, false
	}
	if el < 0 {
		el = 0
	}
	ramp := 1 + int(int64(w-1)*int64(el)/int64(warmup))
	return ramp, true
}

// buildDesired computes the table from the compiled config and the state.
// nextStep is the earliest time a warmup weight must step (zero if none).
func buildDesired(svcs []*compiledService, state map[rsID]*rsState, pools map[string]*pool, now time.Time) (map[ServiceKey]*desiredService, time.Time) {
	out := make(map[ServiceKey]*desiredService, len(svcs))
	var nextStep time.Time
	for _, cs := range svcs {
		ds := &desiredService{name: cs.name, svc: cs.svc}
		out[cs.svc.Key] = ds
		if cs.sorry != nil && pools[cs.name].lost() {
			ds.dests = append(ds.dests, desiredDest{Dest: *cs.sorry, realserver: "sorry"})
			continue
		}
		for _, r := range cs.reals {
			st := state[rsID{cs.name, r.name}]
			if st == nil {
				st = &rsState{health: Health{Weight: -1}}
			}
			d := desiredDest{Dest: r.dest, realserver: r.name}
			if cs.keepAll {
				d.prime = r.dest.Weight
			}
			switch {
			case st.up(cs.alpha):
				w, warming := warmWeight(effectiveWeight(r, st), st.warmSince, r.warmup, now)
				d.Weight = w
				if warming {
					// Step once per weight unit, but not more than 10 times a second.
					step := max(r.warmup/time.Duration(max(r.dest.Weight, 1)), 100*time.Millisecond)
					if t := now.Add(step); nextStep.IsZero() || t.Before(nextStep) {
						nextStep = t
					}
				}
			case cs.keepAll:
				d.Weight = 0 // down or not yet checked, but in its place: see pinnedOrder
			case !st.health.Known:
				continue // alpha: absent until the first healthy verdict
			case cs.drain && !cs.udp:
				d.Weight, d.drainOnly = 0, true
			default:
				continue
			}
			if st.drained {
				d.Weight = 0
			}
			ds.dests = append(ds.dests, d)
		}
	}
	return out, nextStep
}
