package vrrp

import (
	"log/slog"
	"net/netip"
	"sync"
	"time"
)

// executor runs the Machines of one Manager. Every event of every machine
// is handled under mu, which is held only for the pure machine and for
// sending adverts (a non-blocking sendmsg of a pre-encoded buffer). The
// slow actions (netlink address changes, announcements) go to each
// instance's worker and run outside mu; notify goes to the instance's
// event queue. So a stuck address manager delays neither the adverts nor
// the Master_Down timer of any instance: the lock the timers need is never
// held across I/O that can block.
//
// Time: the executor arms one wake-up for the earliest deadline of all
// machines. With the wall clock that is a timerfd read by a dedicated,
// locked OS thread (timer_linux.go); with an injected Clock, a Clock timer.
type executor struct {
	mu    sync.Mutex
	clock Clock
	log   *slog.Logger
	// inline runs slow actions in the goroutine that caused them, after
	// mu is released, instead of on workers: deterministic tests of the
	// machine under a fake clock.
	inline     bool
	inlineBusy int // events whose inline actions are under way (finish)
	wake       waker
	ins        []*instance // instances whose deadlines count
	armed      time.Time
	buf        []Action
	drain      []drainee // reused by tick
}

// waker wakes the executor once, d from now; stop cancels.
type waker interface {
	arm(d time.Duration)
	stop()
}

func newExecutor(clock Clock, log *slog.Logger) *executor {
	ex := &executor{clock: clock, log: log, buf: make([]Action, 0, 32)}
	if _, real := clock.(RealClock); !real {
		ex.wake = &clockWaker{ex: ex}
	}
	return ex
}

// register makes an instance's deadlines count.
func (ex *executor) register(in *instance) {
	ex.mu.Lock()
	defer ex.mu.Unlock()
	ex.ins = append(ex.ins, in)
}

func (ex *executor) unregister(in *instance) {
	ex.mu.Lock()
	defer ex.mu.Unlock()
	for i, x := range ex.ins {
		if x == in {
			ex.ins = append(ex.ins[:i:i], ex.ins[i+1:]...)
			break
		}
	}
	ex.rearm(ex.clock.Now())
}

// post hands one event to an instance's machine.
func (ex *executor) post(in *instance, ev Event) {
	ex.mu.Lock()
	now := ex.clock.Now()
	slow := ex.handle(in, now, ev, nil)
	ex.rearm(now)
	ex.finish(slow)
}

// receive is post for an advert, after the checks that need the settings.
func (ex *executor) receive(in *instance, src netip.Addr, ad Advert) {
	ex.mu.Lock()
	if !in.accept(src, &ad) {
		ex.mu.Unlock()
		return
	}
	now := ex.clock.Now()
	slow := ex.handle(in, now, Event{Kind: EvAdvert, Src: src, Advert: ad}, nil)
	ex.rearm(now)
	ex.finish(slow)
}

// pendingReader is a Conn that can hand over a packet already queued in
// the socket without waiting for it.
type pendingReader interface {
	ReceivePending() (Packet, bool)
}

// tick handles every deadline that has come. It is the timing path: with
// workers (not inline) it allocates nothing.
func (ex *executor) tick() {
	ex.drainBeforeMasterDown()
	ex.mu.Lock()
	now := ex.clock.Now()
	ex.armed = time.Time{} // this wake-up is spent
	var slow []inlineAction
	for _, in := range ex.ins {
		if next := in.m.Next(); !next.IsZero() && !next.After(now) {
			slow = ex.handle(in, now, Event{Kind: EvTimer}, slow)
		}
	}
	ex.rearm(now)
	ex.finish(slow)
}

// drainBeforeMasterDown reads, on the timing thread, the adverts that sit
// unread in the socket of a backup whose Master_Down_Timer has run out.
// Under CPU load the receiving goroutine may not have run for tens of
// milliseconds while the timing thread (perhaps real-time) runs on time;
// an advert the kernel had already received must not count as silence.
func (ex *executor) drainBeforeMasterDown() {
	ex.mu.Lock()
	now := ex.clock.Now()
	for _, in := range ex.ins {
		if pr, ok := in.conn.(pendingReader); ok && in.m.masterDownDue(now) {
			ex.drain = append(ex.drain, drainee{in, pr})
		}
	}
	todo := ex.drain
	ex.mu.Unlock()
	for _, d := range todo {
		for range drainMax {
			p, ok := d.pr.ReceivePending()
			if !ok {
				break
			}
			d.in.handle(p)
		}
	}
	ex.mu.Lock()
	clear(ex.drain)
	ex.drain = ex.drain[:0]
	ex.mu.Unlock()
}

// drainMax bounds the adverts read per instance before a Master_Down
// expiry. It is deep enough to get past a burst of forged adverts (a
// flood the gate drops) queued ahead of the master's: at a few µs each,
// 1024 cost the timing thread a few ms, and only when Master_Down is due.
const drainMax = 1024

