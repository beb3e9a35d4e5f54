package daemon

import (
	"github.com/lvsd/lvsd/checks"
	"github.com/lvsd/lvsd/config"
	"github.com/lvsd/lvsd/director"
)

// checksPart runs the health checks and hands their verdicts to the
// director, the one owner of real-server health. The scheduler's rise and
// fall are its own business; what reaches the director is a verdict.
type checksPart struct {
	sched *checks.Scheduler
	dir   *director.Director // nil: VRRP only, no services to check
}

// verdict is the scheduler's transition callback.
func (p *checksPart) verdict(t checks.Transition) {
	if p.dir == nil {
		return
	}
	p.dir.SetHealth(t.Service, t.RealServer, director.Health{Known: true, Healthy: t.Healthy, Weight: t.Weight,
		Cause: causeOf(t.Reason), Reason: t.Reason})
}

// doubt is the scheduler's doubt callback: the eviction guard waits for
// servers in doubt before it calls a failure a lone one.
func (p *checksPart) doubt(d checks.Doubt) {
	if p.dir != nil {
		p.dir.SetDoubt(d.Service, d.RealServer, d.InDoubt)
	}
}

// apply points the checks at cfg: renamed services (new name -> old) keep
// their checks' state. A real server without checks is healthy, as in
// keepalived: that is its verdict, given again on every apply, so one
// whose checks a reload removed comes back.
func (p *checksPart) apply(cfg *config.Config, renames map[string]string) {
	p.sched.Update(targetsOf(cfg, renames))
	for _, s := range cfg.Services {
		for _, rs := range s.RealServers {
			if len(rs.Checks) == 0 {
				p.verdict(checks.Transition{Service: s.Name, RealServer: rs.Key(), Healthy: true, Reason: "no checks configured", Weight: -1})
			}
		}
	}
}

func (p *checksPart) Prepare(c *change) (func(), error) {
	return func() { p.apply(c.next, c.renames) }, nil
}

// targetsOf is what the checks probe under cfg: every real server that has
// checks. renames (new service name -> old) lets renamed services keep
// their verdicts.
func targetsOf(cfg *config.Config, renames map[string]string) []checks.Target {
	var out []checks.Target
	for _, s := range cfg.Services {
		for _, rs := range s.RealServers {
			if len(rs.Checks) == 0 {
				continue
			}
			out = append(out, checks.Target{
				Service: s.Name, RealServer: rs.Key(), Addr: rs.AddrPort(),
				Checks: rs.Checks, StartHealthy: !s.AlphaOn(), Previous: renames[s.Name],
			})
		}
	}
	return out
}

// causeOf says what a failed check's reason tells about the server, for
// the eviction guard.
func causeOf(reason string) director.Cause {
	switch class := checks.ReasonClass(reason); {
	case class == checks.LocalClass:
		return director.CauseLocal
	case checks.ServerAnswered(class):
		return director.CauseAnswered
	}
	return director.CauseSilent
}
