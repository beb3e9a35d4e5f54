package director

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the director's own counters plus a collector that reads the
// kernel's per-service and per-realserver counters at scrape time. Labels
// are config names, never client addresses, so cardinality is the config's.
type metrics struct {
	d            *Director
	passes       *prometheus.CounterVec
	duration     prometheus.Histogram
	ops          *prometheus.CounterVec
	opErrors     *prometheus.CounterVec
	drift        prometheus.Counter
	scrapeErrors prometheus.Counter
	heldTotal    prometheus.Counter
	releasedVec  *prometheus.CounterVec
	guard        *guardCollector

	svcConns, svcPktsIn, svcPktsOut, svcBytesIn, svcBytesOut *prometheus.Desc
	beActive, beInact, beWeight, beConns                     *prometheus.Desc
	bePktsIn, bePktsOut, beBytesIn, beBytesOut               *prometheus.Desc
	svcQuorum                                                *prometheus.Desc
}

func newMetrics() *metrics {
	m := newMetricsUninitialised()
	// Every kind and result starts at 0, so a rate of errors reads 0
	// (data) rather than nothing before the first error.
	for k := OpNewService; k <= OpDelService; k++ {
		m.ops.WithLabelValues(k.String())
		m.opErrors.WithLabelValues(k.String())
	}
	for _, r := range []string{"ok", "error"} {
		m.passes.WithLabelValues(r)
	}
	return m
}

func newMetricsUninitialised() *metrics {
	svc := []string{"service"}
	be := []string{"service", "realserver"}
	return &metrics{
		passes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "lvsd_reconcile_passes_total", Help: "Reconcile passes over the IPVS table, by result (ok, error).",
		}, []string{"result"}),
		duration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "lvsd_reconcile_duration_seconds", Help: "Time of one reconcile pass (dump, diff, apply).",
			Buckets: prometheus.ExponentialBuckets(0.0005, 4, 10),
		}),
		ops: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "lvsd_ipvs_ops_total", Help: "Kernel IPVS operations made, by kind.",
		}, []string{"op"}),
		opErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "lvsd_ipvs_op_errors_total", Help: "Kernel IPVS operations the kernel refused, by kind.",
		}, []string{"op"}),
		drift: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "lvsd_drift_repairs_total", Help: "Operations that repaired changes made to the IPVS table by someone else (ipvsadm, another daemon).",
		}),
		scrapeErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "lvsd_ipvs_scrape_errors_total", Help: "Failed reads of the kernel IPVS counters at scrape time.",
		}),
		heldTotal: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "lvsd_eviction_guard_held_total", Help: "Failed checks the eviction guard held instead of evicting the server, while lvsd itself was in trouble.",
		}),
		releasedVec: newReleasedVec(),
		guard:       newGuardCollector(),
		svcQuorum: prometheus.NewDesc("lvsd_service_quorum_up",
			"1 while the service has its quorum of live real servers (or has no quorum set), 0 while below it (the sorry server, if any, takes over).", svc, nil),
		svcConns:    prometheus.NewDesc("lvsd_service_connections_total", "Connections scheduled by the virtual service (kernel counter).", svc, nil),
		svcPktsIn:   prometheus.NewDesc("lvsd_service_incoming_packets_total", "Packets in to the virtual service (kernel counter).", svc, nil),
		svcPktsOut:  prometheus.NewDesc("lvsd_service_outgoing_packets_total", "Packets out of the virtual service (kernel counter).", svc, nil),
		svcBytesIn:  prometheus.NewDesc("lvsd_service_incoming_bytes_total", "Bytes in to the virtual service (kernel counter).", svc, nil),
		svcBytesOut: prometheus.NewDesc("lvsd_service_outgoing_bytes_total", "Bytes out of the virtual service (kernel counter).", svc, nil),
		beActive:    prometheus.NewDesc("lvsd_backend_connections_active", "Active connections on the real server (kernel).", be, nil),
		beInact:     prometheus.NewDesc("lvsd_backend_connections_inactive", "Inactive connections on the real server (kernel).", be, nil),
		beWeight:    prometheus.NewDesc("lvsd_backend_weight", "Weight of the real server in the kernel table.", be, nil),
		beConns:     prometheus.NewDesc("lvsd_backend_connections_total", "Connections scheduled to the real server (kernel counter).", be, nil),
		bePktsIn:    prometheus.NewDesc("lvsd_backend_incoming_packets_total", "Packets in to the real server (kernel counter).", be, nil),
		bePktsOut:   prometheus.NewDesc("lvsd_backend_outgoing_packets_total", "Packets out of the real server (kernel counter).", be, nil),
		beBytesIn:   prometheus.NewDesc("lvsd_backend_incoming_bytes_total", "Bytes in to the real server (kernel counter).", be, nil),
		beBytesOut:  prometheus.NewDesc("lvsd_backend_outgoing_bytes_total", "Bytes out of the real server (kernel counter).", be, nil),
	}
}

