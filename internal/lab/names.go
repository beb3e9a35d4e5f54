package lab

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync/atomic"

	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// namePrefix starts the name of every namespace a lab creates.
const namePrefix = "lvsd-"

var nsCounter atomic.Int64

// uniqueName is "lvsd-TAG-PID-N-ROLE": no two live labs on a machine can
// make the same, and RemoveLeftovers can tell from it whether the run that
// made a namespace is still alive.
func uniqueName(role string) string {
	return fmt.Sprintf("%s%s-%d-%d-%s", namePrefix, tag(), os.Getpid(), nsCounter.Add(1), role)
}

// ownerPid returns the pid in a name uniqueName made.
func ownerPid(name string) (int, bool) {
	if !strings.HasPrefix(name, namePrefix) {
		return 0, false
	}
	f := strings.SplitN(strings.TrimPrefix(name, namePrefix), "-", 4)
	if len(f) != 4 || f[0] == "" || f[3] == "" {
		return 0, false
	}
	pid, err := strconv.Atoi(f[1])
	if err != nil || pid <= 0 {
		return 0, false
	}
	if _, err := strconv.Atoi(f[2]); err != nil {
		return 0, false
	}
	return pid, true
}

// alive reports whether a process with this pid exists.
func alive(pid int) bool {
	err := unix.Kill(pid, 0)
	return err == nil || errors.Is(err, unix.EPERM)
}

// RemoveLeftovers deletes the namespaces of labs whose process has died
// without cleaning up (killed, or crashed), after killing what still runs
// in them. Namespaces of live runs, whoever started them, are left alone.
func RemoveLeftovers() ([]string, error) {
	entries, err := os.ReadDir("/run/netns")
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var removed []string
	var errs []error
	for _, e := range entries {
		pid, ok := ownerPid(e.Name())
		if !ok || alive(pid) {
			continue
		}
		killIn(e.Name())
		if err := netns.DeleteNamed(e.Name()); err != nil {
			errs = append(errs, fmt.Errorf("remove leftover netns %s: %w", e.Name(), err))
			continue
		}
		removed = append(removed, e.Name())
	}
	return removed, errors.Join(errs...)
}

// killIn SIGKILLs every process whose network namespace is the named one.
func killIn(name string) {
	var target unix.Stat_t
	if err := unix.Stat("/run/netns/"+name, &target); err != nil {
		return
	}
	procs, _ := os.ReadDir("/proc")
	for _, p := range procs {
		pid, err := strconv.Atoi(p.Name())
		if err != nil || pid <= 1 {
			continue
		}
		var st unix.Stat_t
		if unix.Stat("/proc/"+p.Name()+"/ns/net", &st) == nil && st.Dev == target.Dev && st.Ino == target.Ino {
			_ = unix.Kill(pid, unix.SIGKILL)
		}
	}
}
