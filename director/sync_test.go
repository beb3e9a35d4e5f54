package director

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/lvsd/lvsd/config"
)

// fakeSync is the kernel's daemon table: one daemon per state, defaults
// filled in the way start_sync_thread does, and a log of operations.
type fakeSync struct {
	mu      sync.Mutex
	daemons map[SyncState]SyncDaemon
	ops     []string
}

func newFakeSync() *fakeSync { return &fakeSync{daemons: map[SyncState]SyncDaemon{}} }

func (f *fakeSync) StartDaemon(_ context.Context, d SyncDaemon) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := d.Validate(); err != nil {
		return err
	}
	if _, ok := f.daemons[d.State]; ok {
		return ErrDaemonRunning
	}
	if d.MaxLen == 0 {
		d.MaxLen = 1472
	}
	if d.State == SyncBackup && d.MaxLen < 1024 {
		d.MaxLen = 1024
	}
	if !d.Group.IsValid() {
		d.Group = DefaultSyncGroup
	}
	if d.Port == 0 {
		d.Port = DefaultSyncPort
	}
	if d.TTL == 0 {
		d.TTL = DefaultSyncTTL
	}
	f.daemons[d.State] = d
	f.ops = append(f.ops, "start "+d.State.String())
	return nil
}

func (f *fakeSync) StopDaemon(_ context.Context, s SyncState) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.daemons[s]; !ok {
		return ErrNoDaemon
	}
	delete(f.daemons, s)
	f.ops = append(f.ops, "stop "+s.String())
	return nil
}

func (f *fakeSync) Daemons(context.Context) ([]SyncDaemon, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []SyncDaemon
	for _, s := range []SyncState{SyncMaster, SyncBackup} {
		if d, ok := f.daemons[s]; ok {
			out = append(out, d)
		}
	}
	return out, nil
}

func (f *fakeSync) get(s SyncState) (SyncDaemon, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	d, ok := f.daemons[s]
	return d, ok
}

func (f *fakeSync) opLog() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.ops)
}

// eventually polls cond; the manager applies state on its own goroutine.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(3 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func syncConfig(mod func(*config.Sync)) *config.Config {
	s := &config.Sync{Interface: "eth1", SyncID: 51, Port: 8848,
		Group: config.Addr{IP: netip.MustParseAddr("224.0.0.81")}, TTL: 1}
	if mod != nil {
		mod(s)
	}
	return &config.Config{
		Director: config.Director{Interface: "eth0"},
		VRRP: []config.VRRP{
			{Name: "other", VRID: 9, Interface: "eth0"},
			{Name: "vi1", VRID: 51, Interface: "eth0", Sync: s},
		},
	}
}

type syncHarness struct {
	fake    *fakeSync
	m       *SyncManager
	sysctls []string
	errs    []error
	mu      sync.Mutex
}

