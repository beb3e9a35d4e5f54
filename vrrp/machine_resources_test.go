package vrrp

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

// The resources' rules, on the machine alone: events in, actions out.

// hkinds is kinds with the resource actions: start(a), stop(a),
// status(a), cancel.
func hkinds(acts []Action) string {
	var out []string
	for _, a := range acts {
		switch a.Kind {
		case ActResource:
			out = append(out, fmt.Sprintf("%s(%s)", a.Op, a.Resource))
		case ActCancel:
			out = append(out, "cancel")
		default:
			if k := kinds([]Action{a}); k != "" {
				out = append(out, k)
			}
		}
	}
	return strings.Join(out, " ")
}

func hstep(m *Machine, at time.Duration, ev Event) string {
	return hkinds(m.Handle(epoch.Add(at), ev, nil))
}

// finish reports the run in flight as done (err nil) or failed.
func finish(m *Machine, at time.Duration, err error) string {
	return hstep(m, at, Event{Kind: EvResource, Token: m.res.busy, Err: err, Detail: "test"})
}

var errExit1 = errors.New("exit 1")

// haSettings: resources a and b, both exclusive, a monitored every 2 s
// with one restart; hold_off 30 s; one GARP per burst.
func resourceSettings2() settings {
	s := baseSettings()
	s.garpRepeat = 1
	s.ha.holdOff = 30 * time.Second
	s.ha.resources = []resourceSettings{
		{name: "a", start: []string{"/a", "start"}, stop: []string{"/a", "stop"}, status: []string{"/a", "status"},
			startTimeout: 10 * time.Second, stopTimeout: 10 * time.Second, statusTimeout: 10 * time.Second,
			monitorInterval: 2 * time.Second, fall: 1, restarts: 1, exclusive: true},
		{name: "b", start: []string{"/b", "start"}, stop: []string{"/b", "stop"},
			startTimeout: 10 * time.Second, stopTimeout: 10 * time.Second, statusTimeout: 10 * time.Second,
			monitorInterval: 10 * time.Second, fall: 1, restarts: 1, exclusive: true},
	}
	return s
}

// startedBackup runs the startup stops of a fresh machine.
func startedBackup(t *testing.T, s settings) *Machine {
	t.Helper()
	m := newMachine(s, false)
	// A killed predecessor may have left them running: stopped in reverse.
	if got := hstep(m, 0, Event{Kind: EvStartup}); got != "remove notify(backup) stop(b)" {
		t.Fatalf("startup: %s", got)
	}
	if got := finish(m, time.Millisecond, nil); got != "stop(a)" {
		t.Fatalf("after stop(b): %s", got)
	}
	if got := finish(m, 2*time.Millisecond, nil); got != "" {
		t.Fatalf("after stop(a): %s", got)
	}
	return m
}

// masterServing takes a started backup to master from silence and starts
// its resources.
func masterServing(t *testing.T, m *Machine) time.Duration {
	t.Helper()
	mdi := masterDown(100, time.Second)
	// Nobody holds the VIPs: the advert goes at once, the resources start
	// in order, and the VIPs go up only once all run.
	if got := hstep(m, mdi, Event{Kind: EvTimer}); got != "notify(master) send(100) start(a)" {
		t.Fatalf("master down: %s", got)
	}
	if got := finish(m, mdi+time.Millisecond, nil); got != "start(b)" {
		t.Fatalf("a started: %s", got)
	}
	if got := finish(m, mdi+2*time.Millisecond, nil); got != "add announce" {
		t.Fatalf("b started: %s", got)
	}
	return mdi + 2*time.Millisecond
}

func TestMachineResourcesStartInOrderVIPsLast(t *testing.T) {
	m := startedBackup(t, resourceSettings2())
	at := masterServing(t, m)
	// a is monitored every 2 s; adverts go on meanwhile.
	if next := m.Next(); !next.Equal(epoch.Add(masterDown(100, time.Second) + time.Second)) {
		t.Fatalf("next deadline %v", next.Sub(epoch))
	}
	if got := hstep(m, at+2*time.Second, Event{Kind: EvTimer}); got != "send(100) status(a)" {
		t.Fatalf("2 s later: %s", got)
	}
	if got := finish(m, at+2*time.Second+time.Millisecond, nil); got != "" {
		t.Fatalf("status ok: %s", got)
	}
	st := m.status()
	if st.Resources[0].State != "running" || st.Resources[0].Last.Op != "status" || !st.Resources[0].Last.OK || st.Resources[1].State != "running" {
		t.Errorf("status: %+v", st.Resources)
	}
}

