package checks

import (
	"errors"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the scheduler's Prometheus collectors. A nil *metrics (no
// registerer given) makes every method a no-op.
type metrics struct {
	up          *prometheus.GaugeVec
	duration    *prometheus.HistogramVec
	transitions *prometheus.CounterVec
	lastFailure *prometheus.GaugeVec
	lag         prometheus.Histogram
	probes      *prometheus.CounterVec
	skipped     prometheus.Counter
	// probesOK and probesFailed are probes' two series, resolved once:
	// a label lookup hashes and locks on every one of thousands of
	// probes a second.
	probesOK, probesFailed, probesInconclusive prometheus.Counter
}

// RegisterMetrics creates the scheduler's metrics on reg. Call it before
// the first Update.
func (s *Scheduler) RegisterMetrics(reg prometheus.Registerer) error {
	m := &metrics{
		up: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "lvsd_realserver_up",
			Help: "1 when every health check of the real server passes (rise/fall applied), else 0.",
		}, []string{"service", "realserver"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "lvsd_check_duration_seconds",
			Help:    "Duration of health check probes.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2.5, 11),
		}, []string{"service", "realserver", "type"}),
		transitions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "lvsd_check_transitions_total",
			Help: "Health transitions of real servers, by the state entered.",
		}, []string{"service", "realserver", "to"}),
		lastFailure: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "lvsd_check_last_failure_info",
			Help: "Class of the most recent failed probe of the real server (value always 1).",
		}, []string{"service", "realserver", "reason"}),
		lag: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "lvsd_check_schedule_lag_seconds",
			Help:    "Delay between a probe's due time and its start (0 for a probe started early to share a wakeup); a late start stretches the check's interval (lvsd_check_behind_schedule).",
			Buckets: prometheus.ExponentialBuckets(0.0001, 3, 10),
		}),
		probes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "lvsd_check_probes_total",
			Help: "Probes run, by result: ok, fail, or inconclusive (timed out while lvsd itself was late; not counted towards rise or fall).",
		}, []string{"result"}),
		skipped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "lvsd_check_probes_skipped_total",
			Help: "Turns of a probe skipped because its previous run outlasted the interval.",
		}),
	}
	m.probesOK, m.probesFailed = m.probes.WithLabelValues("ok"), m.probes.WithLabelValues("fail")
	m.probesInconclusive = m.probes.WithLabelValues("inconclusive")
	var errs []error
	for _, c := range []prometheus.Collector{m.up, m.duration, m.transitions, m.lastFailure, m.lag, m.probes, m.skipped, newBacklogCollector(s)} {
		errs = append(errs, reg.Register(c))
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.metrics = m
	for _, t := range s.targets {
		m.track(t)
	}
	return nil
}

func (m *metrics) track(t *target) {
	if m == nil {
		return
	}
	up := 0.0
	if t.health == Up {
		up = 1
	}
	m.up.WithLabelValues(t.Service, t.RealServer).Set(up)
}

func (m *metrics) forget(t *target) {
	if m == nil {
		return
	}
	labels := prometheus.Labels{"service": t.Service, "realserver": t.RealServer}
	m.up.Delete(labels)
	m.duration.DeletePartialMatch(labels)
	m.transitions.DeletePartialMatch(labels)
	m.lastFailure.DeletePartialMatch(labels)
}

func (m *metrics) transition(t *target) {
	if m == nil {
		return
	}
	m.transitions.WithLabelValues(t.Service, t.RealServer, t.health.String()).Inc()
	m.track(t)
}

func (m *metrics) probed(lag time.Duration, skipped int, r Result, inconclusive bool) {
	if m == nil {
		return
	}
	m.lag.Observe(lag.Seconds())
	if skipped > 0 {
		m.skipped.Add(float64(skipped))
	}
	switch {
	case inconclusive:
		m.probesInconclusive.Inc()
	case r.Healthy:
		m.probesOK.Inc()
	default:
		m.probesFailed.Inc()
	}
}

// observed records one result as seen by one target: its duration, and for
// a failure its reason class (free text never becomes a label).
func (m *metrics) observed(t *target, sl *slot, r Result) {
	if m == nil {
		return
	}
	// A slot lives no longer than its target's series (Update builds new
	// slots and forgets the series of targets it drops), so the series
	// resolved on its first result serves all the others.
	if sl.duration == nil {
		sl.duration = m.duration.WithLabelValues(t.Service, t.RealServer, sl.probe.typ)
	}
	sl.duration.Observe(r.Duration.Seconds())
	if r.Healthy {
		return
	}
	class := ReasonClass(r.Reason)
	if class == t.lastFailureClass {
		return
	}
	if t.lastFailureClass != "" {
		m.lastFailure.DeleteLabelValues(t.Service, t.RealServer, t.lastFailureClass)
	}
	t.lastFailureClass = class
	m.lastFailure.WithLabelValues(t.Service, t.RealServer, class).Set(1)
}
