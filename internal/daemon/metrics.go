package daemon

import (
	"fmt"
	"runtime"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// registerOwnMetrics registers what the daemon itself exports: which lvsd
// runs, and how the last reload went. The parts register their own.
func (d *Daemon) registerOwnMetrics(reg prometheus.Registerer) error {
	build := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "lvsd_build_info", Help: "Always 1; the labels say which lvsd runs.",
	}, []string{"version", "goversion"})
	build.WithLabelValues(d.version, runtime.Version()).Set(1)
	d.reloadOK = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "lvsd_config_last_reload_successful", Help: "1 if the last config load or reload was applied, 0 if it was rejected.",
	})
	d.reloadTime = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "lvsd_config_last_reload_timestamp_seconds", Help: "Unix time of the last config load or reload attempt.",
	})
	for _, c := range []prometheus.Collector{build, d.reloadOK, d.reloadTime,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{})} {
		if err := reg.Register(c); err != nil {
			return fmt.Errorf("metrics: %w", err)
		}
	}
	d.reloadOK.Set(1)
	d.reloadTime.SetToCurrentTime()
	d.lastReload = time.Now()
	return nil
}
