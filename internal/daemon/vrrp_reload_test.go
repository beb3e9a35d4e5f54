package daemon

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/lvsd/lvsd/director"
)

// vrrpTransitions sums lvsd_vrrp_transitions_total of vi1 over every state.
func (l *lab) vrrpTransitions() float64 {
	l.t.Helper()
	s := l.scrape()
	sum := 0.0
	for _, to := range []string{"init", "backup", "master", "fault"} {
		sum += s.count("lvsd_vrrp_transitions_total", "vrrp_instance", "vi1", "to", to)
	}
	return sum
}

func hasVIP(vips []netip.Prefix, p string) bool {
	return slices.Contains(vips, netip.MustParsePrefix(p))
}

// TestReloadChangesVRRPInPlace: a reload that changes a master's priority
// and VIPs applies them with no VRRP transition and no kernel op: the new
// priority is advertised, the added VIP is held, a dropped one released.
func TestReloadChangesVRRPInPlace(t *testing.T) {
	c := newLabConfig(t)
	c.Extra = labVRRP
	l := startLab(t, c)
	l.steady(c)
	l.waitVRRP("master", 2)
	transitions := l.vrrpTransitions()
	since := l.d.vr.Status()[0].Since
	logBefore := len(l.logs.String())
	l.ipvs.ResetOps()

	c.Extra = strings.NewReplacer("priority = 150", "priority = 120",
		`vips = ["192.0.2.10/32"]`, `vips = ["192.0.2.10/32", "192.0.2.11/32"]`).Replace(labVRRP)
	l.write(c.render(t))
	l.reload()

	v := l.status().VRRP
	if len(v) != 1 || v[0].State != "master" || v[0].Priority != 120 || v[0].MasterPriority != 120 ||
		!slices.Equal(v[0].VIPs, []string{"192.0.2.10/32", "192.0.2.11/32"}) {
		t.Errorf("status after the reload: %+v; want master at priority 120 with both VIPs", v)
	}
	if vips := l.addrs.on("lab0"); !hasVIP(vips, "192.0.2.10/32") || !hasVIP(vips, "192.0.2.11/32") {
		t.Errorf("VIPs on lab0 after adding one: %v", vips)
	}
	if p := l.scrape().value("lvsd_vrrp_master_priority", "vrrp_instance", "vi1"); p != 120 {
		t.Errorf("lvsd_vrrp_master_priority = %v, want 120", p)
	}
	l.passes(2)
	if n := l.vrrpTransitions(); n != transitions {
		t.Errorf("the reload made VRRP transitions: %v -> %v", transitions, n)
	}
	if st := l.d.vr.Status()[0]; !st.Since.Equal(since) {
		t.Errorf("vi1 in its state since %v, was %v", st.Since, since)
	}
	if ops := l.ipvs.Ops(); !maps.Equal(ops, map[director.OpKind]int{}) {
		t.Errorf("a VRRP-only reload made kernel ops %v", ops)
	}
	logs := l.logs.String()[logBefore:]
	if !strings.Contains(logs, "instance updated in place") || strings.Contains(logs, "state change") {
		t.Errorf("reload log:\n%s", logs)
	}

	// Dropping the VIP again releases it, still without a transition.
	c.Extra = strings.Replace(labVRRP, "priority = 150", "priority = 120", 1)
	l.write(c.render(t))
	l.reload()
	if vips := l.addrs.on("lab0"); !hasVIP(vips, "192.0.2.10/32") || hasVIP(vips, "192.0.2.11/32") {
		t.Errorf("VIPs on lab0 after dropping one: %v", vips)
	}
	if n := l.vrrpTransitions(); n != transitions {
		t.Errorf("dropping a VIP made VRRP transitions: %v -> %v", transitions, n)
	}
}

