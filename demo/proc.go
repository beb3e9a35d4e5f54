package main

import (
	"path/filepath"
	"sync"

	ilab "github.com/lvsd/lvsd/internal/lab"
)

// start starts argv inside h, its output going to LOGDIR/NAME.log; lineFn,
// when set, also sees every line of it as it comes.
func start(h *host, name, logDir string, lineFn func(string), argv ...string) (*proc, error) {
	return h.Start(ilab.ProcOptions{Log: filepath.Join(logDir, name+".log"), OnLine: lineFn}, argv...)
}

// procs is every process the demo started, so cleanup can stop them all at
// once rather than one after the other.
type procs struct {
	mu  sync.Mutex
	all []*proc
}

func (ps *procs) add(p *proc) *proc {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	ps.all = append(ps.all, p)
	return p
}

func (ps *procs) stopAll() {
	ps.mu.Lock()
	all := ps.all
	ps.mu.Unlock()
	var wg sync.WaitGroup
	for _, p := range all {
		wg.Go(func() { p.Stop() })
	}
	wg.Wait()
}
