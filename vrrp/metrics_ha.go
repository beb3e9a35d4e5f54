package vrrp

import (
	"github.com/prometheus/client_golang/prometheus"
)

// haCollector exports the effective priority, the tracked objects and the
// resources of every instance at scrape time, from the same snapshot as
// the status API, so a reload that removes one leaves no stale series.
type haCollector struct{ m *Manager }

var (
	descEffective = prometheus.NewDesc("lvsd_vrrp_effective_priority",
		"Priority the instance advertises now: the configured one moved by tracked weights (254 while taken over).",
		[]string{"vrrp_instance"}, nil)
	descTrackUp = prometheus.NewDesc("lvsd_vrrp_track_up",
		"1 while a tracked script, interface or service passes, 0 while it fails (no series before its first result).",
		[]string{"vrrp_instance", "track"}, nil)
	descTrackWeight = prometheus.NewDesc("lvsd_vrrp_track_weight",
		"Configured weight of a tracked object (0: fault while failing).",
		[]string{"vrrp_instance", "track"}, nil)
	descTrackApplied = prometheus.NewDesc("lvsd_vrrp_track_weight_applied",
		"Weight a tracked object adds to the priority now.",
		[]string{"vrrp_instance", "track"}, nil)
	descResState = prometheus.NewDesc("lvsd_vrrp_resource_state",
		"Resource state: 0 stopped, 1 starting, 2 running, 3 stopping, 4 failed, 5 stop_failed, 6 unknown, 7 restarting.",
		[]string{"vrrp_instance", "resource"}, nil)
	descResStopFailed = prometheus.NewDesc("lvsd_vrrp_resource_stop_failed",
		"1 while a resource's stop has failed: it may still run and lvsd cannot fence it; the instance stays in fault until lvsd reset.",
		[]string{"vrrp_instance", "resource"}, nil)
	descResLastOK = prometheus.NewDesc("lvsd_vrrp_resource_last_success",
		"1 if the resource's last command (label op) succeeded, 0 if it failed or timed out.",
		[]string{"vrrp_instance", "resource", "op"}, nil)
	descResLastDuration = prometheus.NewDesc("lvsd_vrrp_resource_last_duration_seconds",
		"Duration of the resource's last command (label op).",
		[]string{"vrrp_instance", "resource", "op"}, nil)
	descResRuns = prometheus.NewDesc("lvsd_vrrp_resource_runs_total",
		"Resource commands run, by op (start, stop, status) and result (ok, failed).",
		[]string{"vrrp_instance", "resource", "op", "result"}, nil)
	descResRestarts = prometheus.NewDesc("lvsd_vrrp_resource_restarts_total",
		"Restarts in place after the resource's status failed.",
		[]string{"vrrp_instance", "resource"}, nil)
)

func (haCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descEffective, descTrackUp, descTrackWeight, descTrackApplied,
		descResState, descResStopFailed, descResLastOK, descResLastDuration, descResRuns, descResRestarts} {
		ch <- d
	}
}

func (c haCollector) Collect(ch chan<- prometheus.Metric) {
	for _, in := range c.m.instanceList() {
		in.ex.mu.Lock()
		m := in.m
		name := in.name
		ch <- prometheus.MustNewConstMetric(descEffective, prometheus.GaugeValue, float64(m.effectivePriority()), name)
		for _, t := range m.trackStatus() {
			ch <- prometheus.MustNewConstMetric(descTrackWeight, prometheus.GaugeValue, float64(t.Weight), name, t.Name)
			ch <- prometheus.MustNewConstMetric(descTrackApplied, prometheus.GaugeValue, float64(t.Applied), name, t.Name)
			if t.State != "unknown" {
				ch <- prometheus.MustNewConstMetric(descTrackUp, prometheus.GaugeValue, gauge(t.State == "up"), name, t.Name)
			}
		}
		for _, r := range append(append([]*resource(nil), m.res.list...), m.res.orphans...) {
			rn := r.cfg.name
			ch <- prometheus.MustNewConstMetric(descResState, prometheus.GaugeValue, float64(r.state), name, rn)
			ch <- prometheus.MustNewConstMetric(descResStopFailed, prometheus.GaugeValue, gauge(r.state == resStopFailed), name, rn)
			ch <- prometheus.MustNewConstMetric(descResRestarts, prometheus.CounterValue, float64(r.restartN), name, rn)
			for _, op := range []ResourceOp{OpStart, OpStop, OpStatus} {
				runs := r.runs[op]
				if runs[0]+runs[1] == 0 {
					continue
				}
				ch <- prometheus.MustNewConstMetric(descResRuns, prometheus.CounterValue, float64(runs[1]), name, rn, op.String(), "ok")
				ch <- prometheus.MustNewConstMetric(descResRuns, prometheus.CounterValue, float64(runs[0]), name, rn, op.String(), "failed")
			}
			for _, last := range r.lastBy {
				if last.Op != "" {
					ch <- prometheus.MustNewConstMetric(descResLastOK, prometheus.GaugeValue, gauge(last.OK), name, rn, last.Op)
					ch <- prometheus.MustNewConstMetric(descResLastDuration, prometheus.GaugeValue, last.Duration.Seconds(), name, rn, last.Op)
				}
			}
		}
		in.ex.mu.Unlock()
	}
}

func gauge(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
