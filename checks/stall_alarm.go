package checks

import (
	"os"
	"sync"
	"syscall"
	"time"
	"unsafe"
)

// pollAlarm is a one-shot alarm whose ring reaches its goroutine through
// the Go netpoller (a timerfd read as a file), the way a socket's data
// reaches a probe, rather than through a runtime timer (see stallWatch).
type pollAlarm struct {
	mu     sync.Mutex
	fd     int
	f      *os.File
	closed bool
}

func newPollAlarm(ring func()) (*pollAlarm, error) {
	fd, _, errno := syscall.Syscall(syscall.SYS_TIMERFD_CREATE, clockMonotonic, syscall.O_CLOEXEC|syscall.O_NONBLOCK, 0)
	if errno != 0 {
		return nil, os.NewSyscallError("timerfd_create", errno)
	}
	a := &pollAlarm{fd: int(fd), f: os.NewFile(fd, "stallwatch")}
	go func() {
		var buf [8]byte
		for {
			if _, err := a.f.Read(buf[:]); err != nil {
				return // closed
			}
			ring()
		}
	}()
	return a, nil
}

// set makes the alarm ring once, after d. It reports false once closed.
func (a *pollAlarm) set(d time.Duration) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed {
		return false
	}
	d = max(d, time.Microsecond)
	var spec [4]int64 // struct itimerspec: interval, then value
	spec[2], spec[3] = int64(d/time.Second), int64(d%time.Second)
	_, _, errno := syscall.RawSyscall6(syscall.SYS_TIMERFD_SETTIME, uintptr(a.fd), 0, uintptr(unsafe.Pointer(&spec)), 0, 0, 0)
	return errno == 0
}

func (a *pollAlarm) close() {
	a.mu.Lock()
	defer a.mu.Unlock()
	if !a.closed {
		a.closed = true
		a.f.Close()
	}
}
