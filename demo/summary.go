package main

import (
	"fmt"
	"net/netip"
	"time"
)

// measurements are the numbers the summary repeats.
type measurements struct {
	election, ready                         time.Duration
	spread                                  string
	evictDown, evictOut                     time.Duration
	restoreUp, restoreIn                    time.Duration
	takeover, takeoverExpected, takeoverGap time.Duration
	takeoverFailed                          int
	preempt, preemptGap                     time.Duration
	preemptFailed                           int
	settled, crashAt                        time.Time
	flaps                                   int
	adverts                                 *advertLog
	master                                  netip.Addr // the first director's address
}

func (m *measurements) print(n *narrator) {
	gap := func(d time.Duration, failed int) string {
		switch {
		case failed == 0:
			return "none"
		case d < 0:
			return fmt.Sprintf("never recovered (%d queries failed)", failed)
		}
		return fmt.Sprintf("%s (%d queries failed)", secs(d), failed)
	}
	lines := []string{
		"SUMMARY",
		fmt.Sprintf("  election           master after %s, all servers in the table after %s", secs(m.election), secs(m.ready)),
		fmt.Sprintf("  spread             %s", m.spread),
	}
	if m.evictDown > 0 {
		lines = append(lines, fmt.Sprintf("  eviction           down after %s, out of the table after %s", secs(m.evictDown), secs(m.evictOut)))
	}
	if m.restoreUp > 0 {
		lines = append(lines, fmt.Sprintf("  restore            up after %s, back in the table after %s", secs(m.restoreUp), secs(m.restoreIn)))
	}
	if m.takeover > 0 {
		lines = append(lines, fmt.Sprintf("  takeover (SIGKILL) backup master after %s (Master_Down_Interval %s after the last advert); client gap %s", secs(m.takeover), secs(m.takeoverExpected), gap(m.takeoverGap, m.takeoverFailed)))
	}
	if m.preempt > 0 {
		lines = append(lines, fmt.Sprintf("  preempt            old master back after %s; client gap %s", secs(m.preempt), gap(m.preemptGap, m.preemptFailed)))
	}
	if m.flaps > 0 {
		times := fmt.Sprintf("%d times", m.flaps)
		if m.flaps == 1 {
			times = "once"
		}
		lines = append(lines, fmt.Sprintf("  unplanned          the backup took the VIP %s while the master was alive (the master's adverts came over 3 intervals late)", times))
	}
	if m.adverts != nil && !m.settled.IsZero() {
		end := m.crashAt
		if end.IsZero() {
			end = time.Now()
		}
		if median, worst, at, count := m.adverts.gaps(m.master, m.settled, end); count > 1 {
			lines = append(lines, fmt.Sprintf("  adverts            the client heard %d from the master between the election and the crash: gaps median %s, largest %s (ending %s)",
				count, median.Round(time.Millisecond), worst.Round(time.Millisecond), at.Format("15:04:05.000")))
		}
	}
	for _, line := range lines {
		n.say("%s", line)
	}
}

// countFlaps counts the times the backup became master while the master
// was alive, after the first election settled: outside the crash, that only
// happens when adverts come late.
func countFlaps(l *lab, m *measurements) int {
	b := l.dirs[1]
	flaps := 0
	l.journal.mu.Lock()
	defer l.journal.mu.Unlock()
	for _, e := range l.journal.events {
		if isFlap(e, b, m) {
			flaps++
		}
	}
	return flaps
}

// isFlap reports whether e is the backup b taking the VIP while the master
// was alive: after the first election, and not the takeover the crash caused.
func isFlap(e event, b *director, m *measurements) bool {
	if m.settled.IsZero() || e.Time.Before(m.settled) || !e.isVRRP() || e.Director != b.name || e.To != "master" {
		return false
	}
	return m.crashAt.IsZero() || e.Time.Before(m.crashAt) || !e.Time.Before(m.crashAt.Add(5*time.Second))
}

// judge returns how many of t's failed requests are not explained by an
// unplanned takeover, and a note on those that are.
func (l *lab) judge(t tally, m *measurements) (unexplained int, note string) {
	bad := l.unexplained(t.failures, m)
	if excused := len(t.failures) - len(bad); excused > 0 {
		note = fmt.Sprintf(" (%d of them while %s held the VIP by mistake, see \"unplanned\" below)", excused, l.dirs[1].name)
	}
	return len(bad), note
}

// unexplained drops the failures an unplanned takeover explains: a request
// that ran while the backup took the VIP by mistake (or up to a second
// after) may break, because connections made through the wrong director do.
// Those takeovers are the summary's "unplanned" line; they come from late
// adverts, not from the pool.
func (l *lab) unexplained(failures []result, m *measurements) []result {
	b := l.dirs[1]
	var out []result
	for _, r := range failures {
		end := r.end
		if end.IsZero() {
			end = r.start.Add(streamTimeout)
		}
		_, flap := l.journal.find(r.start.Add(-time.Second), func(e event) bool {
			return isFlap(e, b, m) && !e.Time.After(end)
		})
		if !flap {
			out = append(out, r)
		}
	}
	return out
}

// timerLateness sleeps 10 ms at a time for d and returns the worst lateness.
func timerLateness(d time.Duration) time.Duration {
	var worst time.Duration
	end := time.Now().Add(d)
	for time.Now().Before(end) {
		t := time.Now()
		time.Sleep(10 * time.Millisecond)
		worst = max(worst, time.Since(t)-10*time.Millisecond)
	}
	return worst
}
