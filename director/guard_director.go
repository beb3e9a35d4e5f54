package director

import (
	"fmt"
	"strings"
	"time"
)

// The Director's side of the eviction guard (guard.go): it feeds the guard
// lvsd's own state, applies what the guard lets go, and says what it holds.

// guardSummaryEvery spaces the "still holding" log lines.
const guardSummaryEvery = 10 * time.Second

func (cs *compiledService) rejudge(realserver string) time.Duration {
	for _, r := range cs.reals {
		if r.name == realserver {
			return r.rejudge
		}
	}
	return 0
}

func (d *Director) observeLocked(now time.Time, why string, faulty bool) {
	if faulty && why == "" {
		why = "unknown: the local fault monitor gave no reason"
	}
	if !faulty {
		why = ""
	}
	was := d.guard.fault
	d.guard.observe(now, why)
	switch {
	case d.guard.fault != "" && was == "":
		d.log.Warn("lvsd is in trouble: the eviction guard may hold failed checks", "fault", d.guard.fault)
	case d.guard.fault == "" && was != "":
		d.log.Info("lvsd is out of trouble", "was", was, "held", len(d.guard.held))
	}
}

// heldLocked reports a failure the guard has just held: the first of a
// spell at warning level with the whole story, later ones at debug level
// (a mass failure holds thousands), summed up by tickGuard.
func (d *Director) heldLocked(id rsID, h Health, again bool) {
	if again {
		return
	}
	d.metrics.heldTotal.Inc()
	hv := d.guard.held[id]
	args := []any{"service", id.service, "realserver", id.realserver, "reason", h.Reason, "fault", d.guard.fault, "why", hv.why}
	if len(d.guard.held) == 1 {
		d.guardLog = d.now()
		d.log.Warn("eviction guard: holding a failed check, the server stays in the table", args...)
		return
	}
	d.log.Debug("eviction guard: holding a failed check", args...)
}

// SetDoubt records whether the checks of a real server are in doubt: the
// latest run of one of them said nothing conclusive because lvsd itself
// was late, or it is failing but not yet fall times. The eviction guard
// does not apply a held failure as a lone one while servers in doubt could
// still make it one of many. Unknown names are ignored.
func (d *Director) SetDoubt(service, realserver string, doubt bool) {
	d.mu.Lock()
	id := rsID{service, realserver}
	st := d.state[id]
	wake := st != nil && d.guard.setDoubt(id, doubt, st.health.Known && !st.health.Healthy)
	d.mu.Unlock()
	if wake {
		d.Trigger() // Run looks at the guard again
	}
}

// releaseLocked applies the failures the guard let go of.
func (d *Director) releaseLocked(rel []released) {
	if len(rel) == 0 {
		return
	}
	now := d.now()
	byOutcome := map[string]int{}
	var names []string
	for _, r := range rel {
		d.metrics.released(r.outcome)
		byOutcome[r.outcome]++
		st, cs := d.state[r.id], d.byName[r.id.service]
		if st == nil || cs == nil {
			continue
		}
		d.applyHealthLocked(cs, r.id, st, r.verdict, now)
		if len(names) < 5 {
			names = append(names, r.id.service+"/"+r.id.realserver)
		}
	}
	if len(rel) > len(names) {
		names = append(names, fmt.Sprintf("and %d more", len(rel)-len(names)))
	}
	d.log.Warn("eviction guard: applying held failed checks", "applied", byOutcome[outcomeApplied],
		"expired", byOutcome[outcomeExpired], "realservers", strings.Join(names, ", "),
		"fault", d.guard.fault, "held", len(d.guard.held))
}

// tickGuard applies the held failures that are due. It reports whether it
// applied any, and when to look again (zero: nothing is held).
func (d *Director) tickGuard() (applied bool, next time.Time) {
	why, faulty := d.localFault()
	d.mu.Lock()
	now := d.now()
	d.observeLocked(now, why, faulty)
	rel, next := d.guard.due(now)
	d.releaseLocked(rel)
	if len(d.guard.held) == 0 {
		next = time.Time{}
	} else {
		// lvsd's own state is polled, so its recovery is seen within a second.
		if poll := now.Add(time.Second); next.IsZero() || poll.Before(next) {
			next = poll
		}
		if now.Sub(d.guardLog) >= guardSummaryEvery {
			d.guardLog = now
			d.log.Warn("eviction guard: holding failed checks", "held", len(d.guard.held), "fault", d.guard.fault)
		}
	}
	d.mu.Unlock()
	d.publish(releasedServices(rel))
	return len(rel) > 0, next
}

func releasedServices(rel []released) []string {
	var out []string
	for _, r := range rel {
		if len(out) == 0 || out[len(out)-1] != r.id.service { // rel is sorted
			out = append(out, r.id.service)
		}
	}
	return out
}

// GuardStatus says what the eviction guard holds now, and why.
func (d *Director) GuardStatus() GuardStatus {
	why, faulty := d.localFault()
	d.mu.Lock()
	defer d.mu.Unlock()
	d.observeLocked(d.now(), why, faulty)
	return d.guard.status()
}
