package daemon

import (
	"context"
	"time"

	"github.com/lvsd/lvsd/checks"
	"github.com/lvsd/lvsd/config"
	"github.com/lvsd/lvsd/director"
	"github.com/lvsd/lvsd/internal/status"
	"github.com/lvsd/lvsd/vrrp"
)

// statusTimeout bounds the kernel reads a status document makes (the
// IPVS counters for rates, the sync daemons).
const statusTimeout = 2 * time.Second

// Status joins what the parts know into the one document operators read:
// health and the table from the director, the details of the latest
// probes from the checks, rates from the kernel's counters, and VRRP's,
// connection sync's, the guard's and the announcer's own.
func (d *Daemon) Status(ctx context.Context) status.Report {
	ctx, cancel := context.WithTimeout(ctx, statusTimeout)
	defer cancel()
	d.mu.Lock()
	cfg, last, rerr := d.cfg, d.lastReload, d.reloadErr
	d.mu.Unlock()
	st := status.Report{Node: cfg.Director.Name, Config: cfg.Path, Version: d.version, LastReload: last, ReloadOK: rerr == nil,
		Time: time.Now(), Actions: actionsReport(cfg.Director.Web)}
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
		prev, cur := d.rates.current(ctx)
		for _, s := range d.dir.Status() {
			ss := status.Service{Name: s.Name, Address: s.Key, InKernel: s.InKernel, SorryActive: s.SorryActive,
				QuorumUp: s.QuorumUp, Rates: serviceRates(prev, cur, s.Name, "")}
			cs := cfg.Service(s.Name)
			configured := configRealServers(cs)
			if cs != nil {
				ss.Scheduler, ss.Protocol, ss.Port, ss.FWMark = cs.Scheduler, cs.Protocol, cs.Port, cs.FWMark
				ss.Forwarding, ss.Quorum = cs.Forwarding, cs.Quorum
				if cs.VIP.IP.IsValid() {
					ss.VIP = cs.VIP.IP.String()
				}
			}
			for _, r := range s.RealServers {
				rs := status.RealServer{
					Address: r.Name, Weight: r.DesiredWeight, KernelWeight: -1, Drained: r.Drained, HeldByGuard: r.Held,
					ActiveConns: uint64(r.ActiveConns), InactConns: uint64(r.InactConns),
					Health: healthWord(r), Reason: r.Health.Reason, HealthSince: r.HealthSince, Warming: r.Warming,
					Rates: serviceRates(prev, cur, s.Name, r.Name),
				}
				if r.InKernel {
					rs.KernelWeight = r.KernelWeight
				}
				// The kernel's connection counts as of now, when read.
				if dc, ok := cur.c[s.Name].RealServers[r.Name]; ok {
					rs.ActiveConns, rs.InactConns = uint64(dc.ActiveConns), uint64(dc.InactConns)
				}
				// The configured weight, what an evicted or drained server
				// returns to; KernelWeight says what it has now.
				if c := configured[r.Name]; c != nil {
					rs.Weight, rs.Forwarding = c.Weight, c.Forwarding
				} else if cs != nil {
					rs.Forwarding = cs.Forwarding // the sorry server
				}
				if p, ok := probes[key{s.Name, r.Name}]; ok {
					rs.Reason, rs.Latency, rs.LastCheck = p.Reason, p.Latency, p.LastCheck
					rs.Successes, rs.Failures = p.Successes, p.Failures
					rs.LastResult = lastResult(p)
				}
				ss.RealServers = append(ss.RealServers, rs)
			}
			st.Services = append(st.Services, ss)
		}
		st.EvictionGuard = guardReport(d.dir.GuardStatus())
	}
	st.Announce = d.announceStatus(cfg)
	counts := vrrpCounters(d.vrrpReg)
	for _, v := range d.vr.Status() {
		st.VRRP = append(st.VRRP, instanceStatus(v, counts[v.Name]))
	}
	st.Sync = d.sync.status(ctx)
	return st
}

// configRealServers maps the real servers of cs by key, once per service
// rather than a scan (and a key formatted) per real server.
func configRealServers(cs *config.Service) map[string]*config.RealServer {
	if cs == nil {
		return nil
	}
	out := make(map[string]*config.RealServer, len(cs.RealServers))
	for _, c := range cs.RealServers {
		out[c.Key()] = c
	}
	return out
}

// lastResult is the result of the probe that ran last: "ok" when its
// check counts successes, "failed" when it counts failures.
func lastResult(t checks.TargetStatus) string {
	var latest *checks.CheckStatus
	for i := range t.Checks {
		if c := &t.Checks[i]; !c.LastCheck.IsZero() && (latest == nil || c.LastCheck.After(latest.LastCheck)) {
			latest = c
		}
	}
	switch {
	case latest == nil:
		return ""
	case latest.Successes > 0:
		return "ok"
	case latest.Failures > 0:
		return "failed"
	}
	return ""
}

func actionsReport(w config.Web) *status.Actions {
	if !w.Actions {
		return nil
	}
	return &status.Actions{Auth: w.Auth()}
}

func instanceStatus(v vrrp.InstanceStatus, c *vrrpCounts) status.Instance {
	is := status.Instance{Name: v.Name, VRID: v.VRID, Interface: v.Interface, State: v.State,
		Priority: v.EffectivePriority, MasterPriority: v.MasterPriority, PreemptHeld: v.PreemptHeld,
		ConfiguredPriority: v.Priority, Faults: v.Faults, SyncGroup: v.SyncGroup, Tracks: v.Tracks, Resources: v.Resources,
		ResourceFailure: v.ResourceFailure, HoldOffUntil: v.HoldOffUntil, Releasing: v.Releasing, Auth: v.Auth,
		Version: v.Version, AuthPass: v.AuthPass, Master: v.Master, Since: v.Since, Drops: map[string]uint64{}}
	for _, p := range v.VIPs {
		is.VIPs = append(is.VIPs, p.String())
	}
	if c != nil {
		is.Transitions, is.AdvertsSent, is.AdvertsReceived, is.Drops = c.transitions, c.sent, c.received, c.drops
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
