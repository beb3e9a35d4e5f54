package checks

import (
	"context"
	"fmt"
	"os"
	"sync"
	"syscall"
	"time"
	"unsafe"
)

// connectLoop runs the scheduler's connect-only TCP probes, by far the most
// numerous, from one goroutine around one epoll set, as keepalived runs its
// checkers: a probe costs socket, connect, epoll_ctl and close, and no
// goroutine, runtime timer or context of its own. The loop parks through
// the Go netpoller, woken by a socket's event or by a timerfd in the set at
// the next turn, expiry or flush, so the runtime sees an ordinary goroutine
// that sleeps between bursts. It keeps the scheduler's contract: each probe
// runs on its phase, never overlapping itself, and its results reach apply
// in order. Hysteresis stays in apply, off this goroutine.
type connectLoop struct {
	s    *Scheduler
	epfd int // the sockets, wake and alarm
	// park is an epoll fd registered with the netpoller, holding epfd only
	// while the loop sleeps. Were epfd itself registered, every socket
	// event would wake the runtime's idle poller thread while the loop is
	// busy anyway: a wakeup per probe, which under emulation cost ~15% of
	// the loop's CPU.
	park int
	ep   *os.File // park, registered with the netpoller
	raw  syscall.RawConn
	wake int // eventfd: arms from other goroutines, and stop
	// alarm is a timerfd in the epoll set for the next turn, expiry or
	// flush. A read deadline would wake the loop through a runtime timer,
	// and the Go scheduler starts a second thread spinning for every
	// goroutine a timer readies; a goroutine the netpoller finds runs on
	// the thread that found it.
	// With an injected clock (tests) alarm is -1 and clockAlarm, a timer
	// of that clock, pokes wake instead: the loop runs the same code on
	// either clock.
	alarm      int
	clockAlarm Timer
	alarmAt    time.Time // when the alarm is set to ring; zero: disarmed
	events     []syscall.EpollEvent

	mu      sync.Mutex
	pending []dueProbe
	stopped bool

	due minHeap[dueProbe]
	// byFD is the probe whose connect holds each fd (nil: none), inFlight
	// how many there are; timeouts orders their expiries.
	byFD       []*probe
	inFlight   int
	timeouts   minHeap[expiry]
	gen        int32
	batch      []finished
	batchSince time.Time
	urgent     bool // the batch holds a failure

	// hold, set by tests only, runs at the end of every turn of the loop,
	// before it reads the events that came meanwhile, with the time the
	// turn started: a test blocks in it to hold the loop up as a busy CPU,
	// a stopped process or a long GC would.
	hold func(l *connectLoop, now time.Time)
}

// eventBatch is how many events one epoll_pwait reads. harvest reads
// batches until the kernel has no more, so it bounds only a syscall.
const eventBatch = 256

// flushWindow bounds how long a passing result waits for others to share
// its handover to apply: waking apply once per probe cost more than the
// probe under emulation. A failure is handed over at once, so batching
// never delays an eviction; it may delay a restore by this much.
const flushWindow = 50 * time.Millisecond

type dueProbe struct {
	at time.Time
	p  *probe
}

func (d dueProbe) before(o dueProbe) bool { return d.at.Before(o.at) }

// wakeSlack is how early a turn may start so that turns due close together
// share one wakeup: each wakeup cost the Go runtime and the kernel about as
// much as a probe under emulation, and keepalived, whose checks fire in
// bursts, wakes once for many. Early, never late: a turn still ends by its
// due time plus the timeout, so eviction keeps its bound. A twentieth of
// the interval, at most 50 ms.
func wakeSlack(interval time.Duration) time.Duration {
	return min(interval/20, 50*time.Millisecond)
}

// flight is a probe's connect under way; a probe has one at most, as its
// turns never overlap, so it lives in the probe and costs no allocation.
type flight struct {
	fd         int
	gen        int32 // tells this connect from any earlier one, of the probe or on the fd
	due, start time.Time
	live       bool
}

// expiry is when a flight's timeout runs out. An entry whose flight has
// landed, or been followed by another, is stale and skipped.
type expiry struct {
	at  time.Time
	p   *probe
	gen int32
}

func (e expiry) before(o expiry) bool { return e.at.Before(o.at) }

