package vrrp

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/lvsd/lvsd/internal/proc"
)

// opRunner runs one instance's resource commands (ActResource) in order,
// one at a time, on its own goroutine: never under the executor's lock and
// never on the timing thread. Each outcome goes back to the machine as
// EvResource. Its queue is unbounded: the executor never waits for it.
type opRunner struct {
	in        *instance
	mu        sync.Mutex
	items     []Action
	cancelled map[uint64]bool
	cur       uint64
	curCancel context.CancelFunc
	wake      chan struct{}
	closed    bool
	done      chan struct{}
}

func newOpRunner(in *instance) *opRunner {
	return &opRunner{in: in, cancelled: map[uint64]bool{}, wake: make(chan struct{}, 1), done: make(chan struct{})}
}

func (r *opRunner) push(a Action) {
	r.mu.Lock()
	r.items = append(r.items, a)
	r.mu.Unlock()
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// cancel kills the run with token, or keeps it from starting. It does no
// I/O (the executor calls it under its lock).
func (r *opRunner) cancel(token uint64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.cur == token && r.curCancel != nil {
		r.curCancel()
		return
	}
	r.cancelled[token] = true
}

// close lets run return once the queue is drained, and waits for that.
func (r *opRunner) close() {
	r.mu.Lock()
	r.closed = true
	r.mu.Unlock()
	select {
	case r.wake <- struct{}{}:
	default:
	}
	<-r.done
}

func (r *opRunner) run() {
	defer close(r.done)
	for {
		r.mu.Lock()
		if len(r.items) == 0 {
			closed := r.closed
			r.mu.Unlock()
			if closed {
				return
			}
			<-r.wake
			continue
		}
		a := r.items[0]
		r.items[0] = Action{}
		r.items = r.items[1:]
		if r.cancelled[a.Token] {
			delete(r.cancelled, a.Token)
			r.mu.Unlock()
			r.in.ex.post(r.in, Event{Kind: EvResource, Token: a.Token, Err: context.Canceled, Detail: "cancelled before it ran"})
			continue
		}
		ctx, cancel := context.WithCancel(context.Background())
		r.cur, r.curCancel = a.Token, cancel
		r.mu.Unlock()
		r.in.runResource(ctx, &a)
		cancel()
		r.mu.Lock()
		r.cur, r.curCancel = 0, nil
		r.mu.Unlock()
	}
}

// runResource runs one resource command and reports its outcome. A stop
// runs only once the VIP removal queued before it is done, so clients are
// never sent to a service that is going away.
func (in *instance) runResource(ctx context.Context, a *Action) {
	if a.Op == OpStop {
		in.flush()
	}
	ctx, cancel := context.WithTimeout(ctx, a.Timeout)
	res := in.exec(ctx, a.Argv, proc.RunOptions{Env: []string{
		"LVSD_INSTANCE=" + in.name, "LVSD_RESOURCE=" + a.Resource, "LVSD_OP=" + a.Op.String()}})
	cancel()
	err := res.Err
	if res.TimedOut && errors.Is(err, context.DeadlineExceeded) {
		err = fmt.Errorf("%s: timed out after %v", a.Op, a.Timeout)
	}
	detail := res.String()
	log := in.log.With("instance", in.name, "resource", a.Resource, "op", a.Op.String(), "took", res.Duration.Round(time.Millisecond))
	switch {
	case err != nil && a.Op == OpStop:
		log.Error("vrrp: resource stop failed; lvsd cannot fence: the instance stays in fault until `lvsd reset` once the resource is known to be stopped", "result", detail)
	case err != nil:
		log.Warn("vrrp: resource "+a.Op.String()+" failed", "result", detail)
	case a.Op == OpStatus:
		log.Debug("vrrp: resource status ok")
	default:
		log.Info("vrrp: resource " + a.Op.String() + " done")
	}
	in.ex.post(in, Event{Kind: EvResource, Token: a.Token, Err: err, Detail: detail, Duration: res.Duration})
}

// logResource says why a start or stop is about to run.
func (in *instance) logResource(a *Action) {
	if a.Op == OpStatus {
		return
	}
	args := []any{"instance", in.name, "resource", a.Resource, "op", a.Op.String()}
	if a.Reason != "" {
		args = append(args, "reason", a.Reason)
	}
	in.log.Info("vrrp: resource "+a.Op.String(), args...)
}

// quiet says the machine is in Init with nothing running or left to stop:
// what shutdownWait waits for.
func (m *Machine) quiet() bool {
	return m.state == StateInit && m.res.busy == 0 && !m.res.releasing && m.nextStop(false) == nil
}

// shutdownWait resigns (a master with resources stops them first) and
// waits, at most bound, until that is done.
func (in *instance) shutdownWait(reason string, bound time.Duration) {
	ch := make(chan struct{})
	in.ex.mu.Lock()
	in.stopped = ch
	in.ex.mu.Unlock()
	in.shutdown(reason)
	select {
	case <-ch:
	case <-time.After(bound):
		in.log.Error("vrrp: resources still stopping; giving up waiting", "instance", in.name, "after", bound)
	}
}

// stopBound is how long an instance may take to stop its resources.
func (in *instance) stopBound() time.Duration {
	in.ex.mu.Lock()
	defer in.ex.mu.Unlock()
	return in.m.stopBound()
}
