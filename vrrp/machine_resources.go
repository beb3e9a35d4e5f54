package vrrp

import (
	"fmt"
	"time"
)

// Resources: the services an instance runs while master, in the way of
// heartbeat's haresources and HAGD's group script. The machine decides
// every step; the executor runs each step's command off the timing path,
// one at a time per instance, and reports its outcome as EvResource.
//
// The rules, and why:
//
//   - The VIPs are on the interface only while every resource runs: added
//     once the last has started, removed before any is stopped (also for
//     a restart in place). A client never reaches a VIP whose service is
//     not running; while the VIPs are nowhere it gets no answer, and its
//     retries find the service once it is up, here or on the peer.
//   - Becoming master, the instance advertises at once (it has won the
//     election) and starts the resources in order. If it preempts a live
//     master (or an operator takes over) and a resource is exclusive, it
//     starts them only once that master has released them: an lvsd master
//     leaving mastership stops its resources first and then sends a
//     priority-0 advert, which is the release. A peer that sends none
//     (keepalived) is waited for releaseWait, as long as our own stops may
//     take, then started anyway. Taking over from silence (the master died
//     or was cut off) nothing is waited for: lvsd cannot tell a dead peer
//     from a partitioned one and cannot fence it.
//     With no exclusive resource, a preempting master starts the resources
//     and adds the VIPs before its first advert, while the old master
//     still serves, so the handover has no gap.
//   - Leaving master (a higher priority heard, a fault, giveup, shutdown,
//     a failed resource), the instance stays master on the wire while it
//     stops the resources in reverse order, so the peer does not take over
//     from silence while they still run; then it sends priority 0 (the
//     release) and enters the new state. If a higher priority master is
//     heard meanwhile, it stops advertising at once.
//   - A start that fails or outlives start_timeout (killed with its process
//     group) is stopped too, with those started before it; then the
//     instance resigns and stays in Fault for hold_off, so the peer takes
//     over. A status that fails fall times in a row restarts the resource
//     in place (with those after it, which may depend on it), at most
//     restarts times per mastership; the next failure hands over the same
//     way. Before restarting it, the resources before it that have a
//     status run theirs at once: a front end fails when the database it
//     depends on died, and restarting the front alone would hang on the
//     dead database. The first of them to fail is restarted instead (its
//     failure and its dependant's together are enough, whatever its fall),
//     with everything after it.
//   - A stop that fails or times out leaves the resource in an unknown
//     state. lvsd cannot fence: it marks the resource stop_failed, sends no
//     release (the peer takes over when its Master_Down_Interval runs out,
//     as if this node had died) and keeps the instance in Fault until the
//     operator, having made sure the resource is stopped, runs `lvsd
//     reset`.
//   - At startup every resource is stopped (in reverse order) before it can
//     be started: a killed predecessor may have left them running.

type resource struct {
	cfg      resourceSettings
	state    resState
	falls    int // consecutive failed status runs
	restarts int // restarts in place this mastership
	// monitorAt is when the next status runs while serving.
	monitorAt time.Time
	last      ResourceRun
	lastBy    [4]ResourceRun // by op, for the metrics
	// runs counts runs by op and outcome, for the metric.
	runs     [4][2]uint64
	restartN uint64
	// recheck: run status now, because a resource after it failed.
	recheck bool
}

// resources is the machine's side of an instance's resources.
type resources struct {
	list    []*resource
	orphans []*resource // removed by a reload while not stopped
	// busy is the token of the run in flight (0: none), of busyRes.
	busy    uint64
	busyRes *resource
	busyOp  ResourceOp
	// awaitRelease: master, waiting for the old master's release before
	// starting, until releaseBy.
	awaitRelease bool
	releaseBy    time.Time
	startNote    string // why the first start runs, for the log
	// releasing: leaving master, stopping the resources first; then
	// releaseTo. silent: a higher priority master is heard, so no adverts.
	releasing     bool
	silent        bool
	releaseTo     State
	releaseReason string
	// holdUntil ends the hold-off after a failure (fault holdFault).
	holdUntil time.Time
	holdFault string
	// failure says which resource failed last and why.
	failure string
	// suspect failed its status, and the resources before it marked
	// recheck run theirs before it is restarted (suspectWhy says why).
	suspect    *resource
	suspectWhy string
}

