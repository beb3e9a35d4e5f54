package vrrp

import (
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// threadWaker is the timing thread of the wall clock: a goroutine locked
// to its own OS thread, blocked in read(2) on a timerfd, that runs the
// executor's tick when the earliest deadline comes. It does not use the Go
// timer heap, whose timers run from whichever P gets to them; the thread
// can be given a real-time priority (SCHED_RR), which then applies to the
// adverts and the Master_Down timer only, and a tick allocates nothing, so
// the garbage collector has no reason to stop it.
type threadWaker struct {
	tfd      int
	log      *slog.Logger
	spec     unix.ItimerSpec // under the executor's lock
	stopping atomic.Bool
	tid      atomic.Int32
	done     chan struct{}
}

func startThread(ex *executor, rtPriority int) (*threadWaker, error) {
	tfd, err := unix.TimerfdCreate(unix.CLOCK_MONOTONIC, unix.TFD_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("vrrp: timerfd: %w", err)
	}
	w := &threadWaker{tfd: tfd, log: ex.log, done: make(chan struct{})}
	ready := make(chan error, 1)
	go func() {
		defer close(w.done)
		// Never unlocked: the thread ends with the goroutine, so a
		// real-time policy never leaks to other goroutines.
		runtime.LockOSThread()
		tid := unix.Gettid()
		w.tid.Store(int32(tid))
		if err := setRTPriority(tid, rtPriority); err != nil {
			ready <- err
			return
		}
		ready <- nil
		var buf [8]byte
		for !w.stopping.Load() {
			if _, err := unix.Read(tfd, buf[:]); err != nil {
				if err == unix.EINTR || err == unix.EAGAIN {
					continue
				}
				ex.log.Error("vrrp: timing thread", "err", err)
				return
			}
			if w.stopping.Load() {
				return
			}
			ex.tick()
		}
	}()
	if err := <-ready; err != nil {
		<-w.done
		unix.Close(tfd)
		return nil, err
	}
	return w, nil
}

// arm sets the timerfd to expire d from now (called under the executor's
// lock, so spec needs no lock of its own).
func (w *threadWaker) arm(d time.Duration) {
	if d <= 0 {
		d = 1 // a zero it_value would disarm
	}
	w.spec.Value = unix.NsecToTimespec(int64(d))
	if err := unix.TimerfdSettime(w.tfd, 0, &w.spec, nil); err != nil {
		w.log.Error("vrrp: arming the timing thread", "err", err) // EBADF/EINVAL: a bug here
	}
}

func (w *threadWaker) stop() {
	w.spec.Value = unix.Timespec{}
	_ = unix.TimerfdSettime(w.tfd, 0, &w.spec, nil)
}

// close ends the thread: it wakes at once and sees stopping.
func (w *threadWaker) close() {
	w.stopping.Store(true)
	spec := unix.ItimerSpec{Value: unix.Timespec{Nsec: 1}}
	_ = unix.TimerfdSettime(w.tfd, 0, &spec, nil)
	<-w.done
	unix.Close(w.tfd)
}

// setRT changes the real-time priority of the running thread.
func (w *threadWaker) setRT(priority int) error { return setRTPriority(int(w.tid.Load()), priority) }

// ErrRTNotPermitted says a real-time priority was asked for and the
// kernel refused it: no CAP_SYS_NICE and an RLIMIT_RTPRIO below it, or a
// cgroup without a real-time budget.
var ErrRTNotPermitted = errors.New("SCHED_RR not permitted (needs CAP_SYS_NICE or RLIMIT_RTPRIO >= the priority, and a real-time budget in the cgroup; systemd: LimitRTPRIO= or AmbientCapabilities=CAP_SYS_NICE)")

type schedParam struct{ priority int32 }

// setRTPriority puts thread tid under SCHED_RR at priority 1..99, or back
// to SCHED_OTHER for 0.
func setRTPriority(tid, priority int) error {
	policy := schedRR
	if priority == 0 {
		policy = schedOther
		if p, _ := schedPolicy(tid); p == schedOther {
			return nil // nothing to undo
		}
	}
	param := schedParam{priority: int32(priority)}
	_, _, e := unix.Syscall(unix.SYS_SCHED_SETSCHEDULER, uintptr(tid), uintptr(policy), uintptr(unsafe.Pointer(&param)))
	switch e {
	case 0:
		return nil
	case unix.EPERM:
		return fmt.Errorf("real-time priority %d: %w", priority, ErrRTNotPermitted)
	}
	return fmt.Errorf("real-time priority %d: sched_setscheduler: %w", priority, e)
}

// schedPolicy reads back a thread's policy and priority.
func schedPolicy(tid int) (policy, priority int) {
	p, _, e := unix.Syscall(unix.SYS_SCHED_GETSCHEDULER, uintptr(tid), 0, 0)
	if e != 0 {
		return -1, 0
	}
	var param schedParam
	if _, _, e := unix.Syscall(unix.SYS_SCHED_GETPARAM, uintptr(tid), uintptr(unsafe.Pointer(&param)), 0); e != 0 {
		return int(p), 0
	}
	return int(p), int(param.priority)
}

// CheckRTPriority says whether this process may run its VRRP timing thread
// at the real-time priority (0 always may). It tries on a thread of its
// own that then ends, so nothing running changes.
func CheckRTPriority(priority int) error {
	if priority == 0 {
		return nil
	}
	res := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread ends with us
		res <- setRTPriority(unix.Gettid(), priority)
	}()
	return <-res
}

// Scheduling policies of sched_setscheduler(2).
const (
	schedOther = 0
	schedRR    = 2
)