func newSyncHarness(t *testing.T, cfg *config.Config, fake *fakeSync, drain time.Duration) *syncHarness {
	t.Helper()
	h := &syncHarness{fake: fake}
	m, err := NewSyncManager(cfg, SyncOptions{
		Control: fake,
		Logger:  slog.New(slog.NewTextHandler(io.Discard, nil)),
		Drain:   drain,
		Sysctl: func(s Sysctl) error {
			h.mu.Lock()
			defer h.mu.Unlock()
			h.sysctls = append(h.sysctls, s.Path+"="+s.Value)
			return nil
		},
		OnError: func(err error) {
			h.mu.Lock()
			defer h.mu.Unlock()
			h.errs = append(h.errs, err)
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	h.m = m
	t.Cleanup(func() {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		m.Close(ctx)
		h.mu.Lock()
		defer h.mu.Unlock()
		if len(h.errs) > 0 {
			t.Errorf("kernel errors: %v", h.errs)
		}
	})
	return h
}

func TestSyncManagerStartsBackupAndSysctls(t *testing.T) {
	h := newSyncHarness(t, syncConfig(nil), newFakeSync(), time.Second)
	b, ok := h.fake.get(SyncBackup)
	if !ok {
		t.Fatal("no backup daemon after start")
	}
	want := SyncDaemon{State: SyncBackup, Interface: "eth1", SyncID: 51, MaxLen: 1472, Group: DefaultSyncGroup, Port: 8848, TTL: 1}
	if b != want {
		t.Errorf("backup = %+v, want %+v", b, want)
	}
	if _, ok := h.fake.get(SyncMaster); ok {
		t.Error("master daemon runs before the instance is master")
	}
	joined := strings.Join(h.sysctls, " ")
	for _, w := range []string{"sync_threshold=3\t0", "sync_refresh_period=10", "sync_retries=1", "sync_version=1", "backup_only=0", "sync_persist_mode=0"} {
		if !strings.Contains(joined, w) {
			t.Errorf("sysctls %q lack %q", joined, w)
		}
	}
}

// The timing tests run in a synctest bubble: the manager's timers and
// clock are the bubble's, so "just before the drain ends" and "just after"
// are exact instants, and synctest.Wait lets the manager's goroutine
// finish what it was asked before the test looks.

func TestSyncManagerFollowsVRRP(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newSyncHarness(t, syncConfig(nil), newFakeSync(), 50*time.Millisecond)
		h.m.OnState("other", true) // not the sync instance
		h.m.OnState("vi1", true)
		synctest.Wait()
		m, ok := h.fake.get(SyncMaster)
		if !ok || m.MaxLen != oneRecordMaxLen || m.Interface != "eth1" || m.SyncID != 51 {
			t.Errorf("master = %+v (running %v), want maxlen %d on eth1 id 51", m, ok, oneRecordMaxLen)
		}
		if _, ok := h.fake.get(SyncBackup); !ok {
			t.Error("backup daemon stopped on becoming master: records still in flight from the old master would be lost")
		}

		h.m.OnState("vi1", false)
		time.Sleep(50*time.Millisecond - time.Nanosecond)
		synctest.Wait()
		if _, ok := h.fake.get(SyncMaster); !ok {
			t.Error("master daemon stopped before its drain time: its unsent tail is dropped")
		}
		time.Sleep(time.Nanosecond)
		synctest.Wait()
		if _, ok := h.fake.get(SyncMaster); ok {
			t.Error("master daemon still runs once its drain time is over")
		}
		if got, want := h.fake.opLog(), []string{"start backup", "start master", "stop master"}; !slices.Equal(got, want) {
			t.Errorf("ops = %v, want %v", got, want)
		}
	})
}

func TestSyncManagerFlapKeepsMaster(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newSyncHarness(t, syncConfig(nil), newFakeSync(), 200*time.Millisecond)
		h.m.OnState("vi1", true)
		synctest.Wait()
		h.m.OnState("vi1", false)
		time.Sleep(50 * time.Millisecond)
		h.m.OnState("vi1", true)
		// Past the end of the drain the first give-up started.
		time.Sleep(300 * time.Millisecond)
		synctest.Wait()
		if got, want := h.fake.opLog(), []string{"start backup", "start master"}; !slices.Equal(got, want) {
			t.Errorf("a flap inside the drain restarted daemons: ops = %v, want %v", got, want)
		}
	})
}

func TestSyncManagerReplacesForeignDaemons(t *testing.T) {
	fake := newFakeSync()
	// Left by an earlier run: same backup, and a master with another id.
	fake.daemons[SyncBackup] = SyncDaemon{State: SyncBackup, Interface: "eth1", SyncID: 51, MaxLen: 1472, Group: DefaultSyncGroup, Port: 8848, TTL: 1}
	fake.daemons[SyncMaster] = SyncDaemon{State: SyncMaster, Interface: "eth1", SyncID: 3, MaxLen: 1472, Group: DefaultSyncGroup, Port: 8848, TTL: 1}
	h := newSyncHarness(t, syncConfig(nil), fake, 10*time.Millisecond)
	h.m.OnState("vi1", true)
	eventually(t, "master with our id", func() bool { d, ok := h.fake.get(SyncMaster); return ok && d.SyncID == 51 })
	if got, want := h.fake.opLog(), []string{"stop master", "start master"}; !slices.Equal(got, want) {
		t.Errorf("ops = %v, want %v (the matching backup left alone)", got, want)
	}
}