func (m *Machine) hasResources() bool { return len(m.res.list)+len(m.res.orphans) > 0 }

// serving says the resources should run: master, not leaving, and not
// waiting for the old master's release.
func (m *Machine) serving() bool {
	return m.state == StateMaster && !m.res.releasing && !m.res.awaitRelease
}

// exclusive says a resource must never run on both nodes.
func (m *Machine) exclusive() bool {
	for _, r := range m.res.list {
		if r.cfg.exclusive {
			return true
		}
	}
	return false
}

// releaseWait bounds the wait for a release: the old master removes its
// VIPs and stops its resources (our own stops are the estimate), then
// sends priority 0, which may be lost once.
func (m *Machine) releaseWait() time.Duration {
	d := vipTimeout + 2*m.cfg.interval
	for _, r := range m.res.list {
		d += r.cfg.stopTimeout
	}
	return d
}

// stopBound is how long stopping every resource may take.
func (m *Machine) stopBound() time.Duration {
	d := vipTimeout
	for _, r := range append(m.res.list, m.res.orphans...) {
		d += r.cfg.stopTimeout
	}
	return d
}

// resStep issues the next run, if none is in flight: stops first (orphans,
// then from the end of the list), then, while serving, starts in order;
// once all run, the VIPs go up and the monitors run. Not serving and with
// nothing left to stop, a release completes.
func (m *Machine) resStep(now time.Time) {
	if m.res.busy != 0 {
		return
	}
	serve := m.serving()
	if r := m.nextStop(serve); r != nil {
		m.release() // the VIPs go before any resource stops
		m.resRun(r, OpStop, "")
		return
	}
	if serve {
		for _, r := range m.res.list {
			switch r.state {
			case resStopped:
				note := m.res.startNote
				m.res.startNote = ""
				m.resRun(r, OpStart, note)
				return
			case resStopFailed:
				return // its fault takes the instance out of mastership
			}
		}
		if !m.holdsVIPs {
			m.serveVIPs(now)
		}
		for _, r := range m.res.list {
			if r.recheck && r.state == resRunning {
				m.resRun(r, OpStatus, "")
				return
			}
			r.recheck = false
		}
		if r := m.res.suspect; r != nil {
			// Those before it passed: it failed on its own.
			m.res.suspect = nil
			m.restartFrom(now, r, m.res.suspectWhy)
			m.resStep(now)
			return
		}
		for _, r := range m.res.list {
			if len(r.cfg.status) > 0 && !r.monitorAt.After(now) {
				m.resRun(r, OpStatus, "")
				return
			}
		}
		return
	}
	if m.res.releasing {
		m.finishRelease(now)
	}
}

// nextStop is the resource to stop next, or nil.
func (m *Machine) nextStop(serve bool) *resource {
	for _, r := range m.res.orphans {
		if r.state != resStopped && r.state != resStopFailed {
			return r
		}
	}
	for i := len(m.res.list) - 1; i >= 0; i-- {
		switch r := m.res.list[i]; r.state {
		case resUnknown, resFailed, resRestart:
			return r
		case resRunning:
			if !serve {
				return r
			}
		}
	}
	return nil
}

func (m *Machine) resRun(r *resource, op ResourceOp, reason string) {
	m.tokens++
	m.res.busy, m.res.busyRes, m.res.busyOp = m.tokens, r, op
	a := Action{Kind: ActResource, Token: m.tokens, Resource: r.cfg.name, Op: op, Term: m.term, Reason: reason}
	switch op {
	case OpStart:
		r.state = resStarting
		a.Argv, a.Timeout = r.cfg.start, r.cfg.startTimeout
	case OpStop:
		r.state = resStopping
		a.Argv, a.Timeout = r.cfg.stop, r.cfg.stopTimeout
	case OpStatus:
		a.Argv, a.Timeout = r.cfg.status, r.cfg.statusTimeout
	}
	m.emit(a)
}

