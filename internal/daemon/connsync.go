package main

import (
	"context"
	"log/slog"

	"github.com/lvsd/lvsd/config"
	"github.com/lvsd/lvsd/director"
)

// syncFollower runs the kernel's IPVS connection-sync daemons in step with
// VRRP: master daemon while an instance is master, backup daemon otherwise.
type syncFollower interface {
	OnState(instance string, master bool)
	Update(cfg *config.Config)
	Close(ctx context.Context) error
}

func newSyncFollower(cfg *config.Config, log *slog.Logger, opts director.SyncOptions) (syncFollower, error) {
	for _, v := range cfg.VRRP {
		if v.Sync != nil {
			opts.Logger = log
			return director.NewSyncManager(cfg, opts)
		}
	}
	return nil, nil
}