func newConnectLoop(s *Scheduler) (*connectLoop, error) {
	fail := func(call string, err error) (*connectLoop, error) {
		return nil, fmt.Errorf("checks: connect loop: %w", os.NewSyscallError(call, err))
	}
	epfd, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
	if err != nil {
		return fail("epoll_create1", err)
	}
	park, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
	if err != nil {
		syscall.Close(epfd)
		return fail("epoll_create1", err)
	}
	// Non-blocking, so os.NewFile hands it to the netpoller.
	if err := syscall.SetNonblock(park, true); err != nil {
		syscall.Close(park)
		syscall.Close(epfd)
		return fail("fcntl", err)
	}
	wake, _, errno := syscall.Syscall(syscall.SYS_EVENTFD2, 0, syscall.O_CLOEXEC|syscall.O_NONBLOCK, 0)
	if errno != 0 {
		syscall.Close(park)
		syscall.Close(epfd)
		return fail("eventfd2", errno)
	}
	l := &connectLoop{s: s, epfd: epfd, park: park, ep: os.NewFile(uintptr(park), "epoll"), wake: int(wake), alarm: -1,
		events: make([]syscall.EpollEvent, eventBatch), hold: s.holdLoop}
	ev := syscall.EpollEvent{Events: syscall.EPOLLIN, Fd: int32(wake)}
	if err := syscall.EpollCtl(epfd, syscall.EPOLL_CTL_ADD, int(wake), &ev); err != nil {
		l.close()
		return fail("epoll_ctl", err)
	}
	if _, real := s.clock.(realClock); real {
		alarm, _, errno := syscall.Syscall(syscall.SYS_TIMERFD_CREATE, clockMonotonic, syscall.O_CLOEXEC|syscall.O_NONBLOCK, 0)
		if errno != 0 {
			l.close()
			return fail("timerfd_create", errno)
		}
		l.alarm = int(alarm)
		ev = syscall.EpollEvent{Events: syscall.EPOLLIN, Fd: int32(alarm)}
		if err := syscall.EpollCtl(epfd, syscall.EPOLL_CTL_ADD, l.alarm, &ev); err != nil {
			l.close()
			return fail("epoll_ctl", err)
		}
	}
	if l.raw, err = l.ep.SyscallConn(); err != nil {
		l.close()
		return nil, fmt.Errorf("checks: connect loop: %w", err)
	}
	return l, nil
}

func (l *connectLoop) close() {
	if l.alarm >= 0 {
		syscall.Close(l.alarm)
	}
	if l.clockAlarm != nil {
		l.clockAlarm.Stop()
	}
	syscall.Close(l.wake)
	l.ep.Close()
	syscall.Close(l.epfd)
}

const clockMonotonic = 1 // CLOCK_MONOTONIC, which the syscall package lacks

// setAlarm makes the alarm ring at t, or never for zero t.
func (l *connectLoop) setAlarm(t, now time.Time) {
	if !l.alarmAt.IsZero() && !l.alarmAt.After(now) {
		l.alarmAt = time.Time{} // it has rung, or is about to: set it again
	}
	if t.Equal(l.alarmAt) {
		return
	}
	if l.alarm < 0 {
		if l.clockAlarm != nil {
			l.clockAlarm.Stop()
			l.clockAlarm = nil
		}
		if !t.IsZero() {
			l.clockAlarm = l.s.clock.AfterFunc(t, l.poke)
		}
		l.alarmAt = t
		return
	}
	var spec [4]int64 // struct itimerspec: interval, then value; zero disarms
	if !t.IsZero() {
		d := max(t.Sub(now), time.Microsecond)
		spec[2], spec[3] = int64(d/time.Second), int64(d%time.Second)
	}
	_, _, _ = syscall.RawSyscall6(syscall.SYS_TIMERFD_SETTIME, uintptr(l.alarm), 0, uintptr(unsafe.Pointer(&spec)), 0, 0, 0)
	l.alarmAt = t
}

// arm queues p's turn at due. Safe from any goroutine.
func (l *connectLoop) arm(p *probe, due time.Time) {
	l.mu.Lock()
	l.pending = append(l.pending, dueProbe{due, p})
	first := len(l.pending) == 1
	l.mu.Unlock()
	if first {
		l.poke()
	}
}

// stop makes run close every connect under way and return.
func (l *connectLoop) stop() {
	l.mu.Lock()
	l.stopped = true
	l.mu.Unlock()
	l.poke()
}

func (l *connectLoop) poke() {
	one := [8]byte{1}
	_, _ = syscall.Write(l.wake, one[:])
}

