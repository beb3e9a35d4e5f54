package vrrp

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
)

// The Machine is tested here on its own: events in, actions out, time
// passed in. The timer tests of instance_test.go and reannounce_test.go
// drive the same machine through the executor and fake I/O.

// kinds renders actions compactly: send(100), notify(master), add, remove,
// announce, done.
func kinds(acts []Action) string {
	var out []string
	for _, a := range acts {
		switch a.Kind {
		case ActSend:
			out = append(out, fmt.Sprintf("send(%d)", a.Priority))
		case ActNotify:
			out = append(out, "notify("+a.Change.To.String()+")")
		case ActAddVIPs:
			out = append(out, "add")
		case ActRemoveVIPs:
			out = append(out, "remove")
		case ActAnnounce:
			out = append(out, "announce")
		case ActDone:
			out = append(out, "done")
		}
	}
	return strings.Join(out, " ")
}

// step feeds one event at epoch+at and returns the actions.
func step(m *Machine, at time.Duration, ev Event) string {
	return kinds(m.Handle(epoch.Add(at), ev, nil))
}

func advertFrom(prio int) Event {
	return Event{Kind: EvAdvert, Src: addrLow, Advert: Advert{VRID: 51, Priority: uint8(prio), Interval: time.Second}}
}

func TestMachineTakesOverFromSilence(t *testing.T) {
	s := baseSettings()
	s.garpRepeat = 2
	m := newMachine(s, false)
	if got := step(m, 0, Event{Kind: EvStartup}); got != "remove notify(backup)" {
		t.Fatalf("startup: %s", got)
	}
	mdi := masterDown(100, time.Second)
	if next := m.Next(); !next.Equal(epoch.Add(mdi)) {
		t.Fatalf("Master_Down_Timer due at %v, want %v", next.Sub(epoch), mdi)
	}
	if got := step(m, mdi-1, Event{Kind: EvTimer}); got != "" {
		t.Fatalf("1ns early: %s", got)
	}
	// Nobody holds the VIPs: the advert does not wait for them.
	if got := step(m, mdi, Event{Kind: EvTimer}); got != "notify(master) add announce announce send(100)" {
		t.Fatalf("at Master_Down_Interval: %s", got)
	}
	if got := step(m, mdi+time.Second, Event{Kind: EvTimer}); got != "send(100)" {
		t.Fatalf("one interval later: %s", got)
	}
}

func TestMachinePreemptionWaitsForVIPs(t *testing.T) {
	s := baseSettings()
	s.priority, s.garpRepeat = 150, 1
	m := newMachine(s, false)
	step(m, 0, Event{Kind: EvStartup})
	step(m, 0, advertFrom(100)) // a live lower master: the timer runs out
	mdi := masterDown(150, time.Second)
	step(m, time.Second, advertFrom(100))
	got := m.Handle(epoch.Add(mdi), Event{Kind: EvTimer}, nil)
	if kinds(got) != "notify(master) add announce done" {
		t.Fatalf("preempting: %s", kinds(got))
	}
	token := got[len(got)-1].Token
	// The old master keeps advertising; we do not answer it yet.
	if got := step(m, mdi+time.Millisecond, advertFrom(100)); got != "" {
		t.Fatalf("old master heard while claiming: %s", got)
	}
	if got := step(m, mdi+2*time.Millisecond, Event{Kind: EvDone, Token: token + 1}); got != "" {
		t.Fatalf("another token: %s", got)
	}
	if got := step(m, mdi+3*time.Millisecond, Event{Kind: EvDone, Token: token}); got != "send(150)" {
		t.Fatalf("VIPs up: %s", got)
	}
	if got := step(m, mdi+5*time.Millisecond, advertFrom(100)); !strings.HasPrefix(got, "send(150)") {
		t.Fatalf("old master heard once advertising: %s", got)
	}
}

func TestMachineStepsDownWithResignation(t *testing.T) {
	m := newMachine(baseSettings(), false)
	step(m, 0, Event{Kind: EvStartup})
	step(m, masterDown(100, time.Second), Event{Kind: EvTimer})
	ev := advertFrom(200)
	ev.Src = addrHigh
	if got := step(m, 4*time.Second, ev); got != "send(0) remove notify(backup)" {
		t.Fatalf("higher priority heard: %s", got)
	}
	// A stale announcement of the ended term is marked as such.
	if m.Term() != 2 {
		t.Errorf("term %d after one mastership, want 2", m.Term())
	}
}

func TestMachineFaultAndOperator(t *testing.T) {
	m := newMachine(baseSettings(), false)
	step(m, 0, Event{Kind: EvStartup})
	step(m, masterDown(100, time.Second), Event{Kind: EvTimer})
	for _, tt := range []struct {
		at   time.Duration
		ev   Event
		want string
	}{
		{5 * time.Second, Event{Kind: EvFault, Reason: "service web down", On: true}, "send(0) remove notify(fault)"},
		{6 * time.Second, Event{Kind: EvTimer}, ""},
		{7 * time.Second, Event{Kind: EvFault, Reason: "service web down"}, "notify(backup)"},
		{8 * time.Second, Event{Kind: EvTakeover}, "notify(master) add announce announce announce announce announce send(254)"},
		{8 * time.Second, Event{Kind: EvReset}, "send(100)"},
		{9 * time.Second, Event{Kind: EvGiveup}, "send(0) remove notify(backup)"},
	} {
		if got := step(m, tt.at, tt.ev); got != tt.want {
			t.Errorf("event %d at %v: %s, want %s", tt.ev.Kind, tt.at, got, tt.want)
		}
	}
	if !slices.Equal(m.Faults(), nil) {
		t.Errorf("faults left: %v", m.Faults())
	}
}

// masterDown is RFC 9568's Master_Down_Interval with the skew of the
// master's own interval, the tests' reference for Machine.masterDownOf.
func masterDown(priority int, interval time.Duration) time.Duration {
	return 3*interval + skew(priority, interval)
}
