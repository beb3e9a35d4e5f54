package daemon

import (
	"time"

	"github.com/coreos/go-systemd/v22/daemon"

	"github.com/lvsd/lvsd/config"
	"github.com/lvsd/lvsd/director"
)

// A reload moves every part of the daemon to the config file as it is now,
// or none: each part first prepares (checks that it can run the new config
// and builds what it needs, changing nothing that runs; it may fail), and
// only when every part has prepared does each commit (which cannot fail).

// preparer is one part of the daemon that a reload moves.
type preparer interface {
	// Prepare checks that the part can run c.next and builds what it
	// needs without changing what runs, and returns the commit that
	// switches the part over (nil: nothing to do). What can go wrong is
	// found here; what the host still refuses at commit is logged.
	Prepare(c *change) (commit func(), err error)
}

// change is one reload: the config in force, the next one, and what is
// worked out once from the two for every part.
type change struct {
	old, next *config.Config
	// renames maps each renamed service to its old name
	// (director.Renames): the director and the checks both carry the
	// state of a renamed service over.
	renames map[string]string
	undo    []func()
}

// onAbort registers f to release what a Prepare acquired (a started
// daemon, an opened socket) should a later part refuse the change.
func (c *change) onAbort(f func()) { c.undo = append(c.undo, f) }

// reloadOrder is every part a reload moves, in the order their commits run;
// their prepares run in the same order, all before the first commit.
func (d *Daemon) reloadOrder() []preparer {
	return []preparer{
		// Memory is locked (when it is to be) before anything the reload
		// builds is used.
		d.memory,
		// The director first: it owns real-server health, and must know a
		// new server before the checks report on it or the announcer asks
		// whether its service is ready.
		ipvsPart{d.dir},
		d.fault, // the guard's limits, which the director's next verdict reads
		announcePart{d.announce},
		// A VIP moving between the static set and a VRRP instance must not
		// be removed after its new holder added it: static VIPs leave
		// before VRRP changes, and arrive after it.
		d.vips.leaving(),
		d.vrrp,
		d.vips.arriving(),
		// Connection sync follows the instance that has [vrrp.sync] once
		// VRRP runs it.
		d.sync,
		// The checks last of the health chain: the verdicts of new targets
		// reach a director that knows their servers.
		d.checks,
		// Kernel settings and the listeners depend on none of the above.
		// The listeners go last: a listener that moves closes its old
		// address only once everything else is in place.
		d.sysctls,
		d.control,
		d.metricsL,
	}
}

// Reload re-reads the config file. Everything is prepared before anything
// changes; on error the old config keeps running and the error is kept for
// status and metrics.
func (d *Daemon) Reload() error {
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

func (d *Daemon) reload(old *config.Config) error {
	next, err := config.Load(old.Path)
	if err != nil {
		return err
	}
	c := &change{old: old, next: next, renames: director.Renames(old, next)}
	if err := apply(c, d.parts); err != nil {
		return err
	}
	d.mu.Lock()
	d.cfg = next
	d.mu.Unlock()
	d.logWarnings(next)
	return nil
}

// apply prepares every part for c, in order, and commits them all if none
// refused; otherwise it releases what the prepares acquired, newest first,
// and returns the refusal.
func apply(c *change, parts []preparer) error {
	commits := make([]func(), 0, len(parts))
	for _, p := range parts {
		commit, err := p.Prepare(c)
		if err != nil {
			for i := len(c.undo) - 1; i >= 0; i-- {
				c.undo[i]()
			}
			return err
		}
		if commit != nil {
			commits = append(commits, commit)
		}
	}
	for _, commit := range commits {
		commit()
	}
	return nil
}
