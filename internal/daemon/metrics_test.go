package daemon

import (
	"fmt"
	"net/netip"
	"runtime"
	"testing"

	"github.com/lvsd/lvsd/director"
)

// TestMetricsOfARunningDaemon scrapes /metrics of a daemon whose checks
// probe one healthy and one failing loopback server, and compares every
// number with what the daemon did: the ops the fake kernel received, the
// counters the fake kernel holds, the verdicts of the checks.
func TestMetricsOfARunningDaemon(t *testing.T) {
	c := newLabConfig(t)
	l := startLab(t, c)
	l.waitWeight(c.Good, 5)
	l.eventually("bad server judged down", func() error {
		if v := l.scrape().count("lvsd_check_transitions_total", "realserver", c.Bad, "to", "down"); v != 1 {
			return fmt.Errorf("lvsd_check_transitions_total{to=down} = %v", v)
		}
		return nil
	})
	if _, ok := l.kernelDest(c.Bad); ok {
		t.Errorf("failing server %s is in the kernel table", c.Bad)
	}

	s := l.scrape()
	for _, tc := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"lvsd_realserver_up", []string{"service", "web", "realserver", c.Good}, 1},
		{"lvsd_realserver_up", []string{"service", "web", "realserver", c.Bad}, 0},
		{"lvsd_check_transitions_total", []string{"realserver", c.Good, "to", "up"}, 1},
		{"lvsd_check_transitions_total", []string{"realserver", c.Bad, "to", "down"}, 1},
		{"lvsd_check_last_failure_info", []string{"realserver", c.Bad}, 1},
		{"lvsd_backend_weight", []string{"service", "web", "realserver", c.Good}, 5},
		{"lvsd_config_last_reload_successful", nil, 1},
		{"lvsd_build_info", []string{"version", labVersion, "goversion", runtime.Version()}, 1},
		{"lvsd_drift_repairs_total", nil, 0},
	} {
		if got := s.value(tc.name, tc.labels...); got != tc.want {
			t.Errorf("%s%v = %v, want %v", tc.name, tc.labels, got, tc.want)
		}
	}
	if v := s.value("lvsd_backend_weight", "realserver", c.Bad); v != -1 {
		t.Errorf("lvsd_backend_weight of the evicted server is exported (%v): it is not in the kernel", v)
	}
	if v := s.value("lvsd_config_last_reload_timestamp_seconds"); v <= 0 {
		t.Errorf("lvsd_config_last_reload_timestamp_seconds = %v", v)
	}
	if v := s.value("lvsd_reconcile_passes_total", "result", "ok"); v < 1 {
		t.Errorf("lvsd_reconcile_passes_total{result=ok} = %v", v)
	}
	for _, rs := range []string{c.Good, c.Bad} {
		m, ok := s.series("lvsd_check_duration_seconds", map[string]string{"service": "web", "realserver": rs, "type": "http"})
		if !ok || m.GetHistogram().GetSampleCount() == 0 || m.GetHistogram().GetSampleSum() <= 0 {
			t.Errorf("lvsd_check_duration_seconds{realserver=%s} has no observations: %v", rs, m)
		}
	}
	assertOpsMatchKernel(t, l)

	// Traffic: the kernel's counters, as ipvsadm --stats shows them, are
	// read at scrape time.
	good := netip.MustParseAddrPort(c.Good)
	l.ipvs.Mutate(func(table map[director.ServiceKey]*director.KernelService) {
		for _, s := range table {
			s.Stats = director.Stats{Conns: 42, PktsIn: 420, PktsOut: 380, BytesIn: 31337, BytesOut: 271828}
			for i := range s.Dests {
				if s.Dests[i].Addr == good {
					s.Dests[i].Stats = director.Stats{Conns: 40, PktsIn: 400, PktsOut: 360, BytesIn: 30000, BytesOut: 270000}
					s.Dests[i].ActiveConns, s.Dests[i].InactConns = 7, 11
				}
			}
		}
	})
	s = l.scrape()
	for _, tc := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"lvsd_service_connections_total", []string{"service", "web"}, 42},
		{"lvsd_service_incoming_packets_total", []string{"service", "web"}, 420},
		{"lvsd_service_outgoing_packets_total", []string{"service", "web"}, 380},
		{"lvsd_service_incoming_bytes_total", []string{"service", "web"}, 31337},
		{"lvsd_service_outgoing_bytes_total", []string{"service", "web"}, 271828},
		{"lvsd_backend_connections_total", []string{"service", "web", "realserver", c.Good}, 40},
		{"lvsd_backend_incoming_packets_total", []string{"service", "web", "realserver", c.Good}, 400},
		{"lvsd_backend_outgoing_packets_total", []string{"service", "web", "realserver", c.Good}, 360},
		{"lvsd_backend_incoming_bytes_total", []string{"service", "web", "realserver", c.Good}, 30000},
		{"lvsd_backend_outgoing_bytes_total", []string{"service", "web", "realserver", c.Good}, 270000},
		{"lvsd_backend_connections_active", []string{"service", "web", "realserver", c.Good}, 7},
		{"lvsd_backend_connections_inactive", []string{"service", "web", "realserver", c.Good}, 11},
	} {
		if got := s.value(tc.name, tc.labels...); got != tc.want {
			t.Errorf("%s%v = %v, want %v", tc.name, tc.labels, got, tc.want)
		}
	}

	// Drift: someone runs `ipvsadm -e ... -w 99` behind lvsd's back. The
	// next pass puts the weight back and counts one repair.
	updatesBefore := s.count("lvsd_ipvs_ops_total", "op", "update_dest")
	l.ipvs.Mutate(func(table map[director.ServiceKey]*director.KernelService) {
		for _, s := range table {
			for i := range s.Dests {
				if s.Dests[i].Addr == good {
					s.Dests[i].Weight = 99
				}
			}
		}
	})
	l.waitWeight(c.Good, 5)
	l.eventually("drift counted", func() error {
		s := l.scrape()
		if v := s.value("lvsd_drift_repairs_total"); v != 1 {
			return fmt.Errorf("lvsd_drift_repairs_total = %v, want 1", v)
		}
		if v := s.count("lvsd_ipvs_ops_total", "op", "update_dest"); v != updatesBefore+1 {
			return fmt.Errorf("lvsd_ipvs_ops_total{op=update_dest} = %v, want %v", v, updatesBefore+1)
		}
		return nil
	})
	assertOpsMatchKernel(t, l)
}

// assertOpsMatchKernel compares lvsd_ipvs_ops_total by kind with the ops
// the fake kernel received.
func assertOpsMatchKernel(t *testing.T, l *lab) {
	t.Helper()
	s := l.scrape()
	ops := l.ipvs.Ops()
	for k := director.OpNewService; k <= director.OpDelService; k++ {
		got := s.count("lvsd_ipvs_ops_total", "op", k.String())
		if int(got) != ops[k] {
			t.Errorf("lvsd_ipvs_ops_total{op=%s} = %v, the kernel received %d", k, got, ops[k])
		}
	}
	if ops[director.OpNewService] != 1 || ops[director.OpNewDest] != 1 {
		t.Errorf("kernel ops %v: want one new_service and one new_dest (only the healthy server)", ops)
	}
}
