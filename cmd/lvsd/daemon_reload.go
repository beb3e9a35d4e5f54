package main

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"time"

	"github.com/coreos/go-systemd/v22/daemon"

	"github.com/lvsd/lvsd/config"
	"github.com/lvsd/lvsd/director"
)

// Reload, the VIPs held outside VRRP, and the operator verbs of the control
// API: the parts of the daemon that change a running lvsd.

// syncInstance is the VRRP instance with [vrrp.sync], or "".
func syncInstance(cfg *config.Config) string {
	for _, v := range cfg.VRRP {
		if v.Sync != nil {
			return v.Name
		}
	}
	return ""
}

// updateSync hands a reloaded config to the sync follower. When
// [vrrp.sync] moved to another instance, the follower hears that
// instance's state now, not at its next transition.
func (d *lvsdDaemon) updateSync(old, next *config.Config) {
	d.vrrpMu.Lock()
	defer d.vrrpMu.Unlock()
	if d.sync == nil {
		return
	}
	d.sync.Update(next)
	if inst := syncInstance(next); inst != "" && inst != syncInstance(old) {
		d.sync.OnState(inst, d.vrrpMaster[inst])
	}
}

// syncStaticVIPs moves the always-held VIPs from what old needs to what
// next needs (either may be nil).
func (d *lvsdDaemon) syncStaticVIPs(ctx context.Context, old, next *config.Config) error {
	iface, add, del, err := staticVIPChanges(old, next)
	if err != nil {
		return err
	}
	if len(del) > 0 {
		if err := d.vips.RemoveVIPs(ctx, iface, del); err != nil {
			return err
		}
	}
	if len(add) > 0 {
		return d.vips.AddVIPs(ctx, iface, add)
	}
	return nil
}

// staticVIPChanges lists the always-held VIPs to add and remove going
// from old to next (either may be nil), on iface.
func staticVIPChanges(old, next *config.Config) (iface string, add, del []netip.Prefix, err error) {
	var have, want []netip.Prefix
	if old != nil {
		have = director.StaticVIPs(old)
		iface = old.Director.Interface
	}
	if next != nil {
		want = director.StaticVIPs(next)
		iface = next.Director.Interface
	}
	for _, p := range want {
		if !slices.Contains(have, p) {
			add = append(add, p)
		}
	}
	for _, p := range have {
		if !slices.Contains(want, p) {
			del = append(del, p)
		}
	}
	if len(add)+len(del) > 0 && iface == "" {
		return "", nil, nil, errors.New("director.interface is needed to hold service VIPs that no VRRP instance covers")
	}
	return iface, add, del, nil
}

// Reload re-reads the config file. Everything is validated before anything
// changes; on error the old config keeps running and the error is kept for
// status and metrics.
func (d *lvsdDaemon) Reload() error {
	d.reloadMu.Lock()
	defer d.reloadMu.Unlock()
	_, _ = daemon.SdNotify(false, daemon.SdNotifyReloading)
	defer daemon.SdNotify(false, daemon.SdNotifyReady)
	old := d.config()
	err := d.reload(old)
	d.mu.Lock()
	d.lastReload, d.reloadErr = time.Now(), err
	d.mu.Unlock()
	d.reloadTime.SetToCurrentTime()
	if err != nil {
		d.reloadOK.Set(0)
		d.log.Error("reload rejected; the old config keeps running", "config", old.Path, "err", err)
		return err
	}
	d.reloadOK.Set(1)
	d.log.Info("config reloaded", "config", old.Path)
	return nil
}

// startSyncIfAdded starts connection sync when next is the first config
// with [vrrp.sync]; the caller installs it once the reload commits.
func (d *lvsdDaemon) startSyncIfAdded(next *config.Config) (syncFollower, error) {
	inst := syncInstance(next)
	d.vrrpMu.Lock()
	running := d.sync != nil
	d.vrrpMu.Unlock()
	if inst == "" || running {
		return nil, nil
	}
	f, err := newSyncFollower(next, d.log, d.syncOpts)
	if err != nil {
		return nil, fmt.Errorf("vrrp[%s]: [vrrp.sync]: %w", inst, err)
	}
	return f, nil
}

