package checks

import (
	"sync"
	"sync/atomic"
	"time"
)

// A goroutine probe (http, dns, ldap, exec, tcp with send/expect) cannot
// ask its socket, as the connect loop does, whether the reply came in
// time: when its deadline passes, Go fails the read even if the reply sits
// unread in the socket because lvsd was not running. So its timeout is a
// verdict on the server only if lvsd itself was running on time while the
// probe was under way (judgeTimeout): the probe's goroutine saw its
// deadline within the tolerance, and stallWatch saw no stall of lvsd
// longer than the tolerance between the probe's start and its end.
// Otherwise the run is inconclusive: it is not fed to rise/fall, it is
// counted (lvsd_check_probes_total{result="inconclusive"}) and retried
// at once (twice in a row: at its next turn).

// stallTick is how often stallWatch wakes while goroutine probes run. A
// stall shorter than a tick may go unseen; probeTolerance never asks about
// one shorter than two.
const stallTick = 10 * time.Millisecond

// probeTolerance is how much lateness of lvsd a goroutine probe's timeout
// allows and still counts: a tenth of the timeout, at least two stallTicks.
// A server that answers within 90% of the timeout is never failed for a
// stall of lvsd; one that stays silent throughout is failed as soon as a
// run meets no stall of lvsd longer than this.
func probeTolerance(timeout time.Duration) time.Duration {
	return max(timeout/10, 2*stallTick)
}

// stallWatch notices when lvsd itself stops running on time. While any
// goroutine probe is in flight it wakes every stallTick on the scheduler's
// clock and records each wakeup that came more than a tick late as a stall
// of lvsd: its timers and goroutines (the probes' among them) did not run
// meanwhile. Idle, it costs nothing.
type stallWatch struct {
	clock    Clock
	inFlight atomic.Int32

	mu     sync.Mutex
	armed  bool      // a tick is pending
	expect time.Time // when the pending tick is due
	stalls [64]span  // the latest stalls, a ring
	next   int
}

type span struct{ from, to time.Time }

// enter marks a probe in flight from now.
func (w *stallWatch) enter(now time.Time) {
	if w.inFlight.Add(1) != 1 {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.armed {
		w.armed, w.expect = true, now.Add(stallTick)
		w.clock.AfterFunc(w.expect, w.tick)
	}
}

// leave marks a probe done.
func (w *stallWatch) leave() { w.inFlight.Add(-1) }

func (w *stallWatch) tick() {
	now := w.clock.Now()
	w.mu.Lock()
	defer w.mu.Unlock()
	if now.Sub(w.expect) > stallTick {
		w.stalls[w.next%len(w.stalls)] = span{w.expect, now}
		w.next++
	}
	if w.inFlight.Load() == 0 {
		w.armed = false
		return
	}
	w.expect = now.Add(stallTick)
	w.clock.AfterFunc(w.expect, w.tick)
}

// worst returns the longest stall of lvsd that overlapped [from, to],
// counting one still under way (a tick overdue now).
func (w *stallWatch) worst(from, to time.Time) time.Duration {
	now := w.clock.Now()
	w.mu.Lock()
	defer w.mu.Unlock()
	var worst time.Duration
	for _, sp := range w.stalls {
		if !sp.from.IsZero() && sp.to.After(from) && sp.from.Before(to) {
			worst = max(worst, sp.to.Sub(sp.from))
		}
	}
	if w.armed && w.expect.Before(to) && now.Sub(w.expect) > stallTick {
		worst = max(worst, now.Sub(w.expect))
	}
	return worst
}

// judgeTimeout says whether a goroutine probe's timeout, which ran from
// start with its deadline at deadline and returned at end, is a verdict on
// the server. lateBy is, when it is not, the lateness of lvsd that voids it.
func (s *Scheduler) judgeTimeout(start, deadline, end time.Time, timeout time.Duration) (verdict bool, lateBy time.Duration) {
	tol := probeTolerance(timeout)
	lateBy = max(end.Sub(deadline), s.stalls.worst(start, end))
	return lateBy <= tol, lateBy
}
