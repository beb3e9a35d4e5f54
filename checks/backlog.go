package checks

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// When lvsd cannot start probes on time (its CPUs are busy forwarding
// traffic, a neighbour hogs them, it was stopped, or there are more checks
// than it can run), it probes less often, as keepalived's checker does
// (whose next check is simply due a delay_loop after the last), instead of
// running every turn late and piling them up, and says so through Backlog,
// the lvsd_check_behind_schedule gauges and lvsd status. Its lateness is
// never a verdict on a server: see expire (connect checks) and
// judgeTimeout (every other check).

// Backlog says how far the checks are behind their schedule.
type Backlog struct {
	// Behind counts the checks lvsd is late with by more than their
	// tolerance (lateTolerance): their latest turn started late, or their
	// next turn is overdue, or their turn under way is past its timeout
	// and not yet judged.
	Behind int
	// Worst is how late the most-behind of them is.
	Worst time.Duration
	// Checks counts every check (a probe shared by several targets once).
	Checks int
}

// lateTolerance is how late a turn may start and still be on time: the
// same margin as a connect check may start early (wakeSlack), a twentieth
// of the interval, at most 50 ms. A turn later than that stretches the
// check's interval by the excess (nextTurn) and counts as behind.
func lateTolerance(interval time.Duration) time.Duration { return wakeSlack(interval) }

// nextTurn is when a probe's next turn is due after the turn due at due,
// which started at start and ended at end. On time, the probe keeps its
// phase: due plus whole intervals. Late, its phase slides by the lateness
// beyond the tolerance, so the next turn comes about an interval after
// this one started: a loop that cannot keep up makes each check's
// interval longer by how far it is behind (keepalived's checker behaves
// the same way), rather than starting every turn late and catching up on
// turns it has no time for. skipped counts the turns missed because a run
// outlasted its interval.
func nextTurn(due, start, end time.Time, interval time.Duration) (next time.Time, skipped int) {
	if late := start.Sub(due) - lateTolerance(interval); late > 0 {
		due = due.Add(late)
	}
	return nextDue(due, interval, end)
}

// turnStarted records that p's turn due at due started at start.
func (s *Scheduler) turnStarted(p *probe, due, start time.Time) {
	p.lastLate.Store(int64(start.Sub(due)))
	p.actBy.Store(int64(start.Add(p.timeout).Sub(s.epoch)))
}

// turnDue records that p's next turn is due at next.
func (s *Scheduler) turnDue(p *probe, next time.Time) {
	p.actBy.Store(int64(next.Sub(s.epoch)))
}

// Backlog returns how far the checks are behind their schedule now. It
// takes the state lock, never one a probe's start needs, and reads two
// atomics per check.
func (s *Scheduler) Backlog() Backlog {
	now := s.clock.Now().Sub(s.epoch)
	s.mu.Lock()
	defer s.mu.Unlock()
	b := Backlog{Checks: len(s.probes)}
	for _, p := range s.probes {
		late := max(time.Duration(p.lastLate.Load()), now-time.Duration(p.actBy.Load()))
		if late > lateTolerance(p.interval) {
			b.Behind++
			b.Worst = max(b.Worst, late)
		}
	}
	return b
}

// backlogCollector exports Backlog at each scrape.
type backlogCollector struct {
	s             *Scheduler
	behind, worst *prometheus.Desc
}

func newBacklogCollector(s *Scheduler) *backlogCollector {
	return &backlogCollector{
		s: s,
		behind: prometheus.NewDesc("lvsd_check_behind_schedule",
			"Checks whose latest turn started late, or whose next turn is overdue: lvsd is probing them less often than configured until it catches up.", nil, nil),
		worst: prometheus.NewDesc("lvsd_check_behind_schedule_seconds",
			"How late the most-behind check is (0 when none is behind).", nil, nil),
	}
}

func (c *backlogCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.behind
	ch <- c.worst
}

func (c *backlogCollector) Collect(ch chan<- prometheus.Metric) {
	b := c.s.Backlog()
	ch <- prometheus.MustNewConstMetric(c.behind, prometheus.GaugeValue, float64(b.Behind))
	ch <- prometheus.MustNewConstMetric(c.worst, prometheus.GaugeValue, b.Worst.Seconds())
}