// serveVIPs puts the VIPs up once every resource runs, and announces them;
// a preempting master sends its first advert once they are up.
func (m *Machine) serveVIPs(now time.Time) {
	m.holdsVIPs = true
	m.emit(Action{Kind: ActAddVIPs, VIPs: m.cfg.vips})
	m.startGARP(now, true)
	if m.protoKind == protoClaim {
		m.emit(Action{Kind: ActDone, Token: m.claim})
	}
}

// resDone handles EvResource.
func (m *Machine) resDone(now time.Time, ev Event) {
	if ev.Token == 0 || ev.Token != m.res.busy {
		return
	}
	r, op := m.res.busyRes, m.res.busyOp
	m.res.busy, m.res.busyRes = 0, nil
	ok := ev.Err == nil
	r.last = ResourceRun{Op: op.String(), OK: ok, Result: ev.Detail, Duration: ev.Duration, At: now}
	r.lastBy[op] = r.last
	r.runs[op][boolIndex(ok)]++
	switch op {
	case OpStart:
		if ok {
			r.state, r.falls, r.monitorAt = resRunning, 0, now.Add(r.cfg.monitorInterval)
			break
		}
		r.state = resFailed
		if m.serving() {
			m.resourceFailed(now, r, "start failed: "+ev.Detail)
		}
	case OpStop:
		if ok {
			r.state = resStopped
			m.dropOrphan(r)
			if m.faults[stopFault(r.cfg.name)] {
				m.setFault(now, stopFault(r.cfg.name), false) // stopped after a reset
			}
			break
		}
		r.state = resStopFailed
		m.res.failure = fmt.Sprintf("resource %s: stop failed: %s", r.cfg.name, ev.Detail)
		m.setFault(now, stopFault(r.cfg.name), true)
	case OpStatus:
		if r.state != resRunning {
			break // marked for a restart meanwhile
		}
		r.monitorAt = now.Add(r.cfg.monitorInterval)
		recheck := r.recheck
		r.recheck = false
		if ok {
			r.falls = 0
			break
		}
		r.falls++
		switch {
		case !m.serving():
		case recheck:
			// A resource after it failed too: this one is the cause.
			why := "status failed: " + ev.Detail
			if m.res.suspect != nil {
				why += fmt.Sprintf(" (checked because %s, after it, failed)", m.res.suspect.cfg.name)
			}
			m.clearSuspect()
			m.restartFrom(now, r, why)
		case r.falls >= r.cfg.fall:
			m.monitorFailed(now, r, ev.Detail)
		}
	}
	m.resStep(now)
}

func boolIndex(b bool) int {
	if b {
		return 1
	}
	return 0
}

func (m *Machine) dropOrphan(r *resource) {
	for i, o := range m.res.orphans {
		if o == r {
			m.res.orphans = append(m.res.orphans[:i:i], m.res.orphans[i+1:]...)
			return
		}
	}
}

// monitorFailed has the resources before r that have a status check
// theirs first, or, with none, restarts r (restartFrom).
func (m *Machine) monitorFailed(now time.Time, r *resource, detail string) {
	why := fmt.Sprintf("status failed %d times in a row: %s", r.falls, detail)
	for _, x := range m.res.list {
		if x == r {
			break
		}
		if len(x.cfg.status) > 0 && x.state == resRunning {
			x.recheck = true
			m.res.suspect, m.res.suspectWhy = r, why
		}
	}
	if m.res.suspect == nil {
		m.restartFrom(now, r, why)
	}
}

// clearSuspect forgets a pending suspect and its rechecks.
func (m *Machine) clearSuspect() {
	m.res.suspect, m.res.suspectWhy = nil, ""
	for _, x := range m.res.list {
		x.recheck = false
	}
}

