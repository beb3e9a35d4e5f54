package vrrp

import (
	"fmt"
	"net/netip"
	"sort"
	"time"
)

// Machine is the RFC 5798/9568 state machine of one virtual router: state
// plus event gives a new state and actions. It does no I/O, reads no clock
// (every event comes with the time), starts no goroutine and takes no lock;
// its executor serializes events and performs the actions. Its timers are
// deadlines: Next says when it wants an EvTimer.
type Machine struct {
	cfg      settings
	state    State
	since    time.Time
	override override
	faults   map[string]bool
	// preemptHeld is the Manager's HoldPreempt.
	preemptHeld bool
	// masterAdverInterval is the interval learnt from the master (RFC 5798
	// Master_Adver_Interval); a master uses its own.
	masterAdverInterval time.Duration
	masterAddr          netip.Addr
	masterPriority      int
	// heardAt is when the master we follow was last heard (zero after a
	// resignation): a master heard within Master_Down_Interval is live.
	heardAt      time.Time
	preemptSince time.Time
	holdsVIPs    bool

	// term counts mastership terms: announcements queued in an ended term
	// are stale.
	term   uint64
	tokens uint64

	// proto is the one protocol timer: Master_Down_Timer in backup,
	// Adver_Timer in master, or the claim bound while a new master waits
	// for its VIPs before its first advert.
	proto     time.Time
	protoKind protoKind
	claim     uint64 // the ActDone token that ends the claim

	garp           garpSchedule
	reannounce     []pendingBurst
	lastReannounce time.Time
	added          []pendingBurst

	// Weighted tracking (machine_track.go): the trackers, the weight they
	// add now, the sync group's, and a start waiting for first results.
	track     map[string]*tracker
	delta     int
	syncDelta int
	startWait string
	// wantMaster: in a sync group, this backup's Master_Down_Timer ran
	// out; the group becomes master when every member wants to.
	wantMaster bool
	// res: the resources (machine_resources.go).
	res resources
	// stopped: shut down; nothing starts it again (a late tracked result
	// must not).
	stopped bool

	out []Action
}

type protoKind uint8

const (
	protoNone protoKind = iota
	protoMasterDown
	protoAdver
	protoClaim
)

// claimBound is how long a master that preempts a live one waits for its
// VIPs before its first advert: as long as AddVIPs may take. The preempted
// master keeps the VIPs and serves until it hears that advert, so waiting
// costs nothing; not waiting would leave the VIPs nowhere meanwhile.
const claimBound = vipTimeout

// vipTimeout bounds one AddVIPs or RemoveVIPs.
const vipTimeout = 5 * time.Second

// garpSchedule is the master's announcement bursts: garp_repeat frames
// garp_interval apart, a second burst garpSecondBurst after the first,
// then one every garp_refresh if set.
type garpSchedule struct {
	at    time.Time // zero: none pending
	left  int
	first bool
	start time.Time
}

// pendingBurst is the rest of an announcement burst: left frames from at,
// garp_interval apart. vips nil means every VIP.
type pendingBurst struct {
	at   time.Time
	left int
	vips []netip.Prefix
}

// NewMachine returns a machine in Initialize for complete settings.
func newMachine(s settings, preemptHeld bool) *Machine {
	m := &Machine{cfg: s, faults: map[string]bool{}, preemptHeld: preemptHeld, masterAdverInterval: s.interval,
		track: map[string]*tracker{}}
	for _, rs := range s.ha.resources {
		// A killed predecessor may have left it running.
		m.res.list = append(m.res.list, &resource{cfg: rs, state: resUnknown})
	}
	return m
}

// State is the current state.
func (m *Machine) State() State { return m.state }

// Term is the current mastership term (see ActAnnounce).
func (m *Machine) Term() uint64 { return m.term }

// masterDownDue says a backup's Master_Down_Timer has run out by now.
func (m *Machine) masterDownDue(now time.Time) bool {
	return m.state == StateBackup && m.protoKind == protoMasterDown && !m.proto.After(now)
}

