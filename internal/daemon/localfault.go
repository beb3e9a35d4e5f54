package daemon

import (
	"context"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/lvsd/lvsd/config"
	"github.com/lvsd/lvsd/internal/hostres"
)

// The daemon's part of the eviction guard (director/guard.go): it tells the
// director whether lvsd itself is in trouble. What each failed check says
// about its server is causeOf's (checks.go).

// localFault samples lvsd's own state once a second, in its own goroutine;
// the director reads the last sample without waiting.
type localFault struct {
	log  *slog.Logger
	read func() (hostres.Usage, error)
	// backlog is how far the checks are behind their schedule; nil until
	// the scheduler reports it.
	backlog func() (behind int, worst time.Duration)
	cfg     atomic.Pointer[config.EvictionGuard]
	why     atomic.Pointer[string]
	readErr string // the last read error logged, so each is logged once
}

func newLocalFault(cfg *config.Config, log *slog.Logger) *localFault {
	f := &localFault{log: log, read: hostres.Reader{Root: "/"}.Read}
	f.update(cfg)
	none := ""
	f.why.Store(&none)
	return f
}

// update takes the limits of a new config.
func (f *localFault) update(cfg *config.Config) {
	g := cfg.Director.EvictionGuard
	f.cfg.Store(&g)
}

// Prepare is the reload part: the next sample uses next's limits.
func (f *localFault) Prepare(c *change) (func(), error) {
	return func() { f.update(c.next) }, nil
}

// fault is director.WithLocalFault's function.
func (f *localFault) fault() (string, bool) {
	why := *f.why.Load()
	return why, why != ""
}

func (f *localFault) run(ctx context.Context) error {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		f.sample()
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// sample reads lvsd's state once and keeps why it is in trouble, if it is.
func (f *localFault) sample() {
	g := f.cfg.Load()
	u, err := f.read()
	if msg := fmt.Sprint(err); err != nil && msg != f.readErr {
		f.log.Warn("reading lvsd's own resource use", "err", err)
		f.readErr = msg
	}
	why := u.Fault(hostres.Limits{FDPercent: g.FDLimit, MemoryPercent: g.MemoryLimit})
	if why == "" && f.backlog != nil && g.ChecksBehind.Duration > 0 {
		if behind, worst := f.backlog(); behind > 0 && worst >= g.ChecksBehind.Duration {
			why = fmt.Sprintf("checks: %d probes behind schedule, the worst by %s", behind, worst.Round(time.Millisecond))
		}
	}
	f.why.Store(&why)
}
