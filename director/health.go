package director

import (
	"fmt"
	"time"
)

// The director holds the one table of real-server health: what the checks
// last said about each server, what the eviction guard holds back, the
// operator's drains and each pool's quorum. Everything that asks whether a
// server or a service is up asks here.

// ServiceWatcher hears when a service goes down or comes back (see
// ServiceDown). VRRP tracking is the one: vrrp.Manager fits.
type ServiceWatcher interface {
	SetServiceDown(service string, down bool)
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
	d.setHealth(service, realserver, h)
	d.publish([]string{service})
}

func (d *Director) setHealth(service, realserver string, h Health) {
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
	d.applyHealthLocked(cs, id, st, h, now)
	d.Trigger()
}

func (d *Director) applyHealthLocked(cs *compiledService, id rsID, st *rsState, h Health, now time.Time) {
	wasDown := st.health.Known && !st.health.Healthy
	if st.health.Known != h.Known || st.health.Healthy != h.Healthy {
		st.since = now
	}
	st.health = h
	d.guard.setDown(id, h.Known && !h.Healthy)
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

// ServiceDown says a service is down: every real server has a verdict and
// none is healthy. A director that has not finished its first checks must
// not hand over VRRP mastership for that. Nor is it down while the
// eviction guard keeps failed servers of the service in the table: VRRP
// follows the table the director keeps.
func (d *Director) ServiceDown(service string) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.serviceDownLocked(service)
}

func (d *Director) serviceDownLocked(service string) bool {
	cs := d.byName[service]
	if cs == nil || len(cs.reals) == 0 {
		return false
	}
	for id := range d.guard.held {
		if id.service == service {
			return false
		}
	}
	for _, r := range cs.reals {
		st := d.state[rsID{service, r.name}]
		if st == nil || !st.health.Known || st.health.Healthy {
			return false
		}
	}
	return true
}

// publish tells the watcher about each of services whose down state
// differs from what it last heard. The state is read and told under
// pubMu, so the watcher always ends with the latest, whatever order
// concurrent callers run in; mu is not held while it listens.
func (d *Director) publish(services []string) {
	if d.watcher == nil || len(services) == 0 {
		return
	}
	d.pubMu.Lock()
	defer d.pubMu.Unlock()
	for _, s := range services {
		d.mu.Lock()
		down := d.serviceDownLocked(s)
		changed := down != d.down[s]
		if down {
			d.down[s] = true
		} else {
			delete(d.down, s)
		}
		d.mu.Unlock()
		if changed {
			d.watcher.SetServiceDown(s, down)
		}
	}
}

// Undecided counts the real servers still waiting for their first
// verdict: unknown, of services that start them unknown (alpha).
func (d *Director) Undecided() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	n := 0
	for _, cs := range d.services {
		if !cs.alpha {
			continue
		}
		for _, r := range cs.reals {
			if st := d.state[rsID{cs.name, r.name}]; st == nil || !st.health.Known {
				n++
			}
		}
	}
	return n
}