// Next is the earliest deadline, or zero if none.
func (m *Machine) Next() time.Time {
	next := m.proto
	early := func(t time.Time) {
		if !t.IsZero() && (next.IsZero() || t.Before(next)) {
			next = t
		}
	}
	early(m.garp.at)
	for i := range m.reannounce {
		early(m.reannounce[i].at)
	}
	for i := range m.added {
		early(m.added[i].at)
	}
	early(m.resNext())
	return next
}

// Handle applies one event at now and appends the resulting actions to
// out, which it returns.
func (m *Machine) Handle(now time.Time, ev Event, out []Action) []Action {
	m.out = out
	switch ev.Kind {
	case EvStartup:
		// A node killed while master left its VIPs on the interface; a
		// backup holding them would answer ARP for them beside the real
		// master.
		m.holdsVIPs = true
		m.release()
		m.start(now, "startup")
		m.resStep(now) // stops what a killed predecessor left running
	case EvShutdown:
		m.stopped, m.startWait = true, ""
		m.leave(now, StateInit, ev.Reason)
	case EvAdvert:
		m.receive(now, ev.Src, &ev.Advert)
	case EvTimer:
		m.expire(now)
	case EvFault:
		m.setFault(now, ev.Reason, ev.On)
	case EvTakeover:
		m.takeover(now)
	case EvGiveup:
		m.giveup(now)
	case EvReset:
		m.reset()
		m.resReset(now)
	case EvPreemptHold:
		m.preemptHeld = ev.On
	case EvReconfigure:
		m.reconfigure(now, *ev.Settings)
	case EvDropVIPs:
		m.dropVIPs(ev.VIPs)
	case EvDone:
		if m.protoKind == protoClaim && ev.Token == m.claim {
			m.firstAdvert(now)
		}
	case EvTrack:
		m.trackEvent(now, ev)
	case EvResource:
		m.resDone(now, ev)
	case EvSync:
		m.syncTo(now, ev)
	case EvSyncState:
		m.syncState(now, ev)
	}
	out, m.out = m.out, nil
	return out
}

func (m *Machine) emit(a Action) { m.out = append(m.out, a) }

func (m *Machine) send(priority int) { m.emit(Action{Kind: ActSend, Priority: uint8(priority)}) }

// effectivePriority is what the adverts carry and the timers use: the
// configured priority moved by tracking, or 254 while taken over.
func (m *Machine) effectivePriority() int {
	if m.override == overrideTakeover {
		return takeoverPriority
	}
	return m.trackedPriority()
}

// skew is Skew_Time of RFC 9568 section 6.1, in nanoseconds, not rounded.
func skew(priority int, interval time.Duration) time.Duration {
	return time.Duration(int64(256-priority) * int64(interval) / 256)
}

// skewOf and masterDownOf are skew and masterDown with the instance's skew
// base (settings.skewBase): the master's interval unless the settings fix
// it, as RFC 3768's Skew_Time of (256 - priority) / 256 seconds does.
func (m *Machine) skewOf(priority int) time.Duration {
	if m.cfg.skewBase != 0 {
		return skew(priority, m.cfg.skewBase)
	}
	return skew(priority, m.masterAdverInterval)
}

func (m *Machine) masterDownOf(priority int) time.Duration {
	return 3*m.masterAdverInterval + m.skewOf(priority)
}

func (m *Machine) arm(kind protoKind, at time.Time) { m.proto, m.protoKind = at, kind }

func (m *Machine) armMasterDown(now time.Time, d time.Duration) { m.arm(protoMasterDown, now.Add(d)) }

func (m *Machine) start(now time.Time, reason string) {
	if m.stopped {
		return
	}
	if m.trackWaiting() {
		m.startWait = reason // stay in Init until the scripts have run
		return
	}
	if len(m.faults) > 0 {
		m.setState(now, StateFault, reason+"; "+m.faultText())
		return
	}
	if m.effectivePriority() == priorityOwner {
		m.becomeMaster(now, reason+", address owner")
		return
	}
	m.masterAdverInterval = m.cfg.interval
	m.setState(now, StateBackup, reason)
	m.armMasterDown(now, m.masterDownOf(m.effectivePriority()))
}

