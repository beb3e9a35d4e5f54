package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime"
	"strings"
	"syscall"

	"github.com/lvsd/lvsd/config"
	"github.com/lvsd/lvsd/internal/daemon"
)

func init() {
	register(command{name: "run", summary: "run the director daemon: IPVS table, health checks, VRRP, metrics and control socket", run: runRun})
}

func runRun(args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("run", "Run lvsd in the foreground. SIGHUP (or `lvsd reload`) re-reads the config; on any\nerror the old config keeps running. SIGTERM sends VRRP priority 0 so the peer takes over at\nonce, then exits.", stderr)
	path := fs.String("config", "/etc/lvsd/lvsd.toml", "config file")
	logFormat := fs.String("log-format", "text", "log format: text or json")
	logLevel := fs.String("log-level", "info", "log level: debug, info, warn or error")
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	logger, err := newLogger(stderr, *logFormat, *logLevel)
	if err != nil {
		fmt.Fprintln(stderr, "lvsd run:", err)
		return 2
	}
	cfg, err := config.Load(*path)
	if err != nil {
		fmt.Fprintf(stderr, "lvsd run: config rejected:\n%v\n", err)
		return 1
	}
	logger.Debug("go scheduler: Ps to spare for the VRRP timing thread", "gomaxprocs", daemon.KeepTimingHeadroom(), "cpus", runtime.NumCPU())
	d, err := daemon.New(cfg, daemon.WithLogger(logger), daemon.WithVersion(lvsdVersion()))
	if err != nil {
		fmt.Fprintf(stderr, "lvsd run: %v\n", err)
		return 1
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	go func() {
		for range hup {
			_ = d.Reload()
		}
	}()
	if err := d.Run(ctx); err != nil {
		logger.Error("lvsd stopped", "err", err)
		return 1
	}
	return 0
}

func newLogger(w io.Writer, format, level string) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("-log-level %q: want debug, info, warn or error", level)
	}
	opts := &slog.HandlerOptions{Level: lv}
	switch strings.ToLower(format) {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("-log-format %q: want text or json", format)
}