func TestSyncManagerUpdate(t *testing.T) {
	h := newSyncHarness(t, syncConfig(nil), newFakeSync(), 10*time.Millisecond)
	h.m.OnState("vi1", true)
	eventually(t, "master daemon", func() bool { _, ok := h.fake.get(SyncMaster); return ok })

	h.m.Update(syncConfig(func(s *config.Sync) { s.SyncID = 77; s.MaxLen = 1400 }))
	eventually(t, "daemons with the new id", func() bool {
		m, okm := h.fake.get(SyncMaster)
		b, okb := h.fake.get(SyncBackup)
		return okm && okb && m.SyncID == 77 && b.SyncID == 77
	})
	m, _ := h.fake.get(SyncMaster)
	b, _ := h.fake.get(SyncBackup)
	if m.MaxLen != 1400 || b.MaxLen != 1400 {
		t.Errorf("configured maxlen: master %d backup %d, want 1400 both", m.MaxLen, b.MaxLen)
	}

	noSync := syncConfig(nil)
	noSync.VRRP[1].Sync = nil
	h.m.Update(noSync)
	eventually(t, "both daemons stopped", func() bool {
		ds, _ := h.fake.Daemons(context.Background())
		return len(ds) == 0
	})
}

func TestSyncManagerCloseDrainsMaster(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newSyncHarness(t, syncConfig(nil), newFakeSync(), 150*time.Millisecond)
		h.m.OnState("vi1", true)
		synctest.Wait()
		start := time.Now()
		if err := h.m.Close(context.Background()); err != nil {
			t.Fatal(err)
		}
		if d := time.Since(start); d != 150*time.Millisecond {
			t.Errorf("Close returned after %v, want the master daemon's drain of 150ms", d)
		}
		if got, want := h.fake.opLog(), []string{"start backup", "start master", "stop backup", "stop master"}; !slices.Equal(got, want) {
			t.Errorf("ops = %v, want %v", got, want)
		}
		h.m.OnState("vi1", true) // after Close: ignored
		synctest.Wait()
		if ds, _ := h.fake.Daemons(context.Background()); len(ds) != 0 {
			t.Errorf("daemons after Close: %+v", ds)
		}
	})
}

func TestSyncManagerCloseCancelled(t *testing.T) {
	h := newSyncHarness(t, syncConfig(nil), newFakeSync(), time.Hour)
	h.m.OnState("vi1", true)
	eventually(t, "master daemon", func() bool { _, ok := h.fake.get(SyncMaster); return ok })
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := h.m.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if ds, _ := h.fake.Daemons(context.Background()); len(ds) != 0 {
		t.Errorf("daemons after a cancelled Close: %+v", ds)
	}
}

func TestSyncManagerWithoutSyncLeavesKernelAlone(t *testing.T) {
	fake := newFakeSync()
	fake.daemons[SyncBackup] = SyncDaemon{State: SyncBackup, Interface: "eth9", SyncID: 1}
	cfg := syncConfig(nil)
	cfg.VRRP[1].Sync = nil
	synctest.Test(t, func(t *testing.T) {
		h := newSyncHarness(t, cfg, fake, 10*time.Millisecond)
		h.m.OnState("vi1", true)
		synctest.Wait()
		if ops := fake.opLog(); len(ops) != 0 || len(h.sysctls) != 0 {
			t.Errorf("no [vrrp.sync], yet ops %v sysctls %v", ops, h.sysctls)
		}
	})
}

func TestSyncManagerStartError(t *testing.T) {
	cfg := syncConfig(func(s *config.Sync) { s.Interface = "an-interface-name-too-long" })
	_, err := NewSyncManager(cfg, SyncOptions{Control: newFakeSync(), Sysctl: func(Sysctl) error { return nil }})
	if err == nil || !strings.Contains(err.Error(), "longer than 15 bytes") {
		t.Errorf("err = %v, want the interface name rejected", err)
	}
	_, err = NewSyncManager(syncConfig(nil), SyncOptions{Control: newFakeSync(),
		Sysctl: func(s Sysctl) error { return errors.New("read-only /proc") }})
	if err == nil || !strings.Contains(err.Error(), "read-only /proc") {
		t.Errorf("err = %v, want the sysctl failure", err)
	}
}
