package anycast

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the announcer's series. The BGP ones are read from BIRD at
// scrape time, within birdScrapeTimeout, so they are never older than the
// scrape and cost nothing between scrapes.
type metrics struct {
	announced   *prometheus.GaugeVec
	transitions *prometheus.CounterVec
	bird        func() BIRD

	birdUp, sessionUp, exported *prometheus.Desc
}

const birdScrapeTimeout = 2 * time.Second

func newMetrics() *metrics {
	return &metrics{
		announced: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "lvsd_announce_vip_announced", Help: "1 while this director announces the VIP (it is on the announce device, for BIRD to export), 0 while withdrawn.",
		}, []string{"vip"}),
		transitions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "lvsd_announce_transitions_total", Help: "Announcements and withdrawals of each VIP, by state entered (announced, withdrawn).",
		}, []string{"vip", "to"}),
		birdUp: prometheus.NewDesc("lvsd_bird_up",
			"1 if BIRD answered on announce.bird_socket at this scrape.", nil, nil),
		sessionUp: prometheus.NewDesc("lvsd_bgp_session_up",
			"1 while BIRD reports the BGP session established, by BIRD protocol name.", []string{"protocol"}, nil),
		exported: prometheus.NewDesc("lvsd_bgp_exported_routes",
			"Routes BIRD exports to the BGP neighbour (the VIPs it announces), by BIRD protocol name.", []string{"protocol"}, nil),
	}
}

func (m *metrics) set(vip string, on bool) {
	v := 0.0
	if on {
		v = 1
	}
	m.announced.WithLabelValues(vip).Set(v)
}

func (m *metrics) transition(vip string, announced bool) {
	to := "withdrawn"
	if announced {
		to = "announced"
	}
	m.transitions.WithLabelValues(vip, to).Inc()
}

func (m *metrics) forget(vip string) {
	m.announced.DeleteLabelValues(vip)
	m.transitions.DeletePartialMatch(prometheus.Labels{"vip": vip})
}

// Describe implements prometheus.Collector.
func (m *metrics) Describe(ch chan<- *prometheus.Desc) {
	m.announced.Describe(ch)
	m.transitions.Describe(ch)
	ch <- m.birdUp
	ch <- m.sessionUp
	ch <- m.exported
}

// Collect implements prometheus.Collector; it asks BIRD now.
func (m *metrics) Collect(ch chan<- prometheus.Metric) {
	m.announced.Collect(ch)
	m.transitions.Collect(ch)
	b := m.bird()
	if b.Socket == "" {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), birdScrapeTimeout)
	defer cancel()
	sessions, err := Sessions(ctx, b)
	if err != nil && sessions == nil {
		ch <- prometheus.MustNewConstMetric(m.birdUp, prometheus.GaugeValue, 0)
		return
	}
	ch <- prometheus.MustNewConstMetric(m.birdUp, prometheus.GaugeValue, 1)
	for _, s := range sessions {
		up := 0.0
		if s.Established() {
			up = 1
		}
		ch <- prometheus.MustNewConstMetric(m.sessionUp, prometheus.GaugeValue, up, s.Name)
		ch <- prometheus.MustNewConstMetric(m.exported, prometheus.GaugeValue, float64(len(s.Exported)), s.Name)
	}
}

// Register adds the announcer's metrics to reg.
func (a *Announcer) Register(reg prometheus.Registerer) error { return reg.Register(a.metrics) }
