package checks

import "time"

// Clock is the scheduler's source of time, replaceable in tests.
type Clock interface {
	Now() time.Time
	// AfterFunc calls f in its own goroutine at time at (at once if at has
	// passed). Absolute times let a fake clock fire a timer armed late for
	// a time already past, so tests need neither sleeps nor luck.
	AfterFunc(at time.Time, f func()) Timer
}

// Timer is a pending AfterFunc call.
type Timer interface {
	// Stop cancels the call if it has not started.
	Stop() bool
}

type realClock struct{}

func (realClock) Now() time.Time { return time.Now() }

func (realClock) AfterFunc(at time.Time, f func()) Timer {
	return time.AfterFunc(time.Until(at), f)
}
