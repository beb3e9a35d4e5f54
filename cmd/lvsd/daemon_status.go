package main

import (
	"github.com/lvsd/lvsd/checks"
	"github.com/lvsd/lvsd/director"
	"github.com/lvsd/lvsd/vrrp"
)

// Status joins what the director, the checks and VRRP each know into the
// one document operators read.
func (d *lvsdDaemon) Status() StatusReport {
	d.mu.Lock()
	cfg, last, rerr := d.cfg, d.lastReload, d.reloadErr
	d.mu.Unlock()
	st := StatusReport{Node: cfg.Director.Name, Config: cfg.Path, Version: lvsdVersion(), LastReload: last, ReloadOK: rerr == nil}
	if rerr != nil {
		st.ReloadErr = rerr.Error()
	}
	b := d.sched.Backlog()
	st.Checks = CheckSchedule{Checks: b.Checks, Behind: b.Behind, BehindBy: b.Worst}
	type key struct{ service, rs string }
	probes := map[key]checks.TargetStatus{}
	for _, t := range d.sched.Status() {
		probes[key{t.Service, t.RealServer}] = t
	}
	if d.dir != nil {
		for _, s := range d.dir.Status() {
			ss := ServiceStatus{Name: s.Name, Address: s.Key, InKernel: s.InKernel, SorryActive: s.SorryActive}
			cs := findService(cfg, s.Name)
			if cs != nil {
				ss.Scheduler = cs.Scheduler
			}
			for _, r := range s.RealServers {
				rs := RealServerStatus{
					Address: r.Name, Weight: r.DesiredWeight, KernelWeight: -1, Drained: r.Drained,
					ActiveConns: uint64(r.ActiveConns), InactConns: uint64(r.InactConns),
					Health: healthWord(r.Health.Known, r.Health.Healthy),
				}
				if r.InKernel {
					rs.KernelWeight = r.KernelWeight
				}
				rs.HeldByGuard = r.Held
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
					rs.Health = p.Health.String()
					rs.Reason, rs.Latency, rs.LastCheck = p.Reason, p.Latency, p.LastCheck
					rs.Successes, rs.Failures = p.Successes, p.Failures
				}
				ss.RealServers = append(ss.RealServers, rs)
			}
			st.Services = append(st.Services, ss)
		}
	}
	if d.dir != nil {
		st.EvictionGuard = guardReport(d.dir.GuardStatus())
	}
	st.Announce = d.announceStatus(cfg)
	if d.vr != nil {
		for _, v := range d.vr.Status() {
			st.VRRP = append(st.VRRP, instanceStatus(v))
		}
	}
	return st
}

func instanceStatus(v vrrp.InstanceStatus) InstanceStatus {
	is := InstanceStatus{Name: v.Name, VRID: v.VRID, Interface: v.Interface, State: v.State,
		Priority: v.EffectivePriority, MasterPriority: v.MasterPriority, PreemptHeld: v.PreemptHeld,
		ConfiguredPriority: v.Priority, Faults: v.Faults, SyncGroup: v.SyncGroup, Tracks: v.Tracks, Resources: v.Resources,
		ResourceFailure: v.ResourceFailure, HoldOffUntil: v.HoldOffUntil, Releasing: v.Releasing, Auth: v.Auth,
		Version: v.Version, AuthPass: v.AuthPass}
	for _, p := range v.VIPs {
		is.VIPs = append(is.VIPs, p.String())
	}
	return is
}

func healthWord(known, healthy bool) string {
	switch {
	case !known:
		return "unknown"
	case healthy:
		return "up"
	}
	return "down"
}

func guardReport(g director.GuardStatus) *GuardReport {
	r := &GuardReport{On: g.On, Fault: g.Fault, FaultSince: g.FaultSince, Held: []HeldCheck{}}
	for _, h := range g.Held {
		r.Held = append(r.Held, HeldCheck{Service: h.Service, RealServer: h.RealServer, Since: h.Since, Until: h.Until, Reason: h.Reason, Why: h.Why})
	}
	return r
}
