package director

import "github.com/prometheus/client_golang/prometheus"

// faultSources are the words a local fault's reason starts with, so each
// has a series from the start; another word gets its own series while it
// lasts.
var faultSources = []string{"checks", "fds", "memory", "probes"}

func newReleasedVec() *prometheus.CounterVec {
	v := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "lvsd_eviction_guard_released_total",
		Help: "Held failed checks the eviction guard let go of, by outcome: recovered (the checks called the server healthy; it never left), " +
			"answered (the server answered with a failure: applied), applied (not a mass failure, or still failing once lvsd recovered), expired (max_hold).",
	}, []string{"outcome"})
	for _, o := range []string{outcomeRecovered, outcomeAnswered, outcomeApplied, outcomeExpired} {
		v.WithLabelValues(o)
	}
	return v
}

func (m *metrics) released(outcome string) { m.releasedVec.WithLabelValues(outcome).Inc() }

// guardCollector reads the guard's state at scrape time.
type guardCollector struct {
	d                   *Director
	held, active, fault *prometheus.Desc
}

func newGuardCollector() *guardCollector {
	return &guardCollector{
		held:   prometheus.NewDesc("lvsd_eviction_guard_held", "Failed checks the eviction guard holds now: their servers stay in the table.", nil, nil),
		active: prometheus.NewDesc("lvsd_eviction_guard_active", "1 while the eviction guard holds at least one failed check.", nil, nil),
		fault: prometheus.NewDesc("lvsd_local_fault", "1 while lvsd counts itself in trouble, by source: checks (behind schedule), fds, memory, probes (a probe had no local resources).",
			[]string{"source"}, nil),
	}
}

func (c *guardCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.held
	ch <- c.active
	ch <- c.fault
}

func (c *guardCollector) Collect(ch chan<- prometheus.Metric) {
	why, faulty := c.d.localFault()
	c.d.mu.Lock()
	c.d.observeLocked(c.d.now(), why, faulty)
	held, fault := len(c.d.guard.held), c.d.guard.fault
	c.d.mu.Unlock()
	gauge := func(desc *prometheus.Desc, v int, labels ...string) {
		ch <- prometheus.MustNewConstMetric(desc, prometheus.GaugeValue, float64(v), labels...)
	}
	gauge(c.held, held)
	gauge(c.active, min(held, 1))
	source := ""
	if fault != "" {
		source = faultSource(fault)
	}
	known := false
	for _, s := range faultSources {
		on := 0
		if s == source {
			on, known = 1, true
		}
		gauge(c.fault, on, s)
	}
	if source != "" && !known {
		gauge(c.fault, 1, source)
	}
}

// faultSource is the first word of a fault's reason ("fds: 950 of 1024
// open" -> "fds"), or "other".
func faultSource(reason string) string {
	for i, r := range reason {
		switch {
		case r == ':':
			if i > 0 {
				return reason[:i]
			}
			return "other"
		case r >= 'a' && r <= 'z' || r == '_':
		default:
			return "other"
		}
	}
	return "other"
}
