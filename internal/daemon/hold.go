package daemon

import (
	"context"
	"time"

	"github.com/lvsd/lvsd/config"
)

// holdPreemptUntilChecked keeps VRRP from preempting a live peer until the
// first health checks have decided every real server. Without the hold, a
// restarted director of higher priority takes the VIPs back within about
// one Master_Down_Interval, while servers that start unknown (alpha) are
// not yet in its IPVS table: every new connection fails until their checks
// pass. keepalived users work around it with a long preempt_delay; here
// the hold lifts as soon as the verdicts are in, and never stops a takeover
// when no master is heard. The director, which holds every verdict, says
// which servers are still undecided.
func (d *Daemon) holdPreemptUntilChecked(ctx context.Context, cfg *config.Config) {
	if d.dir == nil || len(cfg.VRRP) == 0 || d.dir.Undecided() == 0 {
		return
	}
	d.vr.HoldPreempt(true)
	bound := firstVerdictBound(cfg)
	d.log.Info("vrrp: no preemption until the first health checks decide every real server", "at_most", bound)
	go func() {
		deadline := time.NewTimer(bound)
		defer deadline.Stop()
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-deadline.C:
				d.log.Warn("vrrp: first health checks still undecided; preemption allowed", "undecided", d.dir.Undecided())
				d.vr.HoldPreempt(false)
				return
			case <-tick.C:
				if d.dir.Undecided() == 0 {
					d.log.Info("vrrp: first health checks done; preemption allowed")
					d.vr.HoldPreempt(false)
					return
				}
			}
		}
	}()
}

// firstVerdictBound is how long the first verdict on every real server can
// take: a first run spread over the interval (or warmup), then rise passes
// or fall failures, the last of which may take its whole timeout; plus a
// second for scheduling.
func firstVerdictBound(cfg *config.Config) time.Duration {
	var bound time.Duration
	for _, s := range cfg.Services {
		for _, rs := range s.RealServers {
			for _, c := range rs.Checks {
				first := max(c.Interval.Duration, c.Warmup.Duration)
				runs := time.Duration(max(c.Rise, c.Fall) - 1)
				bound = max(bound, first+runs*c.Interval.Duration+c.Timeout.Duration)
			}
		}
	}
	return bound + time.Second
}