// TestMachineResourceStartFails: a start that fails (or was killed after
// start_timeout: the runner reports it the same way) stops what started
// and itself, then resigns and holds off.
func TestMachineResourceStartFails(t *testing.T) {
	m := startedBackup(t, resourceSettings2())
	mdi := masterDown(100, time.Second)
	hstep(m, mdi, Event{Kind: EvTimer})
	finish(m, mdi+time.Millisecond, nil) // a runs
	// b fails: it is stopped, then a; the instance stays master on the
	// wire meanwhile, so the peer does not start its copy yet.
	if got := finish(m, mdi+2*time.Millisecond, errExit1); got != "stop(b)" {
		t.Fatalf("b failed: %s", got)
	}
	if got := hstep(m, mdi+time.Second, Event{Kind: EvTimer}); got != "send(100)" {
		t.Fatalf("while stopping: %s", got)
	}
	if got := finish(m, mdi+time.Second+time.Millisecond, nil); got != "stop(a)" {
		t.Fatalf("b stopped: %s", got)
	}
	// All stopped: the release (priority 0), then Fault for hold_off.
	if got := finish(m, mdi+time.Second+2*time.Millisecond, nil); got != "send(0) notify(fault)" {
		t.Fatalf("a stopped: %s", got)
	}
	st := m.status()
	if !strings.Contains(st.ResourceFailure, "resource b: start failed") || st.HoldOffUntil.IsZero() || len(st.Faults) != 1 {
		t.Errorf("status: failure %q, hold-off %v, faults %v", st.ResourceFailure, st.HoldOffUntil, st.Faults)
	}
	// The hold-off ends: backup, and the election decides again.
	end := mdi + time.Second + 2*time.Millisecond + 30*time.Second
	if got := hstep(m, end-time.Millisecond, Event{Kind: EvTimer}); got != "" {
		t.Fatalf("before hold-off ends: %s", got)
	}
	if got := hstep(m, end, Event{Kind: EvTimer}); got != "notify(backup)" {
		t.Fatalf("hold-off over: %s", got)
	}
}

// TestMachineResourceMonitorRestartsThenHandsOver: with restarts = 1, the
// first failed status restarts a (and b after it) in place with the VIPs
// down meanwhile; the second hands mastership over.
func TestMachineResourceMonitorRestartsThenHandsOver(t *testing.T) {
	m := startedBackup(t, resourceSettings2())
	at := masterServing(t, m) + 2*time.Second
	hstep(m, at, Event{Kind: EvTimer}) // status(a)
	if got := finish(m, at, errExit1); got != "remove stop(b)" {
		t.Fatalf("status failed: %s", got)
	}
	if got := finish(m, at+time.Millisecond, nil); got != "stop(a)" {
		t.Fatalf("b stopped: %s", got)
	}
	if got := finish(m, at+2*time.Millisecond, nil); got != "start(a)" {
		t.Fatalf("a stopped: %s", got)
	}
	if got := finish(m, at+3*time.Millisecond, nil); got != "start(b)" {
		t.Fatalf("a restarted: %s", got)
	}
	if got := finish(m, at+4*time.Millisecond, nil); got != "add announce" {
		t.Fatalf("b restarted: %s", got)
	}
	if st := m.status(); st.Resources[0].Restarts != 1 || st.State != "master" {
		t.Fatalf("after one restart: %+v", st)
	}
	at += 4*time.Millisecond + 2*time.Second
	if got := hstep(m, at, Event{Kind: EvTimer}); !strings.HasSuffix(got, "status(a)") {
		t.Fatalf("next status: %s", got)
	}
	if got := finish(m, at, errExit1); got != "remove stop(b)" {
		t.Fatalf("second failure: %s", got)
	}
	finish(m, at+time.Millisecond, nil)
	if got := finish(m, at+2*time.Millisecond, nil); got != "send(0) notify(fault)" {
		t.Fatalf("handed over: %s", got)
	}
	if st := m.status(); !strings.Contains(st.ResourceFailure, "restarted 1 times") {
		t.Errorf("failure: %q", st.ResourceFailure)
	}
}

