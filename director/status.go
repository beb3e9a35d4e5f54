package director

import (
	"context"
	"time"
)

// ServiceStatus is one configured service as the director sees it.
type ServiceStatus struct {
	Name     string
	Key      string // "tcp/192.0.2.1:80" or "fwmark/5", as config.ServiceKey prints it
	InKernel bool
	// QuorumUp is false when fewer servers are up than quorum asks for;
	// SorryActive then says whether the sorry server took the pool over.
	QuorumUp    bool
	SorryActive bool
	RealServers []RealServerStatus
}

// RealServerStatus compares what lvsd wants for a real server with what
// the kernel held at the last pass.
type RealServerStatus struct {
	Name string // "ip:port", or "sorry"
	// Health is the checks' latest verdict, also one the eviction guard
	// holds back (Held).
	Health Health
	// HealthSince is when Health last changed between unknown, up and
	// down, or when lvsd first knew the server.
	HealthSince time.Time
	// Up: lvsd takes the server as up, and it may be in the table: its
	// applied verdict is healthy, or it is unchecked in a service with
	// alpha off.
	Up      bool
	Drained bool // operator drain
	Warming bool
	// Held: the eviction guard holds a failed check of this server, which
	// stays in the table with the health it had (see GuardStatus).
	Held          bool
	DesiredWeight int
	Desired       bool // lvsd wants it in the table
	InKernel      bool
	KernelWeight  int
	ActiveConns   int
	InactConns    int
}

// Status reports every configured service and real server: desired and
// kernel weight, health, and connection counts as of the last pass.
func (d *Director) Status() []ServiceStatus {
	d.mu.Lock()
	defer d.mu.Unlock()
	now := d.now()
	desired, _ := buildDesired(d.services, d.state, d.pools, now)
	var out []ServiceStatus
	for _, cs := range d.services {
		ds := desired[cs.svc.Key]
		ss := ServiceStatus{Name: cs.name, Key: cs.svc.Key.String(), QuorumUp: !d.pools[cs.name].lost()}
		ss.SorryActive = cs.sorry != nil && !ss.QuorumUp
		ks := d.last[cs.svc.Key]
		ss.InKernel = ks != nil
		find := func(a Dest) (Dest, bool) {
			if ks == nil {
				return Dest{}, false
			}
			for _, k := range ks.Dests {
				if k.Addr == a.Addr {
					return k, true
				}
			}
			return Dest{}, false
		}
		want := func(a Dest) (desiredDest, bool) {
			for _, w := range ds.dests {
				if w.Addr == a.Addr {
					return w, true
				}
			}
			return desiredDest{}, false
		}
		add := func(name string, dest Dest, st *rsState) {
			rs := RealServerStatus{Name: name}
			if st != nil {
				rs.Health, rs.Up, rs.Drained, rs.HealthSince = st.health, st.up(cs.alpha), st.drained, st.since
				if h := d.guard.held[rsID{cs.name, name}]; h != nil {
					rs.Held, rs.Health = true, h.verdict
				}
			}
			if w, ok := want(dest); ok {
				rs.Desired, rs.DesiredWeight = !w.drainOnly, w.Weight
			}
			if k, ok := find(dest); ok {
				rs.InKernel, rs.KernelWeight, rs.ActiveConns, rs.InactConns = true, k.Weight, k.ActiveConns, k.InactConns
			}
			for _, r := range cs.reals {
				if r.name == name && st != nil {
					_, rs.Warming = warmWeight(effectiveWeight(r, st), st.warmSince, r.warmup, now)
				}
			}
			ss.RealServers = append(ss.RealServers, rs)
		}
		for _, r := range cs.reals {
			add(r.name, r.dest, d.state[rsID{cs.name, r.name}])
		}
		if cs.sorry != nil {
			add("sorry", *cs.sorry, nil)
		}
		out = append(out, ss)
	}
	return out
}

// LastError is the error of the last pass, nil if it applied everything.
func (d *Director) LastError() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.lastErr
}

// ServiceCounters is what the kernel counts for one configured service:
// its cumulative counters and each destination's, by real server name
// ("ip:port", or "sorry").
type ServiceCounters struct {
	Stats       Stats
	RealServers map[string]DestCounters
}

// DestCounters is one destination's counters and connection counts.
type DestCounters struct {
	Stats                   Stats
	ActiveConns, InactConns int
}

// Counters reads the kernel's counters of every configured service now,
// by service name, as a scrape of /metrics does; services the kernel does
// not hold are absent.
func (d *Director) Counters(ctx context.Context) (map[string]ServiceCounters, error) {
	kernel, names, err := d.readKernel(ctx)
	if err != nil {
		return nil, err
	}
	out := make(map[string]ServiceCounters, len(kernel))
	for _, ks := range kernel {
		cs := names[ks.Key]
		if cs == nil {
			continue
		}
		sc := ServiceCounters{Stats: ks.Stats, RealServers: make(map[string]DestCounters, len(ks.Dests))}
		for _, dst := range ks.Dests {
			sc.RealServers[realserverName(cs, dst)] = DestCounters{Stats: dst.Stats, ActiveConns: dst.ActiveConns, InactConns: dst.InactConns}
		}
		out[cs.name] = sc
	}
	return out, nil
}
