package vrrp

import (
	"slices"
	"time"
)

// The executor's side of sync groups (see machine_sync.go for the rules):
// after an event changes what a member's siblings care about (its syncView)
// they are handed their events at once, under the same lock and within the
// same call, so no timer of any member runs between a member's change and
// its group's. Events made here are not fed back: only a member's own
// changes move the group.

// syncAfter moves in's siblings after an event changed in (mu held).
func (ex *executor) syncAfter(in *instance, now time.Time, before syncView, slow []inlineAction) []inlineAction {
	after := in.m.syncView()
	if after == before {
		return slow // the steady state: nothing to do, nothing allocated
	}
	g := in.m.cfg.ha.syncGroup
	if g == "" {
		return ex.syncRecompute(now, slow) // it left its group in a reload
	}
	slow = ex.syncGroupState(now, g, slow)
	switch {
	case !before.master && after.master:
		slow = ex.syncMove(now, g, in, StateMaster, "sync group "+g+": "+in.name+" became master", slow)
	case before.master && !after.master && after.backup:
		slow = ex.syncMove(now, g, in, StateBackup, "sync group "+g+": "+in.name+" left master", slow)
	}
	return ex.syncWants(now, g, slow)
}

// members are the running instances of group g, in config order.
func (ex *executor) members(g string) []*instance {
	var out []*instance
	for _, in := range ex.ins {
		if in.m.cfg.ha.syncGroup == g {
			out = append(out, in)
		}
	}
	return out
}

// syncMove takes every sibling of from to master or backup.
func (ex *executor) syncMove(now time.Time, g string, from *instance, to State, why string, slow []inlineAction) []inlineAction {
	for _, sib := range ex.members(g) {
		if sib != from {
			slow = ex.step(sib, now, Event{Kind: EvSync, SyncTo: to, Detail: why}, slow)
		}
	}
	return slow
}

// syncWants makes the group master once every member wants to be or is,
// and none is in Fault or Init.
func (ex *executor) syncWants(now time.Time, g string, slow []inlineAction) []inlineAction {
	ms := ex.members(g)
	wanting := false
	for _, in := range ms {
		v := in.m.syncView()
		switch {
		case v.want:
			wanting = true
		case v.master:
		default:
			return slow
		}
	}
	if !wanting {
		return slow
	}
	for _, in := range ms {
		if in.m.syncView().want {
			slow = ex.step(in, now, Event{Kind: EvSync, SyncTo: StateMaster, Detail: "sync group " + g + ": every member's master down timer ran out"}, slow)
		}
	}
	return slow
}

// syncGroupState gives every member of g the sync faults and the tracked
// weight its siblings impose, where they differ from what it has.
func (ex *executor) syncGroupState(now time.Time, g string, slow []inlineAction) []inlineAction {
	ms := ex.members(g)
	for _, in := range ms {
		var faults []string
		delta := 0
		for _, sib := range ms {
			if sib == in {
				continue
			}
			if sib.m.ownFaulty() {
				faults = append(faults, syncFault(g, sib.name))
			}
			delta += sib.m.delta
		}
		slices.Sort(faults)
		if !slices.Equal(faults, in.m.syncFaults()) || delta != in.m.syncDelta {
			slow = ex.step(in, now, Event{Kind: EvSyncState, Faults: faults, Delta: delta}, slow)
		}
	}
	return slow
}

// syncRecompute brings every instance's sync state up to date with the
// groups as they are now (after a reload moved instances between groups).
func (ex *executor) syncRecompute(now time.Time, slow []inlineAction) []inlineAction {
	var groups []string
	for _, in := range ex.ins {
		g := in.m.cfg.ha.syncGroup
		switch {
		case g != "":
			if !slices.Contains(groups, g) {
				groups = append(groups, g)
			}
		case len(in.m.syncFaults()) > 0 || in.m.syncDelta != 0:
			slow = ex.step(in, now, Event{Kind: EvSyncState}, slow)
		}
	}
	for _, g := range groups {
		slow = ex.syncGroupState(now, g, slow)
		slow = ex.syncWants(now, g, slow)
	}
	return slow
}

// resync is syncRecompute as an executor call of its own (Manager.apply).
func (ex *executor) resync() {
	ex.mu.Lock()
	now := ex.clock.Now()
	slow := ex.syncRecompute(now, nil)
	ex.rearm(now)
	ex.finish(slow)
}