// TestMachineResourcesWaitForRelease: preempting a live master, an
// exclusive resource starts once the old master has released it (its
// priority-0 advert), or after releaseWait if none comes.
func TestMachineResourcesWaitForRelease(t *testing.T) {
	for _, release := range []bool{true, false} {
		s := resourceSettings2()
		s.priority = 150
		m := startedBackup(t, s)
		hstep(m, time.Second, advertFrom(100)) // a live lower master
		mdi := masterDown(150, time.Second)
		hstep(m, 2*time.Second, advertFrom(100))
		at := time.Second + mdi
		// It advertises at once, so the old master steps down and stops its copy.
		if got := hstep(m, at, Event{Kind: EvTimer}); got != "notify(master) send(150)" {
			t.Fatalf("preempting: %s", got)
		}
		if got := hstep(m, at+100*time.Millisecond, advertFrom(100)); strings.Contains(got, "start") {
			t.Fatalf("started before the release: %s", got)
		}
		if release {
			if got := hstep(m, at+time.Second+500*time.Millisecond, advertFrom(0)); got != "start(a) send(150)" {
				t.Fatalf("released: %s", got)
			}
			continue
		}
		wait := m.releaseWait()
		if wait != vipTimeout+2*time.Second+20*time.Second {
			t.Errorf("releaseWait %v", wait)
		}
		if got := hstep(m, at+wait-time.Millisecond, Event{Kind: EvTimer}); strings.Contains(got, "start") {
			t.Fatalf("started early: %s", got)
		}
		if got := hstep(m, at+wait, Event{Kind: EvTimer}); !strings.HasSuffix(got, "start(a)") {
			t.Fatalf("no release within releaseWait: %s", got)
		}
	}
}

// TestMachineResourcesClaimWithoutExclusive: nothing exclusive, so a
// preempting master starts the resources and adds the VIPs while the old
// master still serves, and only then advertises.
func TestMachineResourcesClaimWithoutExclusive(t *testing.T) {
	s := resourceSettings2()
	s.priority = 150
	for i := range s.ha.resources {
		s.ha.resources[i].exclusive = false
	}
	m := startedBackup(t, s)
	hstep(m, time.Second, advertFrom(100))
	hstep(m, 2*time.Second, advertFrom(100))
	at := time.Second + masterDown(150, time.Second)
	if got := hstep(m, at, Event{Kind: EvTimer}); got != "notify(master) start(a)" {
		t.Fatalf("preempting: %s", got)
	}
	finish(m, at+time.Millisecond, nil)
	got := m.Handle(epoch.Add(at+2*time.Millisecond), Event{Kind: EvResource, Token: m.res.busy}, nil)
	if hkinds(got) != "add announce done" {
		t.Fatalf("all started: %s", hkinds(got))
	}
	if got := hstep(m, at+3*time.Millisecond, Event{Kind: EvDone, Token: got[len(got)-1].Token}); got != "send(150)" {
		t.Fatalf("VIPs up: %s", got)
	}
}

// TestMachineLeavingMasterStopsBeforeResigning: a higher priority master
// makes it fall silent at once; a fault keeps it advertising until its
// resources are stopped. Either way the VIPs go first and the release
// (priority 0) last.
func TestMachineLeavingMasterStopsBeforeResigning(t *testing.T) {
	m := startedBackup(t, resourceSettings2())
	at := masterServing(t, m)
	ev := advertFrom(200)
	ev.Src = addrHigh
	if got := hstep(m, at+100*time.Millisecond, ev); got != "remove stop(b)" {
		t.Fatalf("higher priority heard: %s", got)
	}
	if got := hstep(m, at+2*time.Second, Event{Kind: EvTimer}); got != "" {
		t.Fatalf("silent while stopping: %s", got)
	}
	finish(m, at+2*time.Second, nil)
	if got := finish(m, at+2*time.Second+time.Millisecond, nil); got != "send(0) notify(backup)" {
		t.Fatalf("stopped: %s", got)
	}

	m = startedBackup(t, resourceSettings2())
	at = masterServing(t, m)
	if got := hstep(m, at+100*time.Millisecond, Event{Kind: EvFault, Reason: "service web down", On: true}); got != "remove stop(b)" {
		t.Fatalf("fault: %s", got)
	}
	if got := hstep(m, at+time.Second, Event{Kind: EvTimer}); got != "send(100)" {
		t.Fatalf("advertising while stopping: %s", got)
	}
	finish(m, at+time.Second, nil)
	if got := finish(m, at+time.Second+time.Millisecond, nil); got != "send(0) notify(fault)" {
		t.Fatalf("stopped: %s", got)
	}
}

// TestMachineLeaveCancelsStart: leaving master while a start runs kills it
// (its process group), then stops it.
func TestMachineLeaveCancelsStart(t *testing.T) {
	m := startedBackup(t, resourceSettings2())
	mdi := masterDown(100, time.Second)
	hstep(m, mdi, Event{Kind: EvTimer}) // start(a) runs
	if got := hstep(m, mdi+time.Second, Event{Kind: EvShutdown, Reason: "stopping"}); got != "cancel" {
		t.Fatalf("shutdown during start: %s", got)
	}
	if got := finish(m, mdi+time.Second, errors.New("cancelled")); got != "stop(a)" {
		t.Fatalf("start cancelled: %s", got)
	}
	if got := finish(m, mdi+time.Second+time.Millisecond, nil); got != "send(0) notify(init)" {
		t.Fatalf("stopped: %s", got)
	}
	if !m.quiet() {
		t.Error("not quiet after shutdown")
	}
}

