package vrrp

import (
	"strconv"
	"strings"
	"testing"
	"time"
)

func trackResult(name string, up bool) Event {
	return Event{Kind: EvTrack, Track: name, Up: up, Detail: "test"}
}

// TestMachineTrackWeights: a failing script with a negative weight and a
// passing one with a positive weight move the advertised priority by
// exactly their weights, rise and fall apply after the first result, and
// the priority stays within 1..254.
func TestMachineTrackWeights(t *testing.T) {
	s := baseSettings()
	s.priority, s.garpRepeat = 150, 0
	s.ha.scripts = []scriptSettings{
		{name: "down", weight: -60, rise: 2, fall: 2},
		{name: "up", weight: 20, rise: 1, fall: 1},
	}
	s.ha.weights = []trackWeight{{kind: "interface", name: "eth1", weight: -200}}
	m := newMachine(s, false)
	step(m, 0, Event{Kind: EvStartup})
	mdi := masterDown(150, time.Second)
	if got := step(m, mdi, Event{Kind: EvTimer}); !strings.HasSuffix(got, "send(150)") {
		t.Fatalf("no results yet, weights add nothing: %s", got)
	}
	at := mdi
	adv := func(want int) {
		t.Helper()
		at += time.Second
		if got := step(m, at, Event{Kind: EvTimer}); got != "send("+itoa(want)+")" {
			t.Fatalf("at %v: %s, want send(%d)", at, got, want)
		}
		if p := m.status().EffectivePriority; p != want {
			t.Fatalf("status effective priority %d, want %d", p, want)
		}
	}
	m.Handle(epoch.Add(at), trackResult("script up", true), nil)
	adv(170)
	// The first result decides at once, whatever rise says.
	m.Handle(epoch.Add(at), trackResult("script down", false), nil)
	adv(110)
	// Now rise 2: one pass is not enough...
	m.Handle(epoch.Add(at), trackResult("script down", true), nil)
	adv(110)
	// ...two are.
	m.Handle(epoch.Add(at), trackResult("script down", true), nil)
	adv(170)
	// fall 2: one failure is not enough.
	m.Handle(epoch.Add(at), trackResult("script down", false), nil)
	adv(170)
	m.Handle(epoch.Add(at), trackResult("script down", false), nil)
	adv(110)
	// 110 - 200 is clamped to 1: still a valid priority, never 0 (resign).
	m.Handle(epoch.Add(at), trackResult("interface eth1", false), nil)
	adv(1)
	m.Handle(epoch.Add(at), trackResult("interface eth1", true), nil)
	adv(110)
	st := m.status()
	if len(st.Tracks) != 3 || st.Tracks[0].Name != "script down" || st.Tracks[0].State != "down" || st.Tracks[0].Applied != -60 ||
		st.Tracks[1].Applied != 20 || st.Tracks[2].State != "up" || st.Tracks[2].Applied != 0 {
		t.Errorf("tracks: %+v", st.Tracks)
	}
}

func itoa(n int) string { return strconv.Itoa(n) }

// TestMachineTrackMovesTimers: the RFC timers use the effective priority,
// so a backup whose tracking lowered it waits Master_Down_Interval of the
// lowered priority, and a master whose priority fell below a backup's is
// preempted by it.
func TestMachineTrackMovesTimers(t *testing.T) {
	s := baseSettings()
	s.priority = 200
	s.ha.scripts = []scriptSettings{{name: "chk", weight: -150, rise: 1, fall: 1}}
	m := newMachine(s, false)
	m.Handle(epoch, trackResult("script chk", false), nil)
	step(m, 0, Event{Kind: EvStartup})
	if next, want := m.Next(), epoch.Add(masterDown(50, time.Second)); !next.Equal(want) {
		t.Fatalf("Master_Down_Timer at %v, want %v (priority 50)", next.Sub(epoch), want.Sub(epoch))
	}
	// A master at 100 is heard: at 50 we do not preempt it.
	if got := step(m, time.Second, advertFrom(100)); got != "" {
		t.Fatalf("lower master: %s", got)
	}
	if next, want := m.Next(), epoch.Add(time.Second+masterDown(50, time.Second)); !next.Equal(want) {
		t.Fatalf("timer re-armed to %v, want %v", next.Sub(epoch), want.Sub(epoch))
	}
	// The script passes: 200 > 100, and preemption lets the timer run out.
	m.Handle(epoch.Add(1500*time.Millisecond), trackResult("script chk", true), nil)
	step(m, 2*time.Second, advertFrom(100))
	if got := step(m, time.Second+masterDown(50, time.Second), Event{Kind: EvTimer}); !strings.Contains(got, "notify(master)") || !strings.HasSuffix(got, "done") {
		t.Fatalf("preempting at 200: %s", got)
	}
}

// TestMachineTrackScriptWeightZero: weight 0 is keepalived's FAULT; the
// instance waits in Init for the script's first result.
func TestMachineTrackScriptWeightZero(t *testing.T) {
	s := baseSettings()
	s.ha.scripts = []scriptSettings{{name: "chk", weight: 0, rise: 1, fall: 1}}
	m := newMachine(s, false)
	if got := step(m, 0, Event{Kind: EvStartup}); got != "remove" {
		t.Fatalf("startup before the first result: %s", got)
	}
	if m.State() != StateInit {
		t.Fatalf("state %v before the first result", m.State())
	}
	if got := step(m, 10*time.Millisecond, trackResult("script chk", false)); got != "notify(fault)" {
		t.Fatalf("first result fails: %s", got)
	}
	if got := step(m, time.Second, trackResult("script chk", true)); got != "notify(backup)" {
		t.Fatalf("passes: %s", got)
	}
	if st := m.status(); st.EffectivePriority != 100 || len(st.Faults) != 0 {
		t.Errorf("status %+v", st)
	}
}
