package daemon

import (
	"context"
	"log/slog"
	"time"

	"github.com/coreos/go-systemd/v22/daemon"
)

// watchdog pings systemd (WATCHDOG=1) every third of WatchdogSec, but only
// while the daemon still answers: each ping waits for a status snapshot,
// which takes the locks of the daemon, the director, the checks and VRRP.
// A deadlock in any of them stops the pings, and systemd restarts lvsd
// after WatchdogSec.
func (d *Daemon) watchdog(ctx context.Context) {
	every, err := daemon.SdWatchdogEnabled(false)
	if err != nil || every == 0 {
		return
	}
	pingWhileAnswering(ctx, every/3, func() { d.Status(ctx) }, func() {
		_, _ = daemon.SdNotify(false, daemon.SdNotifyWatchdog)
	}, d.log)
}

// pingWhileAnswering calls ping every period, each time only once snapshot
// has returned. A snapshot that takes longer than a period is waited for,
// not started again, and no ping goes out meanwhile.
func pingWhileAnswering(ctx context.Context, period time.Duration, snapshot, ping func(), log *slog.Logger) {
	t := time.NewTicker(period)
	defer t.Stop()
	var answered chan struct{} // of the snapshot still running, if any
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if answered == nil {
			answered = make(chan struct{})
			go func(done chan struct{}) { snapshot(); close(done) }(answered)
		}
		wait := time.NewTimer(period)
		select {
		case <-answered:
			answered = nil
			ping()
		case <-wait.C:
			log.Error("watchdog: no status snapshot within a third of WatchdogSec; not pinging systemd")
		case <-ctx.Done():
			wait.Stop()
			return
		}
		wait.Stop()
	}
}
