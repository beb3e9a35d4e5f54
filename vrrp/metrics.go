package vrrp

import "github.com/prometheus/client_golang/prometheus"

// metrics are the vrrp collectors. A nil *metrics records nothing, so unit
// tests need no registry.
type metrics struct {
	state          *prometheus.GaugeVec
	transitions    *prometheus.CounterVec
	sentTotal      *prometheus.CounterVec
	receivedTotal  *prometheus.CounterVec
	drops          *prometheus.CounterVec
	masterPriority *prometheus.GaugeVec
	announcements  *prometheus.CounterVec
	authAccepted   *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		state: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "lvsd_vrrp_state",
			Help: "VRRP instance state: 0 init, 1 backup, 2 master, 3 fault.",
		}, []string{"vrrp_instance"}),
		transitions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "lvsd_vrrp_transitions_total",
			Help: "VRRP state transitions by new state.",
		}, []string{"vrrp_instance", "to"}),
		sentTotal: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "lvsd_vrrp_adverts_sent_total",
			Help: "VRRP advertisements sent (one per destination).",
		}, []string{"vrrp_instance"}),
		receivedTotal: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "lvsd_vrrp_adverts_received_total",
			Help: "VRRP advertisements received for the instance that passed every check.",
		}, []string{"vrrp_instance"}),
		drops: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "lvsd_vrrp_drops_total",
			Help: "Received VRRP packets dropped, by reason (ttl, version, type, checksum, truncated, unknown_sender, own_address, interval, family; with [vrrp.auth]: missing, malformed, unknown_key, bad_hmac, stale, replay).",
		}, []string{"vrrp_instance", "reason"}),
		masterPriority: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "lvsd_vrrp_master_priority",
			Help: "Priority of the current master as last seen (ours when master, 0 after a resignation).",
		}, []string{"vrrp_instance"}),
		announcements: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "lvsd_vrrp_announcements_total",
			Help: "Gratuitous ARP / unsolicited NA rounds sent (one packet per VIP each).",
		}, []string{"vrrp_instance"}),
		authAccepted: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "lvsd_vrrp_auth_accepted_total",
			Help: "Adverts a [vrrp.auth] instance accepted, by trailer: signed (verified) or unsigned (receive-only and permissive accept those).",
		}, []string{"vrrp_instance", "trailer"}),
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.state, m.transitions, m.sentTotal, m.receivedTotal, m.drops, m.masterPriority, m.announcements, m.authAccepted} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

func (m *metrics) drop(instance, reason string) {
	if m != nil {
		m.drops.WithLabelValues(instance, reason).Inc()
	}
}

func (m *metrics) transition(instance string, to State) {
	if m != nil {
		m.state.WithLabelValues(instance).Set(float64(to))
		m.transitions.WithLabelValues(instance, to.String()).Inc()
	}
}

// instanceMetrics are one instance's series, looked up once so that the
// advert path does no label hashing and no allocation. The zero value
// records nothing.
type instanceMetrics struct {
	m              *metrics
	name           string
	sentC          prometheus.Counter
	receivedC      prometheus.Counter
	announcementsC prometheus.Counter
	masterG        prometheus.Gauge
}

func (m *metrics) forInstance(name string) instanceMetrics {
	if m == nil {
		return instanceMetrics{name: name}
	}
	// Each transition series exists at 0 from the start, so that the first
	// transition to a state is an increase Prometheus can see (a series
	// born at 1 shows none: a dashboard's "became master" missed a
	// backup's first takeover, and a restarted lvsd's).
	for _, s := range []State{StateBackup, StateMaster, StateFault} {
		m.transitions.WithLabelValues(name, s.String())
	}
	return instanceMetrics{m: m, name: name,
		sentC: m.sentTotal.WithLabelValues(name), receivedC: m.receivedTotal.WithLabelValues(name),
		announcementsC: m.announcements.WithLabelValues(name), masterG: m.masterPriority.WithLabelValues(name)}
}

func (im *instanceMetrics) sent() {
	if im.sentC != nil {
		im.sentC.Inc()
	}
}

func (im *instanceMetrics) received() {
	if im.receivedC != nil {
		im.receivedC.Inc()
	}
}

func (im *instanceMetrics) announced() {
	if im.announcementsC != nil {
		im.announcementsC.Inc()
	}
}

func (im *instanceMetrics) master(priority int) {
	if im.masterG != nil {
		im.masterG.Set(float64(priority))
	}
}

func (im *instanceMetrics) drop(reason string) { im.m.drop(im.name, reason) }
