package vrrp

import (
	"io"
	"log/slog"
	"net/netip"
	"strings"
	"testing"
	"time"
)

// groupRigs makes one rig per settings, all run by one executor (one
// node), each instance in sync group "g".
func groupRigs(t *testing.T, ss ...settings) []*rig {
	t.Helper()
	clock := newFakeClock()
	ex := newExecutor(clock, slog.New(slog.NewTextHandler(io.Discard, nil)))
	ex.inline = true
	var out []*rig
	for _, s := range ss {
		s.ha.syncGroup = "g"
		r := &rig{clock: clock, conn: &fakeConn{clock: clock, src: s.source}, addrs: &fakeAddrs{held: map[netip.Prefix]bool{}}, ann: &fakeAnnouncer{clock: clock}}
		r.in = &instance{
			name: s.name, iface: s.iface, ex: ex, addrs: r.addrs, ann: r.ann,
			log: slog.New(slog.NewTextHandler(io.Discard, nil)), m: newMachine(s, false),
			changed: func(c StateChange) {
				r.mu.Lock()
				r.changes = append(r.changes, c)
				r.mu.Unlock()
			},
		}
		r.in.life.configured = s
		r.in.opened(s.source, r.conn)
		ex.register(r.in)
		out = append(out, r)
	}
	ex.mu.Lock()
	ex.wake = &clockWaker{ex: ex}
	ex.mu.Unlock()
	return out
}

func groupStates(rs []*rig) string {
	var out []string
	for _, r := range rs {
		out = append(out, r.in.name+"="+r.state().String())
	}
	return strings.Join(out, " ")
}

func twoMembers() (settings, settings) {
	x := baseSettings()
	x.name, x.garpRepeat = "x", 0
	y := baseSettings()
	y.name, y.vrid, y.garpRepeat = "y", 52, 0
	y.priority = 90
	return x, y
}

// TestSyncGroupBecomesMasterTogether: the group becomes master only when
// every member's Master_Down_Timer has run out: one member still hearing
// its peer master keeps the whole group backup.
func TestSyncGroupBecomesMasterTogether(t *testing.T) {
	x, y := twoMembers()
	rs := groupRigs(t, x, y)
	rx, ry := rs[0], rs[1]
	rx.in.start()
	ry.in.start()
	// x's peer master stays alive; y's is silent.
	for i := 0; i < 6; i++ {
		rx.hear(t, addrHigh, 150, time.Second)
		rx.clock.Advance(time.Second)
	}
	if got := groupStates(rs); got != "x=backup y=backup" {
		t.Fatalf("x's peer is master: %s", got)
	}
	if !ry.in.m.wantMaster || rx.in.m.wantMaster {
		t.Fatalf("want: x %v y %v", rx.in.m.wantMaster, ry.in.m.wantMaster)
	}
	// x's peer dies: once x's timer runs out, both become master at once.
	rx.clock.Advance(masterDown(100, time.Second) - time.Second - time.Millisecond) // heard 1 s ago
	if got := groupStates(rs); got != "x=backup y=backup" {
		t.Fatalf("before x's timer: %s", got)
	}
	rx.clock.Advance(time.Millisecond)
	if got := groupStates(rs); got != "x=master y=master" {
		t.Fatalf("x's timer ran out: %s", got)
	}
	// A higher priority master for y takes the whole group down.
	ry.hear(t, addrHigh, 200, time.Second)
	if got := groupStates(rs); got != "x=backup y=backup" {
		t.Fatalf("y preempted: %s", got)
	}
	if rx.conn.last().ad.Priority != 0 {
		t.Errorf("x did not resign: last advert %+v", rx.conn.last())
	}
}

// TestSyncGroupFaultAndWeights: a member's fault is the group's; a member's
// tracked weight moves every member's priority.
func TestSyncGroupFaultAndWeights(t *testing.T) {
	x, y := twoMembers()
	x.ha.scripts = []scriptSettings{{name: "chk", weight: -50, rise: 1, fall: 1}}
	rs := groupRigs(t, x, y)
	rx, ry := rs[0], rs[1]
	rx.in.start()
	ry.in.start()
	rx.clock.Advance(4 * time.Second)
	if got := groupStates(rs); got != "x=master y=master" {
		t.Fatalf("alone: %s", got)
	}
	rx.in.ex.post(rx.in, trackResult("script chk", false))
	if px, py := rx.in.status().EffectivePriority, ry.in.status().EffectivePriority; px != 50 || py != 40 {
		t.Fatalf("effective priorities x %d y %d, want 50 and 40", px, py)
	}
	ry.in.setFault("interface eth9 down", true)
	if got := groupStates(rs); got != "x=fault y=fault" {
		t.Fatalf("y's fault: %s", got)
	}
	if f := rx.in.faultList(); len(f) != 1 || f[0] != "sync group g: y in fault" {
		t.Fatalf("x's faults: %v", f)
	}
	ry.in.setFault("interface eth9 down", false)
	if got := groupStates(rs); got != "x=backup y=backup" {
		t.Fatalf("fault cleared: %s", got)
	}
	rx.clock.Advance(4 * time.Second)
	if got := groupStates(rs); got != "x=master y=master" {
		t.Fatalf("back: %s", got)
	}
}
