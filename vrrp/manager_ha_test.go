package vrrp

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lvsd/lvsd/internal/proc"
)

// The resources and tracked scripts through a running Manager: commands on
// the runner goroutines (as in production), the VIPs through the address
// manager, in one log so their order shows.

type haLog struct {
	mu     sync.Mutex
	lines  []string
	fail   map[string]bool // "a start": exits 1
	hang   map[string]bool // "a start": runs until killed
	killed int
}

func (l *haLog) add(s string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lines = append(l.lines, s)
}

func (l *haLog) all() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.lines)
}

func (l *haLog) set(m map[string]bool, key string, on bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	m[key] = on
}

// exec is the Manager's exec: argv is [name, op].
func (l *haLog) exec(ctx context.Context, argv []string, o proc.RunOptions) proc.Result {
	key := strings.Join(argv, " ")
	l.add("exec " + key)
	l.mu.Lock()
	fail, hang := l.fail[key], l.hang[key]
	l.mu.Unlock()
	if hang {
		start := time.Now()
		<-ctx.Done()
		l.mu.Lock()
		l.killed++
		l.mu.Unlock()
		// As long as the timeout it was given, as proc.Run reports it: the
		// real time it took to hear the cancel is the test's lateness.
		took := time.Since(start)
		if dl, ok := ctx.Deadline(); ok {
			took = dl.Sub(start)
		}
		return proc.Result{Err: ctx.Err(), TimedOut: true, Duration: took.Round(100 * time.Millisecond)}
	}
	if fail {
		return proc.Result{Err: errors.New("exit status 1")}
	}
	return proc.Result{}
}

type loggedAddrs struct{ l *haLog }

func (a loggedAddrs) AddVIPs(_ context.Context, _ string, vips []netip.Prefix) error {
	a.l.add(fmt.Sprint("add ", vips))
	return nil
}

func (a loggedAddrs) RemoveVIPs(_ context.Context, _ string, vips []netip.Prefix) error {
	a.l.add(fmt.Sprint("remove ", vips))
	return nil
}

const haTOML = `[[vrrp]]
name = "ha"
vrid = 51
interface = "eth0"
vips = ["10.0.0.100/24"]
source_address = "10.0.0.2"
hold_off = "20s"

  [[vrrp.resource]]
  name = "a"
  start = ["/a", "start"]
  stop = ["/a", "stop"]
  status = ["/a", "status"]
  start_timeout = "300ms"
  monitor_interval = "1s"

  [[vrrp.resource]]
  name = "b"
  start = ["/b", "start"]
  stop = ["/b", "stop"]
`

func startHA(t *testing.T, toml string) (*mrig, *haLog) {
	t.Helper()
	l := &haLog{fail: map[string]bool{}, hang: map[string]bool{}}
	r := startManagerWith(t, managerOpts{workers: true, exec: l.exec,
		addrs: func(*vipLog) AddressManager { return loggedAddrs{l} }}, parseVRRP(toml)...)
	return r, l
}

// waitLog waits until the log's lines from n on are want.
func waitLog(t *testing.T, l *haLog, n int, want ...string) {
	t.Helper()
	for end := time.Now().Add(5 * time.Second); ; time.Sleep(time.Millisecond) {
		got := l.all()
		if len(got) >= n && slices.Equal(got[n:], want) {
			return
		}
		if time.Now().After(end) {
			t.Fatalf("log from line %d:\n  %s\nwant\n  %s", n, strings.Join(got[min(n, len(got)):], "\n  "), strings.Join(want, "\n  "))
		}
	}
}

func TestManagerResources(t *testing.T) {
	r, l := startHA(t, haTOML)
	// At startup, what a killed predecessor may have left is stopped.
	waitLog(t, l, 0, "remove [10.0.0.100/24]", "exec /b stop", "exec /a stop")
	r.clock.Advance(4 * time.Second)
	waitLog(t, l, 3, "exec /a start", "exec /b start", "add [10.0.0.100/24]")
	waitUntil(t, "resources running", func() bool {
		st := r.status("ha")
		return st.State == "master" && st.Resources[0].State == "running" && st.Resources[1].State == "running"
	})
	r.clock.Advance(time.Second)
	waitLog(t, l, 6, "exec /a status")

	// The metrics show each resource's state and last result.
	for _, want := range []string{
		`lvsd_vrrp_resource_state{resource="a",vrrp_instance="ha"} 2`,
		`lvsd_vrrp_resource_last_success{op="start",resource="b",vrrp_instance="ha"} 1`,
		`lvsd_vrrp_resource_runs_total{op="status",resource="a",result="ok",vrrp_instance="ha"} 1`,
		`lvsd_vrrp_effective_priority{vrrp_instance="ha"} 100`,
	} {
		waitUntil(t, want, func() bool { return strings.Contains(gather(t, r), want) })
	}

	// Stopping: the VIPs go, the resources stop in reverse, then the
	// release, and only then does Run return.
	r.cancel()
	if err := <-r.done; err != nil {
		t.Fatal(err)
	}
	r.done <- nil // for the cleanup
	waitLog(t, l, 7, "remove [10.0.0.100/24]", "exec /b stop", "exec /a stop")
	if last := r.conn("eth0").last(); last.ad.Priority != 0 {
		t.Errorf("last advert %+v, want the priority-0 release", last.ad)
	}
}

