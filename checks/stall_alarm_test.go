package checks

import (
	"testing"
	"time"
)

// The alarm rings once per set, through the netpoller, and not after close.
func TestPollAlarm(t *testing.T) {
	rings := make(chan time.Time, 10)
	a, err := newPollAlarm(func() { rings <- time.Now() })
	if err != nil {
		t.Skipf("no timerfd: %v", err)
	}
	for range 2 {
		set := time.Now()
		if !a.set(5 * time.Millisecond) {
			t.Fatal("set failed")
		}
		select {
		case at := <-rings:
			if at.Sub(set) < 5*time.Millisecond {
				t.Errorf("rang after %v, set for 5ms", at.Sub(set))
			}
		case <-time.After(10 * time.Second):
			t.Fatal("the alarm never rang")
		}
	}
	a.close()
	if a.set(time.Millisecond) {
		t.Error("set on a closed alarm")
	}
	select {
	case <-rings:
		t.Error("rang after close")
	case <-time.After(50 * time.Millisecond):
	}
}

// With the real clock, the stall watch ticks through its alarm and sees a
// probe's goroutine stalled for longer than a tick (here: blocked, as a
// goroutine the netpoller readied waits behind a busy run queue).
func TestStallWatchOnTheRealClock(t *testing.T) {
	w := &stallWatch{clock: realClock{}}
	start := time.Now()
	w.enter(start)
	defer w.close()
	time.Sleep(50 * time.Millisecond)
	if w.alarm == nil {
		t.Fatal("no netpoll alarm on the real clock")
	}
	w.leave()
	if worst := w.worst(start, time.Now()); worst > stallTick {
		t.Logf("a stall of %v seen on an idle test (a loaded machine)", worst)
	}
}