// TestMachineResourceStopFailed: lvsd cannot fence. A failed stop sends no
// release and keeps the instance in Fault until reset, which stops the
// resource again first.
func TestMachineResourceStopFailed(t *testing.T) {
	m := startedBackup(t, resourceSettings2())
	at := masterServing(t, m)
	hstep(m, at, Event{Kind: EvGiveup}) // remove stop(b)
	if got := finish(m, at+time.Millisecond, errExit1); got != "stop(a)" {
		t.Fatalf("b's stop failed: %s", got)
	}
	if got := finish(m, at+2*time.Millisecond, nil); got != "notify(fault)" {
		t.Fatalf("without a release: %s", got)
	}
	st := m.status()
	if st.Resources[1].State != "stop_failed" || !strings.Contains(strings.Join(st.Faults, ","), "resource b stop failed") {
		t.Fatalf("status: %+v faults %v", st.Resources, st.Faults)
	}
	if got := hstep(m, at+time.Minute, Event{Kind: EvTimer}); got != "" {
		t.Fatalf("a failed stop does not time out: %s", got)
	}
	if got := hstep(m, at+time.Minute, Event{Kind: EvReset}); got != "stop(b)" {
		t.Fatalf("reset: %s", got)
	}
	if got := finish(m, at+time.Minute+time.Millisecond, nil); got != "notify(backup)" {
		t.Fatalf("stopped after reset: %s", got)
	}
}

// TestMachineResourceDependantFailsFirst: c's status fails (its database
// a died), before a's own monitor is due. a's status runs at once: when
// it fails, a is restarted with everything after it (c alone would hang
// on the dead a); when it passes, c is restarted alone.
func TestMachineResourceDependantFailsFirst(t *testing.T) {
	for _, aDown := range []bool{true, false} {
		t.Run(fmt.Sprintf("a down %v", aDown), func(t *testing.T) {
			s := resourceSettings2()
			s.ha.resources[0].monitorInterval = time.Minute
			s.ha.resources[0].fall = 3 // the dependant's failure is corroboration enough
			c := s.ha.resources[1]
			c.name, c.start, c.stop, c.status = "c", []string{"/c", "start"}, []string{"/c", "stop"}, []string{"/c", "status"}
			c.monitorInterval = time.Second
			s.ha.resources = append(s.ha.resources, c)
			m := newMachine(s, false)
			hstep(m, 0, Event{Kind: EvStartup})
			for i := range 3 {
				finish(m, time.Duration(i+1)*time.Millisecond, nil)
			}
			at := masterDown(100, time.Second)
			want := []string{"notify(master) send(100) start(a)", "start(b)", "start(c)", "add announce"}
			for i, w := range want {
				got := ""
				if i == 0 {
					got = hstep(m, at, Event{Kind: EvTimer})
				} else {
					got = finish(m, at, nil)
				}
				if got != w {
					t.Fatalf("step %d: %q, want %q", i, got, w)
				}
			}
			at += time.Second
			if got := hstep(m, at, Event{Kind: EvTimer}); !strings.HasSuffix(got, "status(c)") {
				t.Fatalf("c's monitor: %s", got)
			}
			if got := finish(m, at, errExit1); got != "status(a)" {
				t.Fatalf("c failed: %s, want a checked first", got)
			}
			var aErr error
			want = []string{"remove stop(c)", "start(c)", "add announce"}
			if aDown {
				aErr = errExit1
				want = []string{"remove stop(c)", "stop(b)", "stop(a)", "start(a)", "start(b)", "start(c)", "add announce"}
			}
			got := []string{finish(m, at, aErr)}
			for len(got) < len(want) {
				got = append(got, finish(m, at, nil))
			}
			if strings.Join(got, " | ") != strings.Join(want, " | ") {
				t.Fatalf("after a's status: %q\nwant %q", got, want)
			}
			st := m.status()
			restarted := map[bool]int{true: 0, false: 2}[aDown]
			if st.State != "master" || st.Resources[restarted].Restarts != 1 || st.Resources[2-restarted].Restarts != 0 {
				t.Errorf("restarts: %+v", st.Resources)
			}
			if aDown && !strings.Contains(st.ResourceFailure, "resource a: status failed") {
				t.Errorf("failure: %q", st.ResourceFailure)
			}
		})
	}
}
