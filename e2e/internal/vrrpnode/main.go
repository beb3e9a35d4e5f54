// Command vrrpnode runs lvsd's VRRP Manager alone from an lvsd config file,
// with the director's netlink VIPs: a small stand-in for `lvsd run` that the
// VRRP e2e tests and bench/failover can start in a namespace. SIGTERM stops
// it cleanly (priority 0); SIGUSR1 takes over and SIGUSR2 gives up every
// instance, as `lvsd takeover` / `lvsd giveup` would.
package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/lvsd/lvsd/config"
	"github.com/lvsd/lvsd/director"
	"github.com/lvsd/lvsd/vrrp"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: vrrpnode CONFIG")
		os.Exit(2)
	}
	cfg, err := config.Load(os.Args[1])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	m, err := vrrp.NewManager(cfg.VRRP, vrrp.Options{Logger: log, Addresses: director.VIPs{}})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	ops := make(chan os.Signal, 4)
	signal.Notify(ops, syscall.SIGUSR1, syscall.SIGUSR2)
	go func() {
		for sig := range ops {
			for _, v := range cfg.VRRP {
				if sig == syscall.SIGUSR1 {
					m.Takeover(v.Name)
				} else {
					m.Giveup(v.Name)
				}
			}
		}
	}()
	if err := m.Run(ctx); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