// leave goes from any state to Init or Fault (or, for giveup and a higher
// priority master, Backup), resigning first if master. A backup is left
// with its Master_Down_Timer armed. A master with resources stops them
// before it resigns (beginRelease); silent says a higher priority master
// is heard, so it advertises no more meanwhile.
func (m *Machine) leave(now time.Time, to State, reason string) {
	m.leaveSilent(now, to, reason, false)
}

func (m *Machine) leaveSilent(now time.Time, to State, reason string, silent bool) {
	if m.state == StateMaster && (m.hasResources() || m.res.releasing) {
		m.beginRelease(now, to, reason, silent)
		return
	}
	m.stopTimers()
	if m.state == StateMaster {
		m.send(priorityResign)
		m.release()
		m.term++
	}
	m.setState(now, to, reason)
	if to == StateBackup {
		m.armMasterDown(now, m.masterDownOf(m.effectivePriority()))
	}
}

func (m *Machine) stopTimers() {
	m.arm(protoNone, time.Time{})
	m.garp = garpSchedule{}
	m.reannounce = nil
	m.added = nil
}

func (m *Machine) release() {
	if !m.holdsVIPs {
		return
	}
	m.holdsVIPs = false
	m.emit(Action{Kind: ActRemoveVIPs, VIPs: m.cfg.vips})
}

// expire handles every deadline that now has reached, earliest first.
func (m *Machine) expire(now time.Time) {
	for range 1000 { // each step moves its deadline on; the bound is a guard
		at := m.Next()
		if at.IsZero() || at.After(now) {
			return
		}
		switch {
		case m.proto.Equal(at):
			kind := m.protoKind
			m.arm(protoNone, time.Time{})
			m.protoExpired(now, at, kind)
		case m.garp.at.Equal(at):
			m.garp.at = time.Time{}
			m.garpBurst(at)
		case m.resNext().Equal(at):
			m.resExpired(now)
		default:
			m.pendingExpired(at)
		}
	}
}

func (m *Machine) pendingExpired(at time.Time) {
	for i, b := range m.reannounce {
		if b.at.Equal(at) {
			m.reannounce = append(m.reannounce[:i:i], m.reannounce[i+1:]...)
			m.reannounceBurst(at, b.left)
			return
		}
	}
	for i, b := range m.added {
		if b.at.Equal(at) {
			m.added = append(m.added[:i:i], m.added[i+1:]...)
			m.announceAdded(at, b.vips, b.left)
			return
		}
	}
}

func (m *Machine) protoExpired(now, at time.Time, kind protoKind) {
	switch kind {
	case protoMasterDown:
		if m.state != StateBackup {
			return
		}
		if m.override == overrideGiveup {
			// Given up: stay backup; look again later so a later Takeover
			// or reset finds the timer running.
			m.armMasterDown(now, m.masterDownOf(m.effectivePriority()))
			return
		}
		if m.cfg.ha.syncGroup != "" {
			// The group becomes master when every member wants to (the
			// executor decides); until then, look again.
			m.wantMaster = true
			m.armMasterDown(now, m.masterDownOf(m.effectivePriority()))
			return
		}
		m.becomeMaster(now, "master down timer expired")
	case protoAdver:
		m.send(m.effectivePriority())
		// Keep the cadence of the deadlines, not of late wake-ups, but
		// never send a catch-up burst.
		next := at.Add(m.cfg.interval)
		if !next.After(now) {
			next = now.Add(m.cfg.interval)
		}
		m.arm(protoAdver, next)
	case protoClaim:
		m.firstAdvert(now)
	}
}

// liveMaster says whether another router was heard as master within
// Master_Down_Interval, so it holds the VIPs now.
func (m *Machine) liveMaster(now time.Time) bool {
	return m.masterPriority > 0 && m.masterAddr.IsValid() && m.masterAddr != m.cfg.source &&
		!m.heardAt.IsZero() && now.Sub(m.heardAt) < m.masterDownOf(m.effectivePriority())
}

