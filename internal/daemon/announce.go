package daemon

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

// announcePart moves the announcer to a new config; nil without IPVS.
type announcePart struct{ a *anycast.Announcer }

func (p announcePart) Prepare(c *change) (func(), error) {
	if p.a == nil {
		return nil, nil
	}
	return func() { p.a.Update(c.next) }, nil
}

// announceStatus is the announce part of the status document: nil when
// nothing is announced. BIRD is asked for its BGP sessions within a second.
func (d *Daemon) announceStatus(cfg *config.Config) *anycast.Status {
	if d.announce == nil || len(anycast.VIPsOf(cfg)) == 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	st := d.announce.Status(ctx)
	return &st
}
