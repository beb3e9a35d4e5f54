package checks

import "time"

// Clock is the scheduler's source of time, replaceable in tests.
type Clock interface {
	Now() time.Time
	// NewTimer returns a stopped timer.
	NewTimer() Timer
}

// Timer fires once at an absolute time. Absolute times (rather than
// durations) let a fake clock fire a timer armed late for a time already
// past, so tests need no sleeps and have no races with the dispatcher.
type Timer interface {
	C() <-chan time.Time
	// ResetAt arms the timer for at, dropping any earlier expiry not yet
	// received.
	ResetAt(at time.Time)
	Stop()
}

type realClock struct{}

func (realClock) Now() time.Time { return time.Now() }

func (realClock) NewTimer() Timer {
	t := time.NewTimer(time.Hour)
	t.Stop()
	return realTimer{t}
}

// realTimer relies on Go 1.23+ timers, whose Reset discards a stale expiry.
type realTimer struct{ t *time.Timer }

func (r realTimer) C() <-chan time.Time  { return r.t.C }
func (r realTimer) ResetAt(at time.Time) { r.t.Reset(time.Until(at)) }
func (r realTimer) Stop()                { r.t.Stop() }