func gather(t *testing.T, r *mrig) string {
	t.Helper()
	mfs, err := r.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			var labels []string
			for _, lp := range m.GetLabel() {
				labels = append(labels, fmt.Sprintf("%s=%q", lp.GetName(), lp.GetValue()))
			}
			v := m.GetGauge().GetValue() + m.GetCounter().GetValue()
			fmt.Fprintf(&b, "%s{%s} %g\n", mf.GetName(), strings.Join(labels, ","), v)
		}
	}
	return b.String()
}

// TestManagerResourceStartHangs: a start that outlives start_timeout is
// killed, stopped with what started, and the instance resigns and holds
// off.
func TestManagerResourceStartHangs(t *testing.T) {
	r, l := startHA(t, haTOML)
	waitLog(t, l, 0, "remove [10.0.0.100/24]", "exec /b stop", "exec /a stop")
	l.set(l.hang, "/a start", true)
	r.clock.Advance(4 * time.Second)
	waitLog(t, l, 3, "exec /a start", "exec /a stop")
	waitUntil(t, "fault with hold-off", func() bool {
		st := r.status("ha")
		return st.State == "fault" && !st.HoldOffUntil.IsZero() && strings.Contains(st.ResourceFailure, "resource a: start failed: ")
	})
	if st := r.status("ha"); !strings.Contains(st.ResourceFailure, "timed out after 300ms") {
		t.Errorf("failure %q", st.ResourceFailure)
	}
	if last := r.conn("eth0").last(); last.ad.Priority != 0 {
		t.Errorf("last advert %+v, want the release", last.ad)
	}
	// hold_off later it is backup again, and the election decides.
	l.set(l.hang, "/a start", false)
	r.clock.Advance(20 * time.Second)
	waitUntil(t, "backup after the hold-off", func() bool { return r.status("ha").State != "fault" })
}

// TestManagerTrackScriptAndReload: a tracked script's result moves the
// priority through a running Manager, and a reload that changes the
// resources and the script's weight makes no transition.
func TestManagerTrackScriptAndReload(t *testing.T) {
	toml := haTOML + `
  [[vrrp.track_script]]
  name = "chk"
  command = ["/chk"]
  weight = -30
`
	r, l := startHA(t, toml)
	// The script's first run passes; its next is then on the clock (the
	// runner arms it before it reports), so the advance below runs it.
	waitUntil(t, "the script's first result", func() bool {
		tr := r.status("ha").Tracks
		return len(tr) == 1 && tr[0].State == "up"
	})
	l.set(l.fail, "/chk", true)
	r.clock.Advance(4 * time.Second)
	waitUntil(t, "master at 70", func() bool {
		st := r.status("ha")
		return st.State == "master" && st.EffectivePriority == 70 && st.Resources[1].State == "running"
	})
	before, _ := r.transitions("ha")
	n := len(l.all())
	r.update(parseVRRP(strings.ReplaceAll(strings.ReplaceAll(toml, "weight = -30", "weight = -40"), `status = ["/a", "status"]`, `status = ["/a", "check"]`))...)
	waitUntil(t, "priority 60", func() bool { return r.status("ha").EffectivePriority == 60 })
	r.clock.Advance(2 * time.Second)
	waitUntil(t, "new status argv", func() bool { return slices.Contains(l.all()[n:], "exec /a check") })
	if after, _ := r.transitions("ha"); after != before {
		t.Errorf("transitions %v -> %v across a reload", before, after)
	}
	for _, line := range l.all()[n:] {
		if strings.Contains(line, "start") || strings.Contains(line, "stop") || strings.HasPrefix(line, "remove") {
			t.Errorf("reload touched the resources: %s", line)
		}
	}
}

// TestUpdateSyncGroupAndWeights: a reload that puts two masters in a sync
// group and gives one a weighted tracked service makes no transition; then
// a fault of one is the group's, and the weight moves both priorities.
func TestUpdateSyncGroupAndWeights(t *testing.T) {
	web := vrrpConfig("web", 51, "eth0", "10.0.0.100/24")
	mail := vrrpConfig("mail", 52, "eth1", "10.0.1.100/24")
	r := startManager(t, nil, nil, nil, web, mail)
	r.masters()
	before, _ := r.transitions("web")
	cfgs := parseVRRP(fmt.Sprintf(`[[service]]
name = "http"
vip = "10.0.0.100"
port = 80

[[vrrp]]
name = "web"
vrid = 51
interface = "eth0"
vips = ["10.0.0.100/24"]
source_address = %q

  [[vrrp.track_service]]
  name = "http"
  weight = -30

[[vrrp]]
name = "mail"
vrid = 52
interface = "eth1"
vips = ["10.0.1.100/24"]
source_address = %q

[[vrrp_sync_group]]
name = "g"
instances = ["web", "mail"]
`, addrMid, addrMid))
	r.update(cfgs...)
	if got := states(r.m); got != "web=master mail=master" {
		t.Fatalf("after the reload: %s", got)
	}
	if after, _ := r.transitions("web"); after != before {
		t.Errorf("the reload made %v transitions", after-before)
	}
	r.m.SetServiceDown("http", true)
	if w, m := r.status("web").EffectivePriority, r.status("mail").EffectivePriority; w != 70 || m != 70 {
		t.Errorf("priorities web %d mail %d, want 70 and 70 (the group's weight)", w, m)
	}
	r.links.set("eth1", false)
	if got := states(r.m); got != "web=fault mail=fault" {
		t.Fatalf("mail's link down: %s", got)
	}
	r.links.set("eth1", true)
	if got := states(r.m); got != "web=backup mail=backup" {
		t.Fatalf("mail's link up: %s", got)
	}
}
