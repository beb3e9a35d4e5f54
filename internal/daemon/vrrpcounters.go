package daemon

import (
	"github.com/prometheus/client_golang/prometheus"
)

// VRRP counts adverts, drops and transitions in its metrics only. The
// status document shows the same counts, read from those metrics: VRRP
// registers them on both the daemon's registry and a registry of its own
// (teeRegisterer), which status gathers without scraping everything else
// (the IPVS table, the checks).

// teeRegisterer registers every collector on both registerers.
type teeRegisterer struct {
	main prometheus.Registerer
	also *prometheus.Registry
}

func (t teeRegisterer) Register(c prometheus.Collector) error {
	if err := t.main.Register(c); err != nil {
		return err
	}
	if err := t.also.Register(c); err != nil {
		t.main.Unregister(c)
		return err
	}
	return nil
}

func (t teeRegisterer) MustRegister(cs ...prometheus.Collector) {
	for _, c := range cs {
		if err := t.Register(c); err != nil {
			panic(err) // as prometheus.Registry.MustRegister
		}
	}
}

func (t teeRegisterer) Unregister(c prometheus.Collector) bool {
	t.also.Unregister(c)
	return t.main.Unregister(c)
}

// vrrpCounts is one instance's counters.
type vrrpCounts struct {
	transitions, sent, received uint64
	drops                       map[string]uint64
}

// vrrpCounters reads every instance's counters from reg.
func vrrpCounters(reg *prometheus.Registry) map[string]*vrrpCounts {
	out := map[string]*vrrpCounts{}
	fams, err := reg.Gather()
	if err != nil {
		return out
	}
	for _, f := range fams {
		for _, m := range f.GetMetric() {
			var inst, reason string
			for _, l := range m.GetLabel() {
				switch l.GetName() {
				case "vrrp_instance":
					inst = l.GetValue()
				case "reason":
					reason = l.GetValue()
				}
			}
			if inst == "" || m.GetCounter() == nil {
				continue
			}
			c := out[inst]
			if c == nil {
				c = &vrrpCounts{drops: map[string]uint64{}}
				out[inst] = c
			}
			v := uint64(m.GetCounter().GetValue())
			switch f.GetName() {
			case "lvsd_vrrp_transitions_total":
				c.transitions += v
			case "lvsd_vrrp_adverts_sent_total":
				c.sent += v
			case "lvsd_vrrp_adverts_received_total":
				c.received += v
			case "lvsd_vrrp_drops_total":
				c.drops[reason] += v
			}
		}
	}
	return out
}
