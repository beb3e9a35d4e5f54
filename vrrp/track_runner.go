package vrrp

import (
	"context"

	"github.com/lvsd/lvsd/internal/proc"
)

// scriptRunner runs one tracked script of one instance every interval,
// on its own goroutine, and hands every result to the machine (EvTrack),
// which applies rise and fall. A script still running after its timeout
// is killed with its process group and counts as failed.
type scriptRunner struct {
	cfg    scriptSettings
	cancel context.CancelFunc
	done   chan struct{}
}

// startScripts makes the instance's running scripts match its settings:
// a script whose command, interval or timeout changed starts again.
// (m.ops held.)
func (m *Manager) startScripts(in *instance) {
	want := in.life.configured.ha.scripts
	for name, r := range in.scripts {
		keep := false
		for _, s := range want {
			keep = keep || s.name == name && s.sameRun(r.cfg)
		}
		if !keep {
			r.stop()
			delete(in.scripts, name)
		}
	}
	for _, s := range want {
		if _, running := in.scripts[s.name]; running {
			continue
		}
		ctx, cancel := context.WithCancel(m.runCtx)
		r := &scriptRunner{cfg: s, cancel: cancel, done: make(chan struct{})}
		in.scripts[s.name] = r
		m.wg.Add(1)
		go func() {
			defer m.wg.Done()
			defer close(r.done)
			m.runScript(ctx, in, s)
		}()
	}
}

func (r *scriptRunner) stop() {
	r.cancel()
	<-r.done
}

// stopScripts ends every script of the instance.
func (in *instance) stopScripts() {
	for name, r := range in.scripts {
		r.stop()
		delete(in.scripts, name)
	}
}

func (m *Manager) runScript(ctx context.Context, in *instance, s scriptSettings) {
	for {
		rctx, cancel := context.WithTimeout(ctx, s.timeout)
		res := in.exec(rctx, s.command, proc.RunOptions{KillLeftovers: true, Env: []string{"LVSD_INSTANCE=" + in.name}})
		cancel()
		if ctx.Err() != nil {
			return
		}
		// Every interval from the start of a run, as keepalived does. The
		// next run is armed before the result is handed over, so whoever
		// sees a result knows the next run is on the clock (a test's fake
		// clock must not move past it before it is armed).
		fire := make(chan struct{})
		t := m.opts.Clock.AfterFunc(max(s.interval-res.Duration, 0), func() { close(fire) })
		in.ex.post(in, Event{Kind: EvTrack, Track: s.key(), Up: res.Err == nil, Detail: res.String(), Duration: res.Duration})
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-fire:
		}
	}
}

// postTrack reports a weighted interface or service to the instance.
func (in *instance) postTrack(kind, name string, up bool) {
	in.ex.post(in, Event{Kind: EvTrack, Track: kind + " " + name, Up: up})
}
