package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestLockMemory: with director.lock_memory, lvsd runs with its memory
// locked (VmLck in /proc/<pid>/status covers its resident set), and the
// master still holds the VIP.
func TestLockMemory(t *testing.T) {
	l := newVRRPLab(t)
	p := l.startLocked(lvsdVRRP{priority: 200, preempt: true})
	l.startLVSD(l.d2, lvsdVRRP{priority: 100, preempt: true})
	l.master(l.d1, l.d2, vrrpVIP, takeoverWithin)
	locked, rss := statusKB(t, p.Pid(), "VmLck"), statusKB(t, p.Pid(), "VmRSS")
	if locked == 0 || locked < rss/2 {
		t.Fatalf("lvsd with lock_memory: VmLck %d kB of VmRSS %d kB", locked, rss)
	}
}

// TestLockMemoryRefused: where lvsd may lock only part of its memory (no
// CAP_IPC_LOCK, RLIMIT_MEMLOCK 64 kB), it refuses to start, naming the file
// and the key, instead of dying later when its heap cannot grow.
func TestLockMemoryRefused(t *testing.T) {
	for _, tool := range []string{"setpriv", "prlimit"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("needs %s (util-linux)", tool)
		}
	}
	l := newVRRPLab(t)
	path := l.writeLocked(lvsdVRRP{priority: 200, preempt: true})
	p := l.d1.Start("setpriv", "--bounding-set", "-ipc_lock", "--inh-caps", "-ipc_lock", "--",
		"prlimit", "--memlock=65536:65536", "--", lvsdBinary(t), "run", "-config", path)
	if err := p.Wait(scaled(10 * time.Second)); err == nil {
		t.Fatalf("lvsd started without the right to lock its memory:\n%s", p.Output())
	}
	want := path + ": director.lock_memory = true: locking memory needs CAP_IPC_LOCK"
	if out := p.Output(); !strings.Contains(out, want) {
		t.Fatalf("lvsd's refusal does not say %q:\n%s", want, out)
	}
}

// writeLocked writes d1's config for v with lock_memory on.
func (l *vrrpLab) writeLocked(v lvsdVRRP) string {
	l.t.Helper()
	path := l.configPath(l.d1)
	text := strings.Replace(v.config(l.socket(l.d1)), "[director]\n", "[director]\nlock_memory = true\n", 1)
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		l.t.Fatal(err)
	}
	return path
}

func (l *vrrpLab) startLocked(v lvsdVRRP) interface{ Pid() int } {
	return l.d1.Start(lvsdBinary(l.t), "run", "-config", l.writeLocked(v))
}

// statusKB reads one "Key:   N kB" line of /proc/<pid>/status.
func statusKB(t *testing.T, pid int, key string) int {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, key+":"); ok {
			n, err := strconv.Atoi(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")))
			if err != nil {
				t.Fatalf("%s: %q: %v", key, line, err)
			}
			return n
		}
	}
	t.Fatalf("/proc/%d/status has no %s", pid, key)
	return 0
}
