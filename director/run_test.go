package director

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/lvsd/lvsd/config"
	"github.com/prometheus/client_golang/prometheus"
)

func TestRunReactsToHealth(t *testing.T) {
	s := service("web", "192.0.2.1:80", "10.0.0.1:80")
	s.Alpha = nil
	c := cfgOf(s)
	c.Director.ReconcileInterval = config.Duration{Duration: time.Hour}
	fake := NewFake()
	d, err := New(c, fake)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- d.Run(ctx) }()
	waitFor(t, func() bool { return fake.Ops()[OpNewService] == 1 })
	d.SetHealth("web", "10.0.0.1:80", Health{Known: true, Healthy: true, Weight: -1})
	waitFor(t, func() bool { return fake.Ops()[OpNewDest] == 1 })
	cancel()
	if err := <-done; err != context.Canceled {
		t.Fatalf("Run returned %v", err)
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 5s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestMetrics(t *testing.T) {
	h := newHarness(t, cfgOf(service("web", "192.0.2.1:80", "10.0.0.1:80@3", "10.0.0.2:80")))
	reg := prometheus.NewPedanticRegistry()
	if err := h.d.Register(reg); err != nil {
		t.Fatal(err)
	}
	h.settle()
	h.fake.Mutate(func(tab map[ServiceKey]*KernelService) {
		for _, s := range tab {
			s.Stats.Conns = 42
			s.Dests[0].ActiveConns = 5
		}
		clear(tab)
	})
	h.pass() // repairs 3 ops of drift
	h.fake.Mutate(func(tab map[ServiceKey]*KernelService) {
		for _, s := range tab {
			s.Stats.Conns = 42
			s.Dests[0].ActiveConns = 5
		}
	})
	got := gather(t, reg)
	for k, v := range map[string]float64{
		`lvsd_backend_connections_active{realserver="10.0.0.1:80",service="web"}`: 5,
		`lvsd_backend_connections_active{realserver="10.0.0.2:80",service="web"}`: 0,
		`lvsd_backend_weight{realserver="10.0.0.1:80",service="web"}`:             3,
		`lvsd_service_connections_total{service="web"}`:                           42,
		`lvsd_drift_repairs_total`:                                                3,
		`lvsd_ipvs_ops_total{op="new_dest"}`:                                      4,
		`lvsd_reconcile_passes_total{result="ok"}`:                                3,
	} {
		if got[k] != v {
			t.Errorf("%s = %v, want %v", k, got[k], v)
		}
	}
	for k := range got {
		if strings.Contains(k, "client") {
			t.Errorf("client-address label: %s", k)
		}
	}
}

// gather returns every sample as "name{label="v",...}" -> value.
func gather(t *testing.T, reg *prometheus.Registry) map[string]float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			var labels []string
			for _, l := range m.GetLabel() {
				labels = append(labels, fmt.Sprintf("%s=%q", l.GetName(), l.GetValue()))
			}
			key := mf.GetName()
			if len(labels) > 0 {
				key += "{" + strings.Join(labels, ",") + "}"
			}
			switch {
			case m.Counter != nil:
				out[key] = m.GetCounter().GetValue()
			case m.Gauge != nil:
				out[key] = m.GetGauge().GetValue()
			}
		}
	}
	return out
}

func TestPreflightNamesEveryProblem(t *testing.T) {
	c := cfgOf(service("web", "192.0.2.1:80", "10.0.0.1:80"))
	c.Director.Interface = "nosuch0"
	err := Preflight(c)
	if err == nil || !strings.Contains(err.Error(), `interface "nosuch0": does not exist`) {
		t.Fatalf("err = %v", err)
	}
	if !HasIPVS() && !strings.Contains(err.Error(), "kernel has no IP_VS support: load the ip_vs module") {
		t.Errorf("no IPVS not reported: %v", err)
	}
}

func TestSysctlsFollowConfig(t *testing.T) {
	off := false
	c := cfgOf(service("web", "192.0.2.1:80", "10.0.0.1:80"))
	if got := len(Sysctls(c)); got != 3 {
		t.Errorf("defaults: %d sysctls, want 3 (nodest, quiescent, ip_forward for NAT)", got)
	}
	c.Director.ExpireNodestConn, c.Director.IPForward = &off, &off
	if s := Sysctls(c); len(s) != 1 || s[0].Path != "net/ipv4/vs/expire_quiescent_template" {
		t.Errorf("switched off: %+v", s)
	}
}