// restartFrom restarts a failed resource in place, with those after it,
// or hands mastership over when its restarts are used up.
func (m *Machine) restartFrom(now time.Time, r *resource, why string) {
	if r.restarts >= r.cfg.restarts {
		m.resourceFailed(now, r, fmt.Sprintf("%s (restarted %d times this mastership)", why, r.restarts))
		return
	}
	r.restarts++
	r.restartN++
	m.res.failure = fmt.Sprintf("resource %s: %s; restart %d of %d", r.cfg.name, why, r.restarts, r.cfg.restarts)
	after := false
	for _, x := range m.res.list {
		after = after || x == r
		if after && x.state == resRunning {
			x.state = resRestart
		}
	}
	m.res.startNote = "restart: " + m.res.failure
}

// resourceFailed resigns: the resources stop (those that ran and the
// failed one), then the priority-0 release goes out and the instance stays
// in Fault for hold_off, so the peer takes over.
func (m *Machine) resourceFailed(now time.Time, r *resource, why string) {
	m.res.failure = fmt.Sprintf("resource %s: %s", r.cfg.name, why)
	if m.cfg.ha.holdOff <= 0 {
		m.leave(now, StateBackup, m.res.failure)
		return
	}
	m.clearHold()
	m.res.holdFault = "hold-off after resource " + r.cfg.name + " failed"
	m.res.holdUntil = now.Add(m.cfg.ha.holdOff)
	m.setFault(now, m.res.holdFault, true)
}

func (m *Machine) clearHold() {
	if m.res.holdFault != "" {
		delete(m.faults, m.res.holdFault)
	}
	m.res.holdFault, m.res.holdUntil = "", time.Time{}
}

// beginRelease starts leaving master with resources: the VIPs go, starts
// and monitors in flight are killed, the resources stop in reverse order;
// finishRelease completes the move to `to`.
func (m *Machine) beginRelease(now time.Time, to State, reason string, silent bool) {
	if m.res.releasing {
		if to == StateInit || to == StateFault && m.res.releaseTo == StateBackup {
			m.res.releaseTo, m.res.releaseReason = to, reason
		}
		if silent {
			m.res.silent = true
			m.arm(protoNone, time.Time{})
		}
		return
	}
	claiming := m.claiming()
	m.res.releasing, m.res.releaseTo, m.res.releaseReason = true, to, reason
	m.res.silent = silent || claiming // a claiming master never advertised
	m.res.awaitRelease, m.res.startNote = false, ""
	m.clearSuspect()
	m.garp, m.reannounce, m.added = garpSchedule{}, nil, nil
	m.term++ // announcements queued so far are stale
	m.release()
	if m.res.silent || m.protoKind != protoAdver {
		m.arm(protoNone, time.Time{})
	}
	if m.res.busy != 0 && m.res.busyOp != OpStop {
		m.emit(Action{Kind: ActCancel, Token: m.res.busy})
	}
	m.resStep(now)
}

// finishRelease sends the release (unless a stop failed: this node's
// resources are then in an unknown state) and enters the new state.
func (m *Machine) finishRelease(now time.Time) {
	m.res.releasing, m.res.silent = false, false
	to, reason := m.res.releaseTo, m.res.releaseReason
	m.arm(protoNone, time.Time{})
	if !m.stopFailed() {
		m.send(priorityResign)
	}
	if m.res.holdFault != "" {
		m.res.holdUntil = now.Add(m.cfg.ha.holdOff) // out of the election from the resignation on
	}
	switch {
	case to == StateInit:
	case len(m.faults) > 0:
		to = StateFault
	case to == StateFault:
		to = StateBackup
	}
	m.setState(now, to, reason)
	if to == StateBackup {
		m.armMasterDown(now, m.masterDownOf(m.effectivePriority()))
		if m.override == overrideTakeover {
			m.becomeMaster(now, "operator takeover")
		}
	}
}

func (m *Machine) stopFailed() bool {
	for _, r := range append(m.res.list, m.res.orphans...) {
		if r.state == resStopFailed {
			return true
		}
	}
	return false
}