type drainee struct {
	in *instance
	pr pendingReader
}

type inlineAction struct {
	in *instance
	a  Action
}

// handle runs one event through the machine and performs what must happen
// at once (mu held): adverts, transitions, and handing the slow actions to
// the worker (or to slow, inline). A member of a sync group then moves its
// siblings (syncgroup.go).
func (ex *executor) handle(in *instance, now time.Time, ev Event, slow []inlineAction) []inlineAction {
	if in.m.cfg.ha.syncGroup == "" {
		return ex.step(in, now, ev, slow)
	}
	before := in.m.syncView()
	slow = ex.step(in, now, ev, slow)
	return ex.syncAfter(in, now, before, slow)
}

// step is handle for one machine alone.
func (ex *executor) step(in *instance, now time.Time, ev Event, slow []inlineAction) []inlineAction {
	acts := in.m.Handle(now, ev, ex.buf[:0])
	in.term.Store(in.m.term)
	for i := range acts {
		a := &acts[i]
		switch {
		case a.Kind == ActSend:
			in.send(now, a.Priority)
		case a.Kind == ActNotify:
			in.log.Info("vrrp: state change", "instance", in.name, "from", a.Change.From.String(), "to", a.Change.To.String(), "priority", a.Change.Priority, "reason", a.Change.Reason)
			in.changed(a.Change)
		case a.Kind == ActCancel:
			if in.ops != nil {
				in.ops.cancel(a.Token)
			}
		case ex.inline || in.work == nil:
			slow = append(slow, inlineAction{in, *a})
		case a.Kind == ActResource:
			in.logResource(a)
			in.ops.push(*a)
		default:
			in.work.push(*a)
		}
	}
	clear(acts) // drop references to VIPs and reasons
	ex.buf = acts[:0]
	switch ev.Kind {
	case EvReconfigure, EvDropVIPs:
		in.rebuildAdverts()
	}
	if p := in.m.masterPriority; p != in.lastPrio {
		in.lastPrio = p
		in.met.master(p)
	}
	if in.stopped != nil && in.m.quiet() {
		close(in.stopped)
		in.stopped = nil
	}
	return slow
}

// finish releases mu and performs, in order, the slow actions gathered
// without workers. While they run inlineBusy counts them: an event a
// background goroutine posted (a link report, a script's result) performs
// its actions on that goroutine, and a test waits until they are done
// (idle) before it counts what a later step did.
func (ex *executor) finish(slow []inlineAction) {
	if len(slow) == 0 {
		ex.mu.Unlock()
		return
	}
	ex.inlineBusy++
	ex.mu.Unlock()
	var err error
	for i := range slow {
		slow[i].in.do(&slow[i].a, &err)
	}
	ex.mu.Lock()
	ex.inlineBusy--
	ex.mu.Unlock()
}

// idle says no slow actions are being performed inline.
func (ex *executor) idle() bool {
	ex.mu.Lock()
	defer ex.mu.Unlock()
	return ex.inlineBusy == 0
}

// rearm arms the wake-up for the earliest deadline (mu held).
func (ex *executor) rearm(now time.Time) {
	if ex.wake == nil {
		return // not running yet: Run arms it
	}
	var next time.Time
	for _, in := range ex.ins {
		if t := in.m.Next(); !t.IsZero() && (next.IsZero() || t.Before(next)) {
			next = t
		}
	}
	if next.Equal(ex.armed) {
		return
	}
	ex.armed = next
	if next.IsZero() {
		ex.wake.stop()
		return
	}
	ex.wake.arm(next.Sub(now))
}

// startWaker starts the wake-ups (the timing thread with the wall clock).
func (ex *executor) startWaker(rtPriority int) error {
	if ex.wake == nil {
		w, err := startThread(ex, rtPriority)
		if err != nil {
			return err
		}
		ex.mu.Lock()
		ex.wake = w
		ex.mu.Unlock()
	}
	ex.mu.Lock()
	ex.armed = time.Time{}
	ex.rearm(ex.clock.Now())
	ex.mu.Unlock()
	return nil
}

// stopWaker ends the timing thread, if any.
func (ex *executor) stopWaker() {
	ex.mu.Lock()
	w, isThread := ex.wake.(*threadWaker)
	if isThread {
		ex.wake = nil
	}
	ex.mu.Unlock()
	if isThread {
		w.close()
	}
}

// clockWaker wakes through an injected Clock (tests).
type clockWaker struct {
	ex    *executor
	timer Timer
}

func (w *clockWaker) arm(d time.Duration) {
	w.stop()
	w.timer = w.ex.clock.AfterFunc(max(d, 0), w.ex.tick)
}

func (w *clockWaker) stop() {
	if w.timer != nil {
		w.timer.Stop()
		w.timer = nil
	}
}

// thread is the timing thread, if one runs.
func (ex *executor) thread() *threadWaker {
	ex.mu.Lock()
	defer ex.mu.Unlock()
	w, _ := ex.wake.(*threadWaker)
	return w
}
