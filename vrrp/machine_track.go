package vrrp

import (
	"time"
)

// Weighted tracking, as keepalived's track_script and track_interface with
// a weight: while a tracked object fails, a negative weight lowers the
// priority; while it passes, a positive weight raises it; the effective
// priority stays within 1..254 (a director is never address owner). A
// script with weight 0 puts the instance in Fault while it fails, as
// track_interfaces and track_services do.
//
// The effective priority is what the adverts carry and what the RFC
// timers use: Skew_Time and Master_Down_Interval, and the comparisons
// with a peer's priority. In a sync group every member's tracking moves
// every member's priority (Delta of EvSyncState), so that the group's
// members on one node rise and fall together and a peer wins them all.
//
// A script's first result decides at once (keepalived's "one success is
// enough"); after that Rise passes in a row make it pass and Fall
// failures make it fail. Until its first result a weighted script adds
// nothing, and an instance with a weight-0 script waits in Init for it,
// as keepalived does.

// tracker is what the machine knows of one tracked object.
type tracker struct {
	known, up  bool
	ok, failed int // consecutive results, scripts only
	last       time.Time
	detail     string
	took       time.Duration
}

// track handles EvTrack.
func (m *Machine) trackEvent(now time.Time, ev Event) {
	t := m.track[ev.Track]
	if t == nil {
		if !m.tracks(ev.Track) {
			return // a tracker a reload removed, reporting late
		}
		t = &tracker{}
		m.track[ev.Track] = t
	}
	t.last, t.detail, t.took = now, ev.Detail, ev.Duration
	if sc, ok := m.script(ev.Track); ok {
		switch {
		case !t.known:
			t.known, t.up = true, ev.Up
		case ev.Up:
			t.ok, t.failed = t.ok+1, 0
			if !t.up && t.ok >= sc.rise {
				t.up = true
			}
		default:
			t.ok, t.failed = 0, t.failed+1
			if t.up && t.failed >= sc.fall {
				t.up = false
			}
		}
	} else {
		t.known, t.up = true, ev.Up
	}
	m.applyTracking(now)
}

// tracks says whether key names a tracker of the current settings.
func (m *Machine) tracks(key string) bool {
	if _, ok := m.script(key); ok {
		return true
	}
	for _, w := range m.cfg.ha.weights {
		if w.key() == key {
			return true
		}
	}
	return false
}

func (m *Machine) script(key string) (scriptSettings, bool) {
	for _, s := range m.cfg.ha.scripts {
		if s.key() == key {
			return s, true
		}
	}
	return scriptSettings{}, false
}

// applied is the weight a tracker adds to the priority now.
func applied(t *tracker, weight int) int {
	switch {
	case t == nil || !t.known:
		return 0
	case t.up && weight > 0, !t.up && weight < 0:
		return weight
	}
	return 0
}

// ownDelta is what this instance's own trackers add to its priority.
func (m *Machine) ownDelta() int {
	d := 0
	for _, s := range m.cfg.ha.scripts {
		d += applied(m.track[s.key()], s.weight)
	}
	for _, w := range m.cfg.ha.weights {
		d += applied(m.track[w.key()], w.weight)
	}
	return d
}

// applyTracking brings the weight-0 faults, the effective priority and a
// start waiting for first results up to date with the trackers.
func (m *Machine) applyTracking(now time.Time) {
	// Trackers a reload removed.
	for k := range m.track {
		if !m.tracks(k) {
			delete(m.track, k)
		}
	}
	// New faults first, so that swapping one for another is no transition.
	for _, s := range m.cfg.ha.scripts {
		if t := m.track[s.key()]; s.weight == 0 && t != nil && t.known && !t.up {
			m.setFault(now, scriptFault(s.name), true)
		}
	}
	for _, r := range m.Faults() {
		if isScriptFault(r) && !m.scriptFailing(r) {
			m.setFault(now, r, false)
		}
	}
	m.setDelta(now, m.ownDelta(), m.syncDelta)
	if m.startWait != "" && !m.trackWaiting() {
		reason := m.startWait
		m.startWait = ""
		m.start(now, reason+"; tracked scripts have run")
	}
}

// scriptFailing says the weight-0 script of a fault reason still fails.
func (m *Machine) scriptFailing(reason string) bool {
	for _, s := range m.cfg.ha.scripts {
		if scriptFault(s.name) == reason {
			t := m.track[s.key()]
			return s.weight == 0 && t != nil && t.known && !t.up
		}
	}
	return false
}

// trackWaiting says a weight-0 script has no result yet.
func (m *Machine) trackWaiting() bool {
	for _, s := range m.cfg.ha.scripts {
		if t := m.track[s.key()]; s.weight == 0 && (t == nil || !t.known) {
			return true
		}
	}
	return false
}

// setDelta records the tracked weights and moves the priority with them.
// A master's next advert carries it; the metric and status follow now.
func (m *Machine) setDelta(now time.Time, own, sync int) {
	if own == m.delta && sync == m.syncDelta {
		return
	}
	m.delta, m.syncDelta = own, sync
	if m.state == StateMaster && !m.claiming() {
		m.seeMaster(now, m.cfg.source, m.effectivePriority())
	}
}

// trackedPriority is the configured priority moved by the tracked
// weights, within 1..254.
func (m *Machine) trackedPriority() int {
	return min(max(m.cfg.priority+m.delta+m.syncDelta, 1), takeoverPriority)
}

const scriptFaultPrefix = "track_script "

func scriptFault(name string) string { return scriptFaultPrefix + name + " failing" }

func isScriptFault(reason string) bool {
	return len(reason) > len(scriptFaultPrefix) && reason[:len(scriptFaultPrefix)] == scriptFaultPrefix
}

// TrackStatus is one tracked object as the status API shows it.
type TrackStatus struct {
	Name   string `json:"name"` // "script chk_uplink", "interface eth1", "service web"
	Weight int    `json:"weight"`
	// State is up, down or unknown (no result yet).
	State string `json:"state"`
	// Applied is what it adds to the priority now.
	Applied      int           `json:"applied"`
	LastResult   string        `json:"last_result,omitempty"` // scripts: "exit 0", "timed out after 1s: ..."
	LastDuration time.Duration `json:"last_duration_ns,omitempty"`
	LastAt       time.Time     `json:"last_at,omitzero"`
}

func (m *Machine) trackStatus() []TrackStatus {
	var out []TrackStatus
	add := func(key string, weight int) {
		t := m.track[key]
		st := TrackStatus{Name: key, Weight: weight, State: "unknown", Applied: applied(t, weight)}
		if t != nil {
			if t.known {
				st.State = "down"
				if t.up {
					st.State = "up"
				}
			}
			st.LastResult, st.LastDuration, st.LastAt = t.detail, t.took, t.last
		}
		out = append(out, st)
	}
	for _, s := range m.cfg.ha.scripts {
		add(s.key(), s.weight)
	}
	for _, w := range m.cfg.ha.weights {
		add(w.key(), w.weight)
	}
	return out
}
