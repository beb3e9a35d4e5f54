package daemon

import (
	"errors"
)

// The operator's verbs of the control API (internal/control); Status is
// status.go's and Reload reload.go's.

// Drain drains a real server (on) or puts it back (!on).
func (d *Daemon) Drain(service, realserver string, on bool) error {
	if d.dir == nil {
		return errors.New("no IPVS services on this director")
	}
	return d.dir.Drain(service, realserver, on)
}

// Takeover makes this director master of a VRRP instance now.
func (d *Daemon) Takeover(instance string) error { return d.vr.Takeover(instance) }

// Giveup hands a VRRP instance to the peer now.
func (d *Daemon) Giveup(instance string) error { return d.vr.Giveup(instance) }

// Reset undoes Takeover or Giveup, ends a resource hold-off and clears a
// failed resource stop of a VRRP instance.
func (d *Daemon) Reset(instance string) error { return d.vr.Reset(instance) }