// TestReloadAddsAndRemovesVRRP: a director running without VRRP gets its
// first instance by a reload, which takes over the service VIP it held as
// a static VIP; removing the instance again makes the VIP static again.
func TestReloadAddsAndRemovesVRRP(t *testing.T) {
	c := newLabConfig(t)
	l := startLab(t, c)
	l.steady(c)
	if vips := l.addrs.on("lab0"); !hasVIP(vips, "192.0.2.10/32") {
		t.Fatalf("static VIP not held: %v", vips)
	}

	// vi1 takes the VIP over: the static set lets it go first.
	c.Extra = labVRRP
	l.write(c.render(t))
	l.addrs.changes()
	l.reload()
	l.waitVRRP("master", 2)
	// The master adds its VIPs just after it says it is master.
	l.waitHeld("lab0", "192.0.2.10/32", true)
	if got := l.addrs.changes(); len(got) < 2 || got[0] != "remove lab0 192.0.2.10/32" || got[len(got)-1] != "add lab0 192.0.2.10/32" {
		t.Errorf("VIP changes as vi1 took the VIP over: %q, want the static VIP removed first and vi1's add last", got)
	}
	sent := l.vrrp.sent.Load()
	l.eventually("adverts from vi1", func() error {
		if l.vrrp.sent.Load() <= sent {
			return fmt.Errorf("no advert since the reload")
		}
		return nil
	})

	// The VIP goes back to the static set: VRRP releases it before the
	// static set adds it, or the release would take it away again.
	c.Extra = ""
	l.write(c.render(t))
	l.addrs.changes()
	l.reload()
	if got, want := l.addrs.changes(), []string{"remove lab0 192.0.2.10/32", "add lab0 192.0.2.10/32"}; !slices.Equal(got, want) {
		t.Errorf("VIP changes of the reload: %q, want %q", got, want)
	}
	if st := l.status(); len(st.VRRP) != 0 {
		t.Errorf("status lists VRRP after removing it: %+v", st.VRRP)
	}
	if v := l.scrape().value("lvsd_vrrp_state", "vrrp_instance", "vi1"); v != -1 {
		t.Errorf("lvsd_vrrp_state{vrrp_instance=vi1} = %v after removing vi1, want no series", v)
	}
	if vips := l.addrs.on("lab0"); !hasVIP(vips, "192.0.2.10/32") {
		t.Errorf("the VIP is not held as a static VIP again: %v", vips)
	}
	sent = l.vrrp.sent.Load()
	l.passes(2)
	if n := l.vrrp.sent.Load(); n != sent {
		t.Errorf("%d adverts after the instance was removed", n-sent)
	}
}

// syncDaemons stands in for the kernel's connection-sync daemons.
type syncDaemons struct {
	mu      sync.Mutex
	running map[director.SyncState]director.SyncDaemon
	fail    error // returned by StartDaemon when set
}

func (f *syncDaemons) StartDaemon(_ context.Context, d director.SyncDaemon) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fail != nil {
		return f.fail
	}
	if _, ok := f.running[d.State]; ok {
		return director.ErrDaemonRunning
	}
	f.running[d.State] = d
	return nil
}

func (f *syncDaemons) StopDaemon(_ context.Context, s director.SyncState) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.running[s]; !ok {
		return director.ErrNoDaemon
	}
	delete(f.running, s)
	return nil
}

func (f *syncDaemons) Daemons(context.Context) ([]director.SyncDaemon, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []director.SyncDaemon
	for _, d := range f.running {
		out = append(out, d)
	}
	return out, nil
}

func (f *syncDaemons) states() []director.SyncState {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := slices.Collect(maps.Keys(f.running))
	slices.Sort(out)
	return out
}

// TestReloadAddsSync: a reload that adds the first [vrrp.sync] starts
// connection sync (the backup daemon, and the master daemon on a master);
// one whose sync cannot start is rejected and changes nothing, not even the
// VRRP priority changed in the same file.
func TestReloadAddsSync(t *testing.T) {
	c := newLabConfig(t)
	c.Extra = labVRRP
	kernel := &syncDaemons{running: map[director.SyncState]director.SyncDaemon{}, fail: errors.New("ENOMEM from the kernel")}
	l := startLab(t, c, WithSync(director.SyncOptions{Control: kernel, Sysctl: func(director.Sysctl) error { return nil }}))
	l.steady(c)
	l.waitVRRP("master", 2)
	cfg := l.d.config()

	c.Extra = strings.Replace(labVRRP, "priority = 150", "priority = 120", 1) + "\n  [vrrp.sync]\n"
	l.write(c.render(t))
	err := l.client().Reload(context.Background())
	if err == nil || !strings.Contains(err.Error(), "[vrrp.sync]") || !strings.Contains(err.Error(), "ENOMEM") {
		t.Fatalf("reload whose sync cannot start: %v; want a rejection naming [vrrp.sync] and the cause", err)
	}
	if l.d.config() != cfg {
		t.Error("the daemon switched config after a rejected reload")
	}
	if v := l.status().VRRP; len(v) != 1 || v[0].Priority != 150 || v[0].State != "master" {
		t.Errorf("VRRP after the rejected reload: %+v; want priority 150 unchanged", v)
	}

	kernel.mu.Lock()
	kernel.fail = nil
	kernel.mu.Unlock()
	l.reload()
	l.eventually("sync daemons started", func() error {
		if got, want := kernel.states(), []director.SyncState{director.SyncMaster, director.SyncBackup}; !slices.Equal(got, want) {
			return fmt.Errorf("running %v, want %v", got, want)
		}
		return nil
	})
	if v := l.status().VRRP; len(v) != 1 || v[0].Priority != 120 || v[0].State != "master" {
		t.Errorf("VRRP after the reload: %+v; want master at priority 120", v)
	}
}