// becomeMaster claims the VIPs and starts advertising. When a live master
// holds the VIPs (we preempt it, or the operator takes over) the first
// advert waits until the VIPs are added and announced, up to claimBound:
// the preempted master drops its VIPs as soon as it hears us, and adding
// them can take milliseconds in which clients would find them nowhere.
// When no master is live (Master_Down_Interval ran out, or the master
// resigned) nobody holds them, so the advert goes at once and never waits
// for a slow address manager.
func (m *Machine) becomeMaster(now time.Time, reason string) {
	live := m.liveMaster(now)
	m.preemptSince = time.Time{}
	m.seeMaster(now, m.cfg.source, m.effectivePriority())
	m.term++
	m.setState(now, StateMaster, reason)
	if m.hasResources() {
		m.garp = garpSchedule{}
		m.startResources(now, live)
		return
	}
	m.holdsVIPs = true
	m.emit(Action{Kind: ActAddVIPs, VIPs: m.cfg.vips})
	m.garp = garpSchedule{}
	m.startGARP(now, true)
	if live {
		m.tokens++
		m.claim = m.tokens
		m.emit(Action{Kind: ActDone, Token: m.claim})
		m.arm(protoClaim, now.Add(claimBound))
		return
	}
	m.firstAdvert(now)
}

func (m *Machine) firstAdvert(now time.Time) {
	m.send(m.effectivePriority())
	m.arm(protoAdver, now.Add(m.cfg.interval))
}

func (m *Machine) claiming() bool { return m.state == StateMaster && m.protoKind == protoClaim }

func (m *Machine) setState(now time.Time, to State, reason string) {
	from := m.state
	if from == to {
		return
	}
	m.state = to
	m.since = now
	if to != StateBackup {
		m.preemptSince = time.Time{}
		m.wantMaster = false
	}
	prio := m.effectivePriority()
	if to == StateFault || m.override == overrideGiveup && to == StateBackup {
		prio = 0
	}
	m.emit(Action{Kind: ActNotify, Change: StateChange{Instance: m.cfg.name, From: from, To: to, Priority: prio, Reason: reason}})
}

// seeMaster records who is master now, for Status and the metric.
func (m *Machine) seeMaster(now time.Time, addr netip.Addr, priority int) {
	m.masterAddr, m.masterPriority = addr, priority
	if priority > 0 && addr != m.cfg.source {
		m.heardAt = now
	} else {
		m.heardAt = time.Time{}
	}
}

// receive is the advert event of RFC 5798 sections 6.4.2 and 6.4.3.
func (m *Machine) receive(now time.Time, src netip.Addr, ad *Advert) {
	local := m.effectivePriority()
	prio := int(ad.Priority)
	switch m.state {
	case StateBackup:
		if prio == priorityResign {
			m.seeMaster(now, src, 0)
			m.armMasterDown(now, m.skewOf(local))
			return
		}
		m.seeMaster(now, src, prio)
		m.masterAdverInterval = ad.Interval
		mdi := m.masterDownOf(local)
		if !m.cfg.preempt || prio >= local || m.override == overrideGiveup {
			m.preemptSince = time.Time{}
			m.wantMaster = false
			m.armMasterDown(now, mdi)
			return
		}
		if m.preemptHeld && m.override != overrideTakeover {
			// A live master is serving; wait for the hold to lift. The
			// preempt_delay runs meanwhile, from when we first could have
			// preempted.
			if m.preemptSince.IsZero() {
				m.preemptSince = now
			}
			m.wantMaster = false
			m.armMasterDown(now, mdi)
			return
		}
		// A lower-priority master and preemption on: let the timer run out,
		// but no later than preempt_delay after we first saw it.
		if m.cfg.preemptDelay > 0 {
			if m.preemptSince.IsZero() {
				m.preemptSince = now
			}
			if left := m.preemptSince.Add(m.cfg.preemptDelay).Sub(now); left > 0 {
				m.armMasterDown(now, min(mdi, left))
			}
		}
	case StateMaster:
		higher := prio > local || prio == local && src.Compare(m.cfg.source) > 0
		if m.res.releasing {
			// Stopping the resources before resigning: a higher priority
			// master has taken over, so we fall silent.
			if higher {
				m.seeMaster(now, src, prio)
				m.masterAdverInterval = ad.Interval
				m.beginRelease(now, StateBackup, fmt.Sprintf("higher priority master %v (%d)", src, prio), true)
			}
			return
		}
		if prio == priorityResign {
			m.released(now, fmt.Sprintf("released by the previous master %v", src))
		}
		if m.claiming() && !higher {
			if prio == priorityResign {
				// The master we preempt has gone: nobody holds the VIPs.
				m.firstAdvert(now)
			}
			// Else it still serves until our first advert; answering now
			// would make it drop the VIPs before ours are up.
			return
		}
		if prio == priorityResign {
			// Another router was master too, and has just stepped down
			// (see below) or stopped: the RFC's immediate advert, and our
			// VIPs announced again, since the link may have learnt its MAC.
			m.reannounceCycle(now)
			m.arm(protoAdver, now.Add(m.cfg.interval))
			return
		}
		if !higher {
			m.reannounceCycle(now)
			return
		}
		// Stepping down, we resign with priority 0 (RFC 5798 sends it only
		// on shutdown). In a healed split brain the winner may never have
		// heard an advert of ours, as ours crossed or followed its own; the
		// resignation tells it that the link may still point at us.
		m.seeMaster(now, src, prio)
		m.masterAdverInterval = ad.Interval
		m.leaveSilent(now, StateBackup, fmt.Sprintf("higher priority master %v (%d)", src, prio), true)
	}
}