// run is the loop. It returns after stop, with every socket closed.
//
// A turn of the loop reads every event the kernel has for it before it
// judges any connect: when the loop runs late (a busy CPU, a stopped
// process, a burst of turns that took long to start), handshakes that
// completed meanwhile are waiting there as events, and must count as what
// they are, not as timeouts. expire then asks each socket it would fail
// whether its handshake is over after all.
func (l *connectLoop) run() {
	defer l.close()
	n := 0 // events read by the last wait, not yet handled
	for {
		stopped, err := l.harvest(n)
		if err != nil {
			l.s.log.Error("connect loop failed; connect checks stop", "err", err)
		}
		if stopped || err != nil {
			l.abandon()
			return
		}
		now := l.s.clock.Now()
		l.expire(now)
		more := l.startDue(now)
		l.flush(now)
		if !more {
			l.setAlarm(l.nextWake(), now)
		}
		if l.hold != nil {
			l.hold(l, now)
		}
		if more {
			n = 0 // no wait: on with the burst once this turn's events are read
			continue
		}
		var errno syscall.Errno
		err = l.sleep(func() bool {
			n, errno = rawEpollPoll(l.epfd, l.events)
			return n > 0 || errno != 0 && errno != syscall.EINTR
		})
		if err == nil && errno != 0 && errno != syscall.EINTR {
			err = os.NewSyscallError("epoll_pwait", errno)
		}
		if err != nil {
			l.s.log.Error("connect loop failed; connect checks stop", "err", err)
			l.abandon()
			return
		}
	}
}

// sleep parks the loop until poll reports events: epfd joins park, which
// the netpoller watches, only for as long as the loop sleeps.
func (l *connectLoop) sleep(poll func() bool) error {
	ev := syscall.EpollEvent{Events: syscall.EPOLLIN, Fd: int32(l.epfd)}
	if errno := rawEpollCtl(l.park, syscall.EPOLL_CTL_ADD, l.epfd, &ev); errno != 0 {
		return os.NewSyscallError("epoll_ctl", errno)
	}
	err := l.raw.Read(func(uintptr) bool { return poll() })
	if errno := rawEpollCtl(l.park, syscall.EPOLL_CTL_DEL, l.epfd, &ev); errno != 0 && err == nil {
		err = os.NewSyscallError("epoll_ctl", errno)
	}
	return err
}

// harvest handles the n events the last wait read, then reads and handles
// events until the kernel has none left. It reports stop.
func (l *connectLoop) harvest(n int) (stopped bool, err error) {
	for {
		for _, ev := range l.events[:n] {
			switch ev.Fd {
			case int32(l.alarm):
				var buf [8]byte
				_, _, _ = syscall.RawSyscall(syscall.SYS_READ, uintptr(l.alarm), uintptr(unsafe.Pointer(&buf[0])), 8)
				l.alarmAt = time.Time{}
			case int32(l.wake):
				stopped = l.drainWake() || stopped
			default:
				l.ready(ev)
			}
		}
		if stopped || n < len(l.events) {
			return stopped, nil
		}
		var errno syscall.Errno
		if n, errno = rawEpollPoll(l.epfd, l.events); errno != 0 && errno != syscall.EINTR {
			return false, os.NewSyscallError("epoll_pwait", errno)
		}
	}
}

// drainWake takes the arms queued by other goroutines and reports stop.
func (l *connectLoop) drainWake() (stopped bool) {
	var buf [8]byte
	_, _ = syscall.Read(l.wake, buf[:])
	l.mu.Lock()
	pending := l.pending
	l.pending = nil
	stopped = l.stopped
	l.mu.Unlock()
	for _, d := range pending {
		l.due.Push(d)
	}
	return stopped
}

// nextWake is when the loop must wake without an event: the next turn,
// expiry or flush. Zero means never.
func (l *connectLoop) nextWake() time.Time {
	var next time.Time
	earliest := func(t time.Time) {
		if next.IsZero() || t.Before(next) {
			next = t
		}
	}
	if len(l.due) > 0 {
		earliest(l.due[0].at)
	}
	if len(l.timeouts) > 0 {
		earliest(l.timeouts[0].at)
	}
	if len(l.batch) > 0 {
		earliest(l.batchSince.Add(flushWindow))
	}
	return next
}

// startBudget bounds how long one turn of the loop spends starting
// connects. When thousands are due at once (after a stop, or with more
// checks than the CPUs can start in time; under emulation a connect costs
// about a millisecond), the loop reads the handshakes that completed,
// judges timeouts and hands results over between slices of the burst,
// rather than holding every socket and result until all are started.
const startBudget = 10 * time.Millisecond

// startDue starts the probes whose turn has come or is within its slack,
// for up to startBudget. more reports that some are still due.
func (l *connectLoop) startDue(now time.Time) (more bool) {
	for len(l.due) > 0 && !l.due[0].at.After(now.Add(wakeSlack(l.due[0].p.interval))) {
		d := l.due.Pop()
		if l.s.dropped(d.p) {
			continue
		}
		if start := l.begin(d.p, d.at); start.Sub(now) >= startBudget {
			return len(l.due) > 0 && !l.due[0].at.After(now.Add(wakeSlack(l.due[0].p.interval)))
		}
	}
	return false
}

