package daemon

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/lvsd/lvsd/config"
	"github.com/lvsd/lvsd/director"
)

// fakeLock records what lvsd asked of mlockall; refuse makes it fail as a
// process without CAP_IPC_LOCK would.
type fakeLock struct {
	mu     sync.Mutex
	calls  []bool
	refuse bool
}

func (f *fakeLock) lock(on bool) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if on && f.refuse {
		return ErrMemlockLimited
	}
	f.calls = append(f.calls, on)
	return nil
}

func (f *fakeLock) log() []bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]bool(nil), f.calls...)
}

func withLockMemory(text string) string {
	return strings.Replace(text, "name = \"lab-node\"\n", "name = \"lab-node\"\nlock_memory = true\n", 1)
}

// TestLockMemoryRefusedAtStart: lvsd does not start, naming the file and
// the key, when it may not lock all its memory.
func TestLockMemoryRefusedAtStart(t *testing.T) {
	c := newLabConfig(t)
	path := filepath.Join(c.Dir, "lvsd.toml")
	if err := os.WriteFile(path, []byte(withLockMemory(c.render(t))), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	_, err = New(cfg, WithLogger(slog.New(slog.DiscardHandler)), WithIPVS(director.NewFake()),
		WithAddresses(&fakeAddrs{}), WithoutHostSetup(), WithMemoryLock((&fakeLock{refuse: true}).lock))
	if !errors.Is(err, ErrMemlockLimited) || !strings.Contains(err.Error(), path+": director.lock_memory = true") {
		t.Fatalf("New = %v; want a refusal naming %s and director.lock_memory = true", err, path)
	}
}

// TestLockMemoryByReload: a reload turns locking on and off; one the kernel
// refuses is rejected as a whole and the running config stays.
func TestLockMemoryByReload(t *testing.T) {
	c := newLabConfig(t)
	lock := &fakeLock{}
	l := startLab(t, c, WithMemoryLock(lock.lock))
	l.steady(c)
	text := c.render(t)
	reload := func(text string) error {
		l.write(text)
		return l.client().Reload(context.Background())
	}
	if err := reload(withLockMemory(text)); err != nil {
		t.Fatalf("reload turning lock_memory on: %v", err)
	}
	if err := reload(text); err != nil {
		t.Fatalf("reload turning lock_memory off: %v", err)
	}
	if got := lock.log(); len(got) != 2 || !got[0] || got[1] {
		t.Fatalf("mlockall calls %v; want [true false]", got)
	}

	lock.mu.Lock()
	lock.refuse = true
	lock.mu.Unlock()
	err := reload(withLockMemory(strings.Replace(text, "weight = 5", "weight = 6", 1)))
	if err == nil || !strings.Contains(err.Error(), "director.lock_memory = true") || !strings.Contains(err.Error(), "CAP_IPC_LOCK") {
		t.Fatalf("reload: %v; want a rejection naming director.lock_memory", err)
	}
	if got := l.d.config(); got.Director.LockMemory || got.Services[0].RealServers[0].Weight != 5 {
		t.Errorf("the rejected reload changed the running config: lock_memory %t, weight %d", got.Director.LockMemory, got.Services[0].RealServers[0].Weight)
	}
	l.write(text)
}

func TestMayLockAll(t *testing.T) {
	const ipcLock = 1 << 14
	for _, tt := range []struct {
		limit, caps uint64
		want        bool
	}{
		{limit: 8 << 20, caps: 0, want: false},
		{limit: 8 << 20, caps: ipcLock, want: true},
		{limit: ^uint64(0), caps: 0, want: true},
	} {
		if got := mayLockAll(tt.limit, tt.caps); got != tt.want {
			t.Errorf("mayLockAll(%d, %#x) = %t, want %t", tt.limit, tt.caps, got, tt.want)
		}
	}
}