func (d *lvsdDaemon) reload(old *config.Config) error {
	next, err := config.Load(old.Path)
	if err != nil {
		return err
	}
	if d.dir == nil && len(next.Services) > 0 {
		return director.ErrNoIPVS
	}
	staticIface, addStatic, delStatic, err := staticVIPChanges(old, next)
	if err != nil {
		return err
	}
	// Everything that can reject the reload runs before anything changes:
	// connection sync starts its backup daemon (the first [vrrp.sync]),
	// VRRP is checked (and newly tracked links watched) before the
	// director takes the new table, and applied after.
	added, err := d.startSyncIfAdded(next)
	if err != nil {
		return err
	}
	abort := func(err error) error {
		if added != nil {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if cerr := added.Close(ctx); cerr != nil {
				d.log.Warn("stopping the connection sync of a rejected reload", "err", cerr)
			}
		}
		return err
	}
	applyRT := func() {}
	if prio := next.Director.VRRPRTPriority; prio != old.Director.VRRPRTPriority {
		if err := d.checkRT(prio); err != nil {
			return abort(rtPriorityError(next, err))
		}
		if applyRT, err = d.vr.PrepareRTPriority(prio); err != nil {
			return abort(rtPriorityError(next, err))
		}
	}
	applyVRRP, err := d.vr.Prepare(next.VRRP)
	if err != nil {
		return abort(err)
	}
	if d.dir != nil {
		if err := d.dir.Update(next); err != nil {
			return abort(err)
		}
		d.announce.Update(next)
	}
	if added != nil {
		d.vrrpMu.Lock()
		d.sync = added
		d.vrrpMu.Unlock()
	}
	d.fault.update(next)
	renames := director.Renames(old, next)
	d.mu.Lock()
	d.cfg = next
	for to, from := range renames {
		if m, ok := d.healthy[from]; ok && d.healthy[to] == nil {
			d.healthy[to] = m
			delete(d.healthy, from)
		}
	}
	for svc, m := range d.healthy {
		s := findService(next, svc)
		if s == nil {
			delete(d.healthy, svc)
			continue
		}
		for rs := range m {
			if !slices.ContainsFunc(s.RealServers, func(r *config.RealServer) bool { return r.Key() == rs }) {
				delete(m, rs)
			}
		}
	}
	d.mu.Unlock()

	// A VIP moving between the static set and a VRRP instance must not be
	// removed after its new holder added it: static VIPs leave first, then
	// VRRP changes, then static VIPs arrive.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var vipErrs []error
	if len(delStatic) > 0 {
		vipErrs = append(vipErrs, d.vips.RemoveVIPs(ctx, staticIface, delStatic))
	}
	applyVRRP()
	applyRT()
	if len(addStatic) > 0 {
		vipErrs = append(vipErrs, d.vips.AddVIPs(ctx, staticIface, addStatic))
	}
	d.updateSync(old, next)
	d.logWarnings(next)
	d.sched.Update(targetsOf(next, renames))
	d.markUncheckedHealthy(next)
	if d.dir != nil {
		if err := d.applySysctls(next); err != nil {
			d.log.Warn("kernel settings", "err", err)
		}
	}
	return errors.Join(vipErrs...)
}

func findService(cfg *config.Config, name string) *config.Service {
	for _, s := range cfg.Services {
		if s.Name == name {
			return s
		}
	}
	return nil
}

func (d *lvsdDaemon) Drain(service, realserver string, on bool) error {
	if d.dir == nil {
		return errors.New("no IPVS services on this director")
	}
	return d.dir.Drain(service, realserver, on)
}

func (d *lvsdDaemon) Takeover(instance string) error {
	if d.vr == nil {
		return errors.New("no VRRP instances on this director")
	}
	return d.vr.Takeover(instance)
}

func (d *lvsdDaemon) Giveup(instance string) error {
	if d.vr == nil {
		return errors.New("no VRRP instances on this director")
	}
	return d.vr.Giveup(instance)
}

func (d *lvsdDaemon) Reset(instance string) error {
	if d.vr == nil {
		return errors.New("no VRRP instances on this director")
	}
	return d.vr.Reset(instance)
}