// startResources begins a mastership with resources (becomeMaster).
func (m *Machine) startResources(now time.Time, live bool) {
	for _, r := range m.res.list {
		r.restarts = 0
	}
	switch {
	case live && m.exclusive():
		// The old master stops its copy when it hears us; start on its
		// release.
		m.res.awaitRelease = true
		m.res.releaseBy = now.Add(m.releaseWait())
		m.firstAdvert(now)
	case live:
		// Nothing exclusive: start and add the VIPs while the old master
		// still serves, then advertise (serveVIPs ends the claim).
		m.tokens++
		m.claim = m.tokens
		bound := claimBound
		for _, r := range m.res.list {
			bound += r.cfg.startTimeout
		}
		m.arm(protoClaim, now.Add(bound))
	default:
		m.firstAdvert(now)
	}
	m.resStep(now)
}

// released ends the wait for the old master's release.
func (m *Machine) released(now time.Time, why string) {
	if !m.res.awaitRelease {
		return
	}
	m.res.awaitRelease = false
	m.res.startNote = why
	m.resStep(now)
}

// resNext is the earliest resource deadline: the end of a hold-off or of
// the wait for a release, or a monitor due while nothing runs.
func (m *Machine) resNext() time.Time {
	var next time.Time
	early := func(t time.Time) {
		if !t.IsZero() && (next.IsZero() || t.Before(next)) {
			next = t
		}
	}
	early(m.res.holdUntil)
	if m.res.awaitRelease {
		early(m.res.releaseBy)
	}
	if m.res.busy == 0 && m.serving() && m.holdsVIPs && m.allRunning() {
		for _, r := range m.res.list {
			if len(r.cfg.status) > 0 {
				early(r.monitorAt)
			}
		}
	}
	return next
}

func (m *Machine) allRunning() bool {
	for _, r := range m.res.list {
		if r.state != resRunning {
			return false
		}
	}
	return len(m.res.orphans) == 0
}

// resExpired handles the resource deadlines that now has reached.
func (m *Machine) resExpired(now time.Time) {
	if !m.res.holdUntil.IsZero() && !m.res.holdUntil.After(now) {
		reason := m.res.holdFault
		m.res.holdUntil = time.Time{}
		m.res.holdFault = ""
		m.setFault(now, reason, false)
	}
	if m.res.awaitRelease && !m.res.releaseBy.After(now) {
		m.released(now, fmt.Sprintf("no release from the previous master within %v: starting anyway", m.releaseWait()))
	}
	m.resStep(now)
}

// resReset is the operator's word that a failed stop was dealt with and
// the hold-off may end: the resource is stopped once more, and its fault
// clears when that stop succeeds.
func (m *Machine) resReset(now time.Time) {
	for _, r := range append(m.res.list, m.res.orphans...) {
		if r.state == resStopFailed {
			r.state = resUnknown
		}
	}
	if m.res.holdFault != "" {
		reason := m.res.holdFault
		m.res.holdUntil, m.res.holdFault = time.Time{}, ""
		m.setFault(now, reason, false)
	}
	m.resStep(now)
}

func stopFault(name string) string { return "resource " + name + " stop failed (lvsd reset clears it)" }

// reconfigureResources matches the reloaded resources by name: settings
// change in place; a new one starts while serving; a removed one that may
// run is stopped.
func (m *Machine) reconfigureResources() {
	m.clearSuspect() // the next failed status decides again
	old := map[string]*resource{}
	for _, r := range m.res.list {
		old[r.cfg.name] = r
	}
	var list []*resource
	for _, rs := range m.cfg.ha.resources {
		r := old[rs.name]
		if r == nil {
			r = &resource{state: resStopped}
		}
		delete(old, rs.name)
		r.cfg = rs
		list = append(list, r)
	}
	for _, r := range m.res.list {
		if _, gone := old[r.cfg.name]; gone && r.state != resStopped {
			m.res.orphans = append(m.res.orphans, r)
		}
	}
	m.res.list = list
}
