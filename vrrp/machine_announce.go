package vrrp

import (
	"net/netip"
	"time"
)

// The master's announcements (gratuitous ARP / unsolicited NA) and the
// in-place reload of a machine. Every schedule here is a deadline of the
// Machine, cancelled by leaving master (stopTimers).

// garpSecondBurst is when the second burst of announcements goes out after
// becoming master, as keepalived's garp_master_delay does by default.
const garpSecondBurst = 5 * time.Second

// announce sends one round, if the VIPs are up (a master with resources
// holds none until they run).
func (m *Machine) announce(vips []netip.Prefix) {
	if m.holdsVIPs {
		m.emit(Action{Kind: ActAnnounce, VIPs: vips, Term: m.term})
	}
}

// startGARP starts a burst of garp_repeat announcements at now; first
// says it is the burst of becoming master, followed by the second burst.
func (m *Machine) startGARP(now time.Time, first bool) {
	m.garp = garpSchedule{left: m.cfg.garpRepeat, first: first, start: now}
	m.garpBurst(now)
}

// garpBurst sends what is left of the current burst, garp_interval apart,
// then schedules the next burst: garpSecondBurst after the first began,
// then every garp_refresh if set.
func (m *Machine) garpBurst(at time.Time) {
	if m.state != StateMaster {
		return
	}
	if m.garp.left == m.cfg.garpRepeat {
		m.garp.start = at
	}
	for m.garp.left > 0 {
		m.announce(m.cfg.vips)
		m.garp.left--
		if m.garp.left > 0 && m.cfg.garpInterval > 0 {
			m.garp.at = at.Add(m.cfg.garpInterval)
			return
		}
	}
	next := m.cfg.garpRefresh
	if m.garp.first {
		next = garpSecondBurst
	}
	if next <= 0 {
		m.garp = garpSchedule{}
		return
	}
	t := m.garp.start.Add(next)
	if !t.After(at) {
		t = at.Add(time.Millisecond) // a refresh shorter than its own burst
	}
	m.garp = garpSchedule{at: t, left: m.cfg.garpRepeat}
}

// reannounceCycle answers a second master that will step down (a healed
// partition), as keepalived's garp_lower_prio_delay and
// garp_lower_prio_repeat do. The advert goes at once so the peer yields
// now (one for each of its adverts: an answer, never an amplification).
// The link's ARP caches may point at the peer, so we announce the VIPs now
// and again reannounceDelay later: the peer's own announcements, sent while
// it thought it was master, can reach a client after our first burst and
// win its cache, which in DR mode (the loser has no VIPs and does not
// forward) loses the traffic until the entry expires. At most one cycle
// starts a second, so a peer that keeps sending cannot make us flood; the
// delayed burst belongs to its cycle and is not rate-limited, though a
// newer cycle replaces it with its own, later one.
func (m *Machine) reannounceCycle(now time.Time) {
	m.send(m.effectivePriority())
	if !m.lastReannounce.IsZero() && now.Sub(m.lastReannounce) < time.Second {
		return
	}
	m.lastReannounce = now
	m.reannounce = nil
	m.reannounceBurst(now, m.cfg.garpRepeat)
	if m.cfg.garpRepeat > 0 {
		m.reannounce = append(m.reannounce, pendingBurst{at: now.Add(m.reannounceDelay()), left: m.cfg.garpRepeat})
	}
}

// reannounceDelay is how long after answering a second master the VIPs
// are announced again. The peer yields on our immediate advert or, if
// that is lost, on the next one an interval later; it may still be adding
// its VIPs (it handles our advert only after its first announcement), so
// a second interval is allowed for that: 2 × advert interval. A peer that
// does not cancel its burst on stepping down (we do) sends garp_repeat
// frames garp_interval apart, so we also wait out a whole burst.
func (m *Machine) reannounceDelay() time.Duration {
	return max(2*m.cfg.interval, time.Duration(m.cfg.garpRepeat)*m.cfg.garpInterval)
}

// reannounceBurst sends left announcements garp_interval apart, like the
// master burst, unless a newer cycle or leaving master cancelled it.
func (m *Machine) reannounceBurst(at time.Time, left int) {
	for ; left > 0; left-- {
		m.announce(m.cfg.vips)
		if left > 1 && m.cfg.garpInterval > 0 {
			m.reannounce = append(m.reannounce, pendingBurst{at: at.Add(m.cfg.garpInterval), left: left - 1})
			return
		}
	}
}

// announceAdded announces VIPs a master gained by a reload, garp_repeat
// times garp_interval apart; later refreshes cover every VIP anyway.
func (m *Machine) announceAdded(at time.Time, vips []netip.Prefix, left int) {
	for ; left > 0; left-- {
		m.announce(vips)
		if left > 1 && m.cfg.garpInterval > 0 {
			m.added = append(m.added, pendingBurst{at: at.Add(m.cfg.garpInterval), left: left - 1, vips: vips})
			return
		}
	}
}

// dropVIPs is the first half of an in-place VIP change: a master removes
// the VIPs that next no longer lists.
func (m *Machine) dropVIPs(next []netip.Prefix) {
	gone := without(m.cfg.vips, next)
	if len(gone) == 0 {
		return
	}
	m.cfg.vips = without(m.cfg.vips, gone)
	if m.holdsVIPs {
		m.emit(Action{Kind: ActRemoveVIPs, VIPs: gone})
	}
}

// reconfigure applies settings that the same socket carries, without a
// transition. The executor re-evaluates faults afterwards.
func (m *Machine) reconfigure(now time.Time, s settings) {
	prev := m.cfg
	s.source = prev.source // the one the executor found, when not configured
	added := without(s.vips, prev.vips)
	m.cfg = s
	m.reconfigureResources()
	m.applyTracking(now)
	defer m.resStep(now)
	if m.state != StateMaster {
		return // adverts, VIPs and announcements follow when it becomes master
	}
	if prev.priority != s.priority {
		m.seeMaster(now, m.cfg.source, m.effectivePriority())
	}
	if garpChanged(prev, s) {
		// Restart the refresh cycle on the new settings, from now.
		m.garp = garpSchedule{}
		m.added = nil
		if s.garpRefresh > 0 {
			m.garp = garpSchedule{at: now.Add(s.garpRefresh), left: s.garpRepeat, start: now}
		}
	}
	if len(added) > 0 && m.holdsVIPs {
		m.emit(Action{Kind: ActAddVIPs, VIPs: added})
		m.announceAdded(now, added, m.cfg.garpRepeat)
	}
}

// setSource records the address adverts go from, once the executor has
// found it (source_address unset).
func (m *Machine) setSource(a netip.Addr) { m.cfg.source = a }

// without returns the prefixes of a that are not in b.
func without(a, b []netip.Prefix) []netip.Prefix {
	var out []netip.Prefix
	for _, p := range a {
		if !containsPrefix(b, p) {
			out = append(out, p)
		}
	}
	return out
}

func containsPrefix(ps []netip.Prefix, p netip.Prefix) bool {
	for _, q := range ps {
		if q == p {
			return true
		}
	}
	return false
}
