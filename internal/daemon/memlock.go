package daemon

import (
	"bufio"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/lvsd/lvsd/config"
)

// memoryLock keeps every page of lvsd in RAM while director.lock_memory
// says so (keepalived's vrrp_no_swap): an advert must never wait for a
// page of the VRRP path to come back from swap.
type memoryLock struct {
	lock func(on bool) error // lockAllMemory, or a test's
	log  *slog.Logger

	mu sync.Mutex
	on bool
}

// start locks at once when cfg asks, so a refusal stops lvsd starting.
func (m *memoryLock) start(cfg *config.Config) error {
	if !cfg.Director.LockMemory {
		return nil
	}
	return m.set(cfg, true)
}

func (m *memoryLock) set(cfg *config.Config, on bool) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.lock(on); err != nil {
		return fmt.Errorf("%s: director.lock_memory = %t: %w", cfg.Path, on, err)
	}
	m.on = on
	return nil
}

func (m *memoryLock) locked() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.on
}

// Prepare locks when the next config turns locking on (what can be refused
// is refused here, and undone should another part refuse the reload);
// turning it off is the commit.
func (m *memoryLock) Prepare(c *change) (func(), error) {
	want := c.next.Director.LockMemory
	switch {
	case want == m.locked():
		return nil, nil
	case want:
		if err := m.set(c.next, true); err != nil {
			return nil, err
		}
		c.onAbort(func() { m.undo(c.old) })
		return nil, nil
	}
	return func() { m.undo(c.next) }, nil
}

func (m *memoryLock) undo(cfg *config.Config) {
	if err := m.set(cfg, false); err != nil {
		m.log.Error("unlocking memory", "err", err)
	}
}

// ErrMemlockLimited says lvsd may lock only part of its memory. With
// MCL_FUTURE every new mapping is locked, so a process at its limit can
// no longer grow its heap, and the Go runtime dies of that: lvsd refuses
// rather than run into it later.
var ErrMemlockLimited = errors.New("locking memory needs CAP_IPC_LOCK (root has it) or RLIMIT_MEMLOCK unlimited (systemd: LimitMEMLOCK=infinity)")

// lockAllMemory is mlockall(MCL_CURRENT|MCL_FUTURE) for on, munlockall
// for off.
func lockAllMemory(on bool) error {
	if !on {
		return os.NewSyscallError("munlockall", unix.Munlockall())
	}
	var lim unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_MEMLOCK, &lim); err != nil {
		return os.NewSyscallError("getrlimit", err)
	}
	capEff, err := effectiveCaps("/proc/self/status")
	if err != nil {
		return err
	}
	if !mayLockAll(lim.Cur, capEff) {
		return ErrMemlockLimited
	}
	return os.NewSyscallError("mlockall", unix.Mlockall(unix.MCL_CURRENT|unix.MCL_FUTURE))
}

// mayLockAll: either capability or limit lets every mapping be locked.
func mayLockAll(memlockLimit, capEff uint64) bool {
	return memlockLimit == unix.RLIM_INFINITY || capEff&(1<<unix.CAP_IPC_LOCK) != 0
}

// effectiveCaps reads the CapEff mask from a /proc/<pid>/status file.
func effectiveCaps(path string) (uint64, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, fmt.Errorf("reading capabilities: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "CapEff:"); ok {
			caps, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
			if err != nil {
				return 0, fmt.Errorf("%s: CapEff %q: %w", path, v, err)
			}
			return caps, nil
		}
	}
	if err := sc.Err(); err != nil {
		return 0, fmt.Errorf("reading capabilities: %w", err)
	}
	return 0, fmt.Errorf("%s: no CapEff line", path)
}
