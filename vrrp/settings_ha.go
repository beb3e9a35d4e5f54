package vrrp

import (
	"slices"
	"time"

	"github.com/lvsd/lvsd/config"
)

// haSettings are an instance's resources, weighted tracking and sync
// group, copied from a complete config.VRRP.
type haSettings struct {
	holdOff   time.Duration
	resources []resourceSettings
	scripts   []scriptSettings
	// weights are the tracked interfaces and services with a non-zero
	// weight; those with weight 0 join trackIfaces and trackServices,
	// which put the instance in Fault.
	weights   []trackWeight
	syncGroup string
}

type resourceSettings struct {
	name                string
	start, stop, status []string
	startTimeout        time.Duration
	stopTimeout         time.Duration
	statusTimeout       time.Duration
	monitorInterval     time.Duration
	fall, restarts      int
	exclusive           bool
}

type scriptSettings struct {
	name              string
	command           []string
	interval, timeout time.Duration
	rise, fall        int
	weight            int
}

// trackWeight is a weighted tracked interface or service.
type trackWeight struct {
	kind   string // "interface" or "service"
	name   string
	weight int
}

// key names a tracker in the machine, status and metrics.
func (w trackWeight) key() string    { return w.kind + " " + w.name }
func (s scriptSettings) key() string { return "script " + s.name }

func (s *settings) haOf(c *config.VRRP) {
	h := &s.ha
	h.holdOff, h.syncGroup = c.HoldOff.Duration, c.SyncGroup
	for _, r := range c.Resources {
		h.resources = append(h.resources, resourceSettings{
			name: r.Name, start: r.Start, stop: r.Stop, status: r.Status,
			startTimeout: r.StartTimeout.Duration, stopTimeout: r.StopTimeout.Duration, statusTimeout: r.Timeout.Duration,
			monitorInterval: r.MonitorInterval.Duration, fall: r.Fall, restarts: r.Restarts, exclusive: r.ExclusiveOn(),
		})
	}
	for _, t := range c.TrackScripts {
		h.scripts = append(h.scripts, scriptSettings{name: t.Name, command: t.Command,
			interval: t.Interval.Duration, timeout: t.Timeout.Duration, rise: t.Rise, fall: t.Fall, weight: t.Weight})
	}
	for _, w := range c.TrackInterface {
		if w.Weight == 0 {
			s.trackIfaces = append(slices.Clone(s.trackIfaces), w.Name)
			continue
		}
		h.weights = append(h.weights, trackWeight{kind: "interface", name: w.Name, weight: w.Weight})
	}
	for _, w := range c.TrackService {
		if w.Weight == 0 {
			s.trackServices = append(slices.Clone(s.trackServices), w.Name)
			continue
		}
		h.weights = append(h.weights, trackWeight{kind: "service", name: w.Name, weight: w.Weight})
	}
}

// watchedInterfaces are the links whose state matters to the instance:
// its own, and every tracked one.
func (s *settings) watchedInterfaces() []string {
	out := append([]string{s.iface}, s.trackIfaces...)
	for _, w := range s.ha.weights {
		if w.kind == "interface" && !slices.Contains(out, w.name) {
			out = append(out, w.name)
		}
	}
	return out
}

// weightOf returns the weight of a weighted tracked interface or service.
func (s *settings) weightOf(kind, name string) (int, bool) {
	for _, w := range s.ha.weights {
		if w.kind == kind && w.name == name {
			return w.weight, true
		}
	}
	return 0, false
}

// haChanged names the HA settings that differ, for the reload log.
func haChanged(old, next haSettings) []string {
	var out []string
	add := func(changed bool, name string) {
		if changed {
			out = append(out, name)
		}
	}
	add(old.holdOff != next.holdOff, "hold_off")
	add(!slices.EqualFunc(old.resources, next.resources, resourceSettings.equal), "resource")
	add(!slices.EqualFunc(old.scripts, next.scripts, scriptSettings.equal), "track_script")
	add(!slices.Equal(old.weights, next.weights), "track weights")
	add(old.syncGroup != next.syncGroup, "sync_group")
	return out
}

func (a resourceSettings) equal(b resourceSettings) bool {
	return a.name == b.name && slices.Equal(a.start, b.start) && slices.Equal(a.stop, b.stop) && slices.Equal(a.status, b.status) &&
		a.startTimeout == b.startTimeout && a.stopTimeout == b.stopTimeout && a.statusTimeout == b.statusTimeout &&
		a.monitorInterval == b.monitorInterval && a.fall == b.fall && a.restarts == b.restarts && a.exclusive == b.exclusive
}

func (a scriptSettings) equal(b scriptSettings) bool {
	return a.sameRun(b) && a.rise == b.rise && a.fall == b.fall && a.weight == b.weight
}

// sameRun says a running script's runner can stay: what it runs and when
// is unchanged (rise, fall and weight are the machine's).
func (a scriptSettings) sameRun(b scriptSettings) bool {
	return a.name == b.name && slices.Equal(a.command, b.command) && a.interval == b.interval && a.timeout == b.timeout
}