// Register adds the director's metrics to r.
func (d *Director) Register(r prometheus.Registerer) error {
	m := d.metrics
	m.guard.d = d
	for _, c := range []prometheus.Collector{m.passes, m.duration, m.ops, m.opErrors, m.drift, m.scrapeErrors,
		m.heldTotal, m.releasedVec, m.guard, m} {
		if err := r.Register(c); err != nil {
			return err
		}
	}
	return nil
}

func (m *metrics) pass(res Result, err error, took time.Duration) {
	result := "ok"
	if err != nil {
		result = "error"
	}
	m.passes.WithLabelValues(result).Inc()
	m.duration.Observe(took.Seconds())
	m.drift.Add(float64(res.Drift))
}

func (m *metrics) op(k OpKind, err error) {
	m.ops.WithLabelValues(k.String()).Inc()
	if err != nil {
		m.opErrors.WithLabelValues(k.String()).Inc()
	}
}

// Describe implements prometheus.Collector.
func (m *metrics) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{m.svcConns, m.svcPktsIn, m.svcPktsOut, m.svcBytesIn, m.svcBytesOut, m.beActive, m.beInact, m.beWeight, m.beConns, m.bePktsIn, m.bePktsOut, m.beBytesIn, m.beBytesOut, m.svcQuorum} {
		ch <- d
	}
}

// Collect implements prometheus.Collector: it reads the kernel now, so
// the numbers are as fresh as the scrape.
func (m *metrics) Collect(ch chan<- prometheus.Metric) {
	d := m.d
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	kernel, names, err := d.readKernel(ctx)
	counter := func(desc *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(desc, prometheus.CounterValue, float64(v), labels...)
	}
	gauge := func(desc *prometheus.Desc, v int, labels ...string) {
		ch <- prometheus.MustNewConstMetric(desc, prometheus.GaugeValue, float64(v), labels...)
	}
	// Quorum is the director's, for every configured service, in the
	// kernel or not.
	d.mu.Lock()
	quorum := make(map[string]bool, len(d.services))
	for _, cs := range d.services {
		quorum[cs.name] = !d.pools[cs.name].lost()
	}
	d.mu.Unlock()
	for name, up := range quorum {
		v := 0
		if up {
			v = 1
		}
		gauge(m.svcQuorum, v, name)
	}
	if err != nil {
		m.scrapeErrors.Inc()
		return
	}
	for _, ks := range kernel {
		cs := names[ks.Key]
		if cs == nil {
			continue // not ours: no name to give it
		}
		counter(m.svcConns, ks.Stats.Conns, cs.name)
		counter(m.svcPktsIn, ks.Stats.PktsIn, cs.name)
		counter(m.svcPktsOut, ks.Stats.PktsOut, cs.name)
		counter(m.svcBytesIn, ks.Stats.BytesIn, cs.name)
		counter(m.svcBytesOut, ks.Stats.BytesOut, cs.name)
		for _, dst := range ks.Dests {
			rs := realserverName(cs, dst)
			gauge(m.beActive, dst.ActiveConns, cs.name, rs)
			gauge(m.beInact, dst.InactConns, cs.name, rs)
			gauge(m.beWeight, dst.Weight, cs.name, rs)
			counter(m.beConns, dst.Stats.Conns, cs.name, rs)
			counter(m.bePktsIn, dst.Stats.PktsIn, cs.name, rs)
			counter(m.bePktsOut, dst.Stats.PktsOut, cs.name, rs)
			counter(m.beBytesIn, dst.Stats.BytesIn, cs.name, rs)
			counter(m.beBytesOut, dst.Stats.BytesOut, cs.name, rs)
		}
	}
}

// readKernel reads the kernel's table now, with the services lvsd knows
// by key. While a pass runs (a big apply can take seconds) it returns the
// table as the last pass left it rather than wait.
func (d *Director) readKernel(ctx context.Context) ([]KernelService, map[ServiceKey]*compiledService, error) {
	var kernel []KernelService
	if d.passMu.TryLock() {
		var err error
		kernel, err = d.ipvs.Dump(ctx)
		d.passMu.Unlock()
		if err != nil {
			return nil, nil, err
		}
	} else {
		d.mu.Lock()
		for _, ks := range d.last {
			kernel = append(kernel, *ks)
		}
		d.mu.Unlock()
	}
	d.mu.Lock()
	names := make(map[ServiceKey]*compiledService, len(d.services))
	for _, cs := range d.services {
		names[cs.svc.Key] = cs
	}
	d.mu.Unlock()
	return kernel, names, nil
}

// realserverName names a kernel destination by config: its "ip:port", or
// "sorry" for the sorry server.
func realserverName(cs *compiledService, d Dest) string {
	if cs.sorry != nil && cs.sorry.Addr == d.Addr {
		return "sorry"
	}
	return d.Addr.String()
}
