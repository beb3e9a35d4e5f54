package daemon

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/coreos/go-systemd/v22/daemon"

	"github.com/lvsd/lvsd/config"
)

// Run starts every part, reports READY to systemd and blocks until ctx
// ends or a part fails; then VRRP resigns first, so the peer takes over
// while this node still forwards, and the kernel is left as on_exit says.
func (d *Daemon) Run(ctx context.Context) error {
	cfg := d.config()
	d.logWarnings(cfg)
	d.sysctls.set(cfg)
	if err := d.vips.start(ctx, cfg); err != nil {
		return err
	}
	d.checks.apply(cfg, nil)

	for _, e := range []*endpoint{d.control, d.metricsL} {
		if err := e.open(cfg); err != nil {
			return err // the deferred close of one already open runs
		}
		defer e.close()
	}

	parts, stopParts := context.WithCancel(context.Background())
	defer stopParts()
	var wg sync.WaitGroup
	errc := make(chan error, 4)
	start := func(name string, f func(context.Context) error) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := f(parts); err != nil && !errors.Is(err, context.Canceled) {
				errc <- fmt.Errorf("%s: %w", name, err)
			}
		}()
	}
	if d.dir != nil {
		if _, err := d.dir.Reconcile(ctx); err != nil {
			d.log.Error("first reconcile pass", "err", err)
		}
		start("director", d.dir.Run)
		start("local fault", d.fault.run)
		// After the first pass: nothing is announced before the kernel
		// holds the pool.
		start("announce", d.announce.Run)
	}
	start("checks", d.sched.Run)
	d.holdPreemptUntilChecked(parts, cfg)
	vrDone := make(chan struct{})
	go func() {
		defer close(vrDone)
		if err := d.vr.Run(parts); err != nil {
			errc <- err
		}
	}()
	d.log.Info("lvsd running", "node", cfg.Director.Name, "services", len(cfg.Services), "vrrp_instances", len(cfg.VRRP), "version", d.version)
	_, _ = daemon.SdNotify(false, daemon.SdNotifyReady)
	go d.watchdog(parts)

	var runErr error
	select {
	case <-ctx.Done():
	case runErr = <-errc:
	}
	_, _ = daemon.SdNotify(false, daemon.SdNotifyStopping)
	d.log.Info("lvsd stopping")
	stopParts()
	// Masters with resources stop them before they resign.
	vrBound := max(5*time.Second, d.vr.StopBound())
	select {
	case <-vrDone:
	case <-time.After(vrBound):
		d.log.Warn("VRRP did not stop in time", "waited", vrBound)
	}
	wg.Wait()
	d.shutdownKernel(d.config())
	return runErr
}

// shutdownKernel stops the sync daemons and, with on_exit = "flush",
// removes what lvsd programmed. With "keep" the table and static VIPs stay,
// so restarting lvsd never interrupts traffic.
func (d *Daemon) shutdownKernel(cfg *config.Config) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	d.sync.close(ctx)
	if cfg.Director.OnExit != "flush" {
		return
	}
	if d.dir != nil {
		if err := d.dir.Flush(ctx); err != nil {
			d.log.Error("on_exit = flush", "err", err)
		}
	}
	if err := d.vips.release(ctx); err != nil {
		d.log.Error("on_exit = flush: removing VIPs", "err", err)
	}
}