// begin starts p's turn due at due and returns when it started.
func (l *connectLoop) begin(p *probe, due time.Time) time.Time {
	c := p.tcp.connectOnly
	fd, err := c.open()
	if err != nil {
		start := l.s.clock.Now()
		l.s.turnStarted(p, due, start)
		l.finish(p, due, start, err)
		return start
	}
	done, err := c.start(fd)
	// The clock is read once connect has returned, so the timeout runs
	// from when the SYN went out, never from before a delay in the loop.
	start := l.s.clock.Now()
	l.s.turnStarted(p, due, start)
	if done {
		rawClose(fd)
		l.finish(p, due, start, err)
		return start
	}
	l.gen++
	ev := syscall.EpollEvent{Events: syscall.EPOLLOUT, Fd: int32(fd), Pad: l.gen}
	if errno := rawEpollCtl(l.epfd, syscall.EPOLL_CTL_ADD, fd, &ev); errno != 0 {
		rawClose(fd)
		l.finish(p, due, start, os.NewSyscallError("epoll_ctl", errno))
		return start
	}
	p.flight = flight{fd: fd, gen: l.gen, due: due, start: start, live: true}
	if fd >= len(l.byFD) {
		l.byFD = append(l.byFD, make([]*probe, fd+1-len(l.byFD))...)
	}
	l.byFD[fd] = p
	l.inFlight++
	l.timeouts.Push(expiry{start.Add(p.timeout), p, l.gen})
	return start
}

// ready handles a socket whose handshake may be over.
func (l *connectLoop) ready(ev syscall.EpollEvent) {
	if int(ev.Fd) >= len(l.byFD) {
		return
	}
	p := l.byFD[ev.Fd]
	if p == nil || !p.flight.live || p.flight.gen != ev.Pad {
		return
	}
	var err error
	if ev.Events&(syscall.EPOLLERR|syscall.EPOLLHUP) != 0 || ev.Events&syscall.EPOLLOUT == 0 {
		var pending bool
		if pending, err = outcome(p.flight.fd); pending {
			return
		}
	}
	// Writable without an error: a connecting socket turns writable only
	// once established, so no getsockopt is needed.
	l.land(p, err)
}

// expire ends the connects whose timeout has passed. It asks each socket
// how its handshake stands rather than trusting that an event would have
// said so: a handshake that completed, or was refused, before the loop got
// round to looking is that result, and only one still under way after its
// whole timeout on the wire is a timeout.
func (l *connectLoop) expire(now time.Time) {
	for len(l.timeouts) > 0 && !l.timeouts[0].at.After(now) {
		e := l.timeouts.Pop()
		if p := e.p; p.flight.live && p.flight.gen == e.gen {
			if pending, err := outcome(p.flight.fd); !pending {
				l.land(p, err)
			} else {
				l.land(p, context.DeadlineExceeded)
			}
		}
	}
}

// land ends a flight: its socket closes (a FIN after a success, as
// keepalived's checker sends) and its result goes out.
func (l *connectLoop) land(p *probe, err error) {
	f := &p.flight
	f.live = false
	l.byFD[f.fd] = nil
	l.inFlight--
	rawClose(f.fd)
	l.finish(p, f.due, f.start, err)
}

// finish queues a result for apply and arms the probe's next turn.
func (l *connectLoop) finish(p *probe, due, start time.Time, err error) {
	end := l.s.clock.Now()
	if l.s.dropped(p) {
		return
	}
	r := p.tcp.connectResult(context.Background(), err)
	r.Duration = end.Sub(start)
	next, skipped := nextTurn(due, start, end, p.interval)
	l.s.turnDue(p, next)
	if len(l.batch) == 0 {
		l.batchSince = end
	}
	l.urgent = l.urgent || !r.Healthy
	l.batch = append(l.batch, finished{probe: p, due: due, start: start, end: end, skipped: skipped, result: r})
	l.due.Push(dueProbe{next, p})
}

// flush hands the results gathered to apply in one send: at once when one
// is a failure, else once the oldest has waited flushWindow.
func (l *connectLoop) flush(now time.Time) {
	if len(l.batch) > 0 && (l.urgent || len(l.batch) >= 1024 || now.Sub(l.batchSince) >= flushWindow) {
		l.s.results <- l.batch
		l.batch, l.urgent = nil, false
	}
}

// abandon closes every socket under way: the scheduler is stopping.
func (l *connectLoop) abandon() {
	for fd, p := range l.byFD {
		if p != nil {
			p.flight.live = false
			rawClose(fd)
		}
	}
	clear(l.byFD)
	l.inFlight = 0
}
