package daemon

import (
	"os"
	"runtime"
)

// spareProcs is how many more Go Ps (runtime.GOMAXPROCS) `lvsd run` keeps
// than the runtime's own default, the CPUs it may use. It is the process's
// setting, so the caller that owns the process applies it (cmd/lvsd, and
// bench/checks for the checker it measures as lvsd).
//
// Why: VRRP's timing thread is locked to its OS thread and sleeps in
// read(2) on a timerfd; while it sleeps the runtime hands its P to other
// goroutines. When the timer fires the thread needs a P back before it can
// send the advert. If every P is busy with health checks, a reload or the
// collector, it waits in the run queue for the next scheduling point, and
// a real-time priority cannot help, as the wait is in Go's scheduler, not
// the kernel's. With Ps to spare one is idle when the thread wakes, and
// the kernel, which knows the thread's priority, decides who runs.
//
// Measured with bench/stress on 2 cores (stress-ng on every core, 10,000
// connect checks and a reload every 10 s, 10 ms adverts, SCHED_RR 50,
// a 1 min window, keepalived beside): the master's advert lateness p99
// went from 24.5 ms (2 Ps) to 5.1 ms (4) and 0.70 ms (8; keepalived 0.59),
// false failovers from 13 to 2 (keepalived 0), SIGKILL takeover p99 from
// 134 ms to 36 ms (keepalived 37). The CPU the master used moved from 18.0
// to 19.2 s. GOMAXPROCS in the environment still decides.
const spareProcs = 6

// KeepTimingHeadroom gives the runtime spareProcs more Ps than its
// default, unless GOMAXPROCS is set. It returns the count now in force.
func KeepTimingHeadroom() int {
	if os.Getenv("GOMAXPROCS") != "" {
		return runtime.GOMAXPROCS(0)
	}
	n := runtime.GOMAXPROCS(0) + spareProcs
	runtime.GOMAXPROCS(n)
	return n
}
