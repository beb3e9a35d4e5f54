package main

import (
	"context"
	"time"

	"github.com/lvsd/lvsd/anycast"
	"github.com/lvsd/lvsd/config"
)

// Active-active: the announcer puts the VIPs of announced services on the
// announce device while the director says they can serve (see anycast).
// The director owns the pools; the announcer looks again after each of its
// passes, after each VRRP transition and after a reload.

// withAnnounceDevice gives the announcer a device other than a TUN device.
func withAnnounceDevice(open func(name string) (anycast.Device, error)) daemonOption {
	return func(h *daemonHost) { h.announceDevice = open }
}

// newAnnouncer builds the announcer; the director must exist (active-active
// needs IPVS). It runs even with nothing announced, so a reload can add the
// first announced service.
func (d *lvsdDaemon) newAnnouncer(cfg *config.Config, h daemonHost) *anycast.Announcer {
	return anycast.New(cfg, anycast.Options{Logger: d.log, Director: d.dir, OpenDevice: h.announceDevice})
}

// announceAfterPass is the director's pass hook: readiness may have moved.
func (d *lvsdDaemon) announceAfterPass() {
	if d.announce != nil {
		d.announce.Trigger()
	}
}

// logWarnings logs what `lvsd check` warns about, at start and reload.
func (d *lvsdDaemon) logWarnings(cfg *config.Config) {
	for _, w := range cfg.Warnings {
		d.log.Warn("config warning", "warning", w.Error())
	}
}

// announceStatus is the announce part of the status document: nil when
// nothing is announced. BIRD is asked for its BGP sessions within a second.
func (d *lvsdDaemon) announceStatus(cfg *config.Config) *anycast.Status {
	if d.announce == nil || len(anycast.VIPsOf(cfg)) == 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	st := d.announce.Status(ctx)
	return &st
}