// setFault records one fault reason (tracked interface or service) as on or
// off. The first fault moves the instance to Fault; clearing the last one
// restarts it from Initialize.
func (m *Machine) setFault(now time.Time, reason string, on bool) {
	if on == m.faults[reason] {
		return
	}
	if on {
		m.faults[reason] = true
		if m.state != StateFault && m.state != StateInit {
			m.leave(now, StateFault, reason)
		}
		return
	}
	delete(m.faults, reason)
	if len(m.faults) == 0 && m.state == StateFault {
		m.stopTimers()
		m.start(now, reason+" cleared")
	}
}

// Faults lists the fault reasons, sorted.
func (m *Machine) Faults() []string {
	var rs []string
	for r := range m.faults {
		rs = append(rs, r)
	}
	sort.Strings(rs)
	return rs
}

func (m *Machine) faultText() string { return fmt.Sprint(m.Faults()) }

// takeover makes this node master now and keeps it there (priority 254)
// until giveup or reset: the peer master hears a higher priority at once
// and steps down, so a planned handover waits for no timer.
func (m *Machine) takeover(now time.Time) {
	m.override = overrideTakeover
	switch {
	case m.state == StateBackup:
		m.becomeMaster(now, "operator takeover")
	case m.state == StateMaster && !m.claiming():
		m.firstAdvert(now)
	}
}

// giveup resigns mastership with a priority-0 advert, so the peer takes
// over after its Skew_Time, and stays backup until takeover or reset.
func (m *Machine) giveup(now time.Time) {
	m.override = overrideGiveup
	if m.state == StateMaster {
		m.masterAdverInterval = m.cfg.interval
		m.leave(now, StateBackup, "operator giveup")
	}
}

// reset drops an operator override; the protocol decides from here on.
func (m *Machine) reset() {
	was := m.override
	m.override = overrideNone
	if was == overrideTakeover && m.state == StateMaster && !m.claiming() {
		m.send(m.effectivePriority()) // tell the peer our real priority now
	}
}

// status fills what the machine knows of an InstanceStatus.
func (m *Machine) status() InstanceStatus {
	st := InstanceStatus{
		Name: m.cfg.name, VRID: int(m.cfg.vrid), Interface: m.cfg.iface,
		State: m.state.String(), Since: m.since,
		Priority: m.cfg.priority, EffectivePriority: m.effectivePriority(),
		Override: m.override.String(), PreemptHeld: m.preemptHeld,
		MasterPriority: m.masterPriority,
		MasterInterval: m.masterAdverInterval, VIPs: m.cfg.vips,
		Faults:    m.Faults(),
		SyncGroup: m.cfg.ha.syncGroup, Tracks: m.trackStatus(), Resources: m.resourceStatus(),
		ResourceFailure: m.res.failure, HoldOffUntil: m.res.holdUntil, Releasing: m.res.releasing,
	}
	if m.masterAddr.IsValid() {
		st.Master = m.masterAddr.String()
	}
	return st
}
