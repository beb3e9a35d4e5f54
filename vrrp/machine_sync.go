package vrrp

import (
	"slices"
	"strings"
	"time"
)

// A sync group's members change state together (keepalived's
// vrrp_sync_group). The executor (syncgroup.go) watches each member and
// moves its siblings with these events:
//
//   - a member in Fault of its own puts every sibling in Fault too (a
//     fault reason naming the group and the member), until it clears;
//   - a member whose Master_Down_Timer runs out only wants to be master
//     (wantMaster); the group becomes master when every member wants to
//     or already is, as keepalived's vrrp_sync_can_goto_master has it, so
//     one member's live peer master keeps the whole group backup instead
//     of making it flap;
//   - a master that steps down to backup (a higher priority heard, giveup)
//     takes its siblings down with it; one that becomes master otherwise
//     (an operator takeover) takes them up;
//   - every member's tracked weights move every member's priority (Delta),
//     so the group's members on a node rise and fall as one and the peer
//     preempts all of them or none. keepalived instead ignores weights in
//     a sync group (unless sync_group_tracking_weight) for that reason.

const syncFaultPrefix = "sync group "

// syncFault is the fault a member's siblings get while it is in Fault.
func syncFault(group, member string) string {
	return syncFaultPrefix + group + ": " + member + " in fault"
}

func isSyncFault(reason string) bool { return strings.HasPrefix(reason, syncFaultPrefix) }

// ownFaulty says the instance is in Fault for a reason of its own, not
// because a sibling is.
func (m *Machine) ownFaulty() bool {
	for r := range m.faults {
		if !isSyncFault(r) {
			return true
		}
	}
	return false
}

// syncTo handles EvSync: the group moves this member to master or backup.
func (m *Machine) syncTo(now time.Time, ev Event) {
	m.wantMaster = false
	switch ev.SyncTo {
	case StateMaster:
		if m.state == StateBackup && m.override != overrideGiveup {
			m.becomeMaster(now, ev.Detail)
		}
	case StateBackup:
		if m.state == StateMaster && !m.res.releasing {
			m.masterAdverInterval = m.cfg.interval
			m.leave(now, StateBackup, ev.Detail)
		}
	}
}

// syncState handles EvSyncState: the sync-group faults this member must
// have and the weight its siblings' tracking adds. New faults are set
// before stale ones clear, so a swap is no transition.
func (m *Machine) syncState(now time.Time, ev Event) {
	for _, r := range ev.Faults {
		m.setFault(now, r, true)
	}
	for _, r := range m.Faults() {
		if isSyncFault(r) && !slices.Contains(ev.Faults, r) {
			m.setFault(now, r, false)
		}
	}
	m.setDelta(now, m.delta, ev.Delta)
}

// syncFaults lists the sync-group faults the machine has, sorted.
func (m *Machine) syncFaults() []string {
	var out []string
	for _, r := range m.Faults() {
		if isSyncFault(r) {
			out = append(out, r)
		}
	}
	return out
}

// syncView is what the executor compares before and after an event.
type syncView struct {
	master, backup, faulty, want bool
	delta                        int
}

func (m *Machine) syncView() syncView {
	return syncView{
		master: m.state == StateMaster && !m.res.releasing,
		// A master releasing toward backup counts as backup: its
		// siblings follow it down now, not after its resources stopped.
		backup: m.state == StateBackup || m.res.releasing && m.res.releaseTo == StateBackup,
		faulty: m.ownFaulty(),
		want:   m.wantMaster && m.state == StateBackup,
		delta:  m.delta,
	}
}
