package daemon

import (
	"github.com/lvsd/lvsd/checks"
	"github.com/lvsd/lvsd/director"
	"github.com/lvsd/lvsd/internal/status"
	"github.com/lvsd/lvsd/vrrp"
)

// Status joins what the parts know into the one document operators read:
// health and the table from the director, the details of the latest
// probes from the checks, and VRRP's, the guard's and the announcer's own.
func (d *Daemon) Status() status.Report {
	d.mu.Lock()
	cfg, last, rerr := d.cfg, d.lastReload, d.reloadErr
	d.mu.Unlock()
	st := status.Report{Node: cfg.Director.Name, Config: cfg.Path, Version: d.version, LastReload: last, ReloadOK: rerr == nil}
	if rerr != nil {
		st.ReloadErr = rerr.Error()
	}
	b := d.sched.Backlog()
	st.Checks = status.CheckSchedule{Checks: b.Checks, Behind: b.Behind, BehindBy: b.Worst}
	type key struct{ service, rs string }
	probes := map[key]checks.TargetStatus{}
	for _, t := range d.sched.Status() {
		probes[key{t.Service, t.RealServer}] = t
	}
	if d.dir != nil {
		for _, s := range d.dir.Status() {
			ss := status.Service{Name: s.Name, Address: s.Key, InKernel: s.InKernel, SorryActive: s.SorryActive}
			cs := cfg.Service(s.Name)
			if cs != nil {
				ss.Scheduler = cs.Scheduler
			}
			for _, r := range s.RealServers {
				rs := status.RealServer{
					Address: r.Name, Weight: r.DesiredWeight, KernelWeight: -1, Drained: r.Drained, HeldByGuard: r.Held,
					ActiveConns: uint64(r.ActiveConns), InactConns: uint64(r.InactConns),
					Health: healthWord(r), Reason: r.Health.Reason,
				}
				if r.InKernel {
					rs.KernelWeight = r.KernelWeight
				}
				// The configured weight, what an evicted or drained server
				// returns to; KernelWeight says what it has now.
				if cs != nil {
					for _, c := range cs.RealServers {
						if c.Key() == r.Name {
							rs.Weight = c.Weight
						}
					}
				}
				if p, ok := probes[key{s.Name, r.Name}]; ok {
					rs.Reason, rs.Latency, rs.LastCheck = p.Reason, p.Latency, p.LastCheck
					rs.Successes, rs.Failures = p.Successes, p.Failures
				}
				ss.RealServers = append(ss.RealServers, rs)
			}
			st.Services = append(st.Services, ss)
		}
		st.EvictionGuard = guardReport(d.dir.GuardStatus())
	}
	st.Announce = d.announceStatus(cfg)
	for _, v := range d.vr.Status() {
		st.VRRP = append(st.VRRP, instanceStatus(v))
	}
	return st
}

func instanceStatus(v vrrp.InstanceStatus) status.Instance {
	is := status.Instance{Name: v.Name, VRID: v.VRID, Interface: v.Interface, State: v.State,
		Priority: v.EffectivePriority, MasterPriority: v.MasterPriority, PreemptHeld: v.PreemptHeld,
		ConfiguredPriority: v.Priority, Faults: v.Faults, SyncGroup: v.SyncGroup, Tracks: v.Tracks, Resources: v.Resources,
		ResourceFailure: v.ResourceFailure, HoldOffUntil: v.HoldOffUntil, Releasing: v.Releasing, Auth: v.Auth,
		Version: v.Version, AuthPass: v.AuthPass}
	for _, p := range v.VIPs {
		is.VIPs = append(is.VIPs, p.String())
	}
	return is
}

// healthWord is the director's health of r as status says it: the latest
// verdict (also one the guard holds back), else "up" for a server taken as
// up until checked (alpha off), else "unknown".
func healthWord(r director.RealServerStatus) string {
	switch {
	case r.Health.Known && r.Health.Healthy:
		return "up"
	case r.Health.Known:
		return "down"
	case r.Up:
		return "up"
	}
	return "unknown"
}

func guardReport(g director.GuardStatus) *status.Guard {
	r := &status.Guard{On: g.On, Fault: g.Fault, FaultSince: g.FaultSince, Held: []status.HeldCheck{}}
	for _, h := range g.Held {
		r.Held = append(r.Held, status.HeldCheck{Service: h.Service, RealServer: h.RealServer, Since: h.Since, Until: h.Until, Reason: h.Reason, Why: h.Why})
	}
	return r
}
