package director

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// The reconciler: each pass dumps the kernel, diffs it against the table
// config and health ask for, and sends the smallest set of ops.

// Trigger asks Run for a pass soon.
func (d *Director) Trigger() {
	select {
	case d.trigger <- struct{}{}:
	default:
	}
}

// Result is the outcome of one pass.
type Result struct {
	Ops   []Op // ops sent (or, for Plan, that would be sent)
	Drift int  // ops that repaired changes made by someone else
	// NextStep is when a warmup weight must step next (zero if none).
	NextStep time.Time
}

// Plan dumps the kernel and returns the ops a pass would make, without
// making them.
func (d *Director) Plan(ctx context.Context) (Result, error) {
	d.passMu.Lock()
	defer d.passMu.Unlock()
	kernel, err := d.ipvs.Dump(ctx)
	if err != nil {
		return Result{}, fmt.Errorf("dump ipvs table: %w", err)
	}
	ops, next := d.planLocked(kernel)
	return Result{Ops: ops, NextStep: next}, nil
}

func (d *Director) planLocked(kernel []KernelService) ([]Op, time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	desired, next := buildDesired(d.services, d.state, d.pools, d.now())
	owned := func(k ServiceKey) bool { return d.ownAll || d.retired[k] }
	return diff(desired, kernel, owned), next
}

// Reconcile runs one pass: dump, diff, apply. The error joins every
// failed op; ops that did not fail are applied regardless.
func (d *Director) Reconcile(ctx context.Context) (Result, error) {
	d.passMu.Lock()
	defer d.passMu.Unlock()
	start := d.now()
	res, err := d.reconcileLocked(ctx)
	d.metrics.pass(res, err, d.now().Sub(start))
	d.mu.Lock()
	d.lastErr = err
	d.mu.Unlock()
	if d.onPass != nil {
		d.onPass()
	}
	return res, err
}

func (d *Director) reconcileLocked(ctx context.Context) (Result, error) {
	kernel, err := d.ipvs.Dump(ctx)
	if err != nil {
		return Result{}, fmt.Errorf("dump ipvs table: %w", err)
	}
	var res Result
	if d.expected != nil {
		res.Drift = len(driftOps(d.expected, kernel))
	}
	ops, next := d.planLocked(kernel)
	res.NextStep = next
	table := make(map[ServiceKey]*KernelService, len(kernel))
	for i := range kernel {
		table[kernel[i].Key] = &kernel[i]
	}
	var errs []error
	// Creations of services first, alone: destinations of a service the
	// kernel refused are then skipped instead of failing one by one.
	split := 0
	for split < len(ops) && ops[split].Kind == OpNewService {
		split++
	}
	failed := map[ServiceKey]bool{}
	run := func(batch []Op) {
		if len(batch) == 0 {
			return
		}
		for i, err := range d.ipvs.Apply(ctx, batch) {
			op := batch[i]
			d.metrics.op(op.Kind, err)
			if err != nil {
				failed[op.Service.Key] = true
				errs = append(errs, fmt.Errorf("%s: %w", op, err))
				d.log.Error("ipvs op failed", "service", op.Name, "realserver", op.RealServer, "op", op.String(), "err", err)
				continue
			}
			res.Ops = append(res.Ops, op)
			_ = applyToTable(table, op)
		}
	}
	if len(ops) > 0 {
		res.Ops = make([]Op, 0, len(ops))
	}
	run(ops[:split])
	rest := ops[split:]
	if len(failed) > 0 {
		rest = make([]Op, 0, len(rest))
		for i := range ops[split:] {
			if op := &ops[split+i]; !failed[op.Service.Key] {
				rest = append(rest, *op)
			}
		}
	}
	run(rest)
	if res.Drift > 0 {
		d.log.Warn("repaired out-of-band changes to the ipvs table", "ops", res.Drift)
	}
	d.expected = table
	d.mu.Lock()
	d.last = table
	for k := range d.retired {
		if table[k] == nil {
			delete(d.retired, k)
		}
	}
	d.mu.Unlock()
	return res, errors.Join(errs...)
}

// driftOps are the ops that would restore what we left in the kernel,
// counting only services we had there.
func driftOps(expected map[ServiceKey]*KernelService, kernel []KernelService) []Op {
	want := make(map[ServiceKey]*desiredService, len(expected))
	for k, s := range expected {
		ds := &desiredService{svc: s.Service}
		for _, d := range s.Dests {
			ds.dests = append(ds.dests, desiredDest{Dest: d})
		}
		want[k] = ds
	}
	return diff(want, kernel, func(ServiceKey) bool { return false })
}

// Run reconciles on every trigger, every reconcile_interval, when a warmup
// weight must step, when the eviction guard lets held failures go, and
// after a failed pass with backoff (1 s doubling up to the interval). It
// returns when ctx ends.
func (d *Director) Run(ctx context.Context) error {
	backoff := time.Duration(0)
	for {
		res, err := d.Reconcile(ctx)
		d.mu.Lock()
		wait := d.interval
		d.mu.Unlock()
		if err != nil {
			backoff = min(max(2*backoff, time.Second), wait)
			wait = backoff
			d.log.Error("reconcile pass failed; retrying", "err", err, "retry_in", wait)
		} else {
			backoff = 0
		}
		if !res.NextStep.IsZero() {
			wait = min(wait, max(res.NextStep.Sub(d.now()), 10*time.Millisecond))
		}
		if !d.waitForPass(ctx, wait) {
			return ctx.Err()
		}
	}
}

// waitForPass waits up to wait for a reason to run the next pass: a
// trigger, or the eviction guard letting held failures go. It reports
// false when ctx ends.
func (d *Director) waitForPass(ctx context.Context, wait time.Duration) bool {
	t := time.NewTimer(wait)
	defer t.Stop()
	for {
		released, next := d.tickGuard()
		if released {
			return true
		}
		var look <-chan time.Time
		var g *time.Timer
		if !next.IsZero() {
			g = time.NewTimer(max(next.Sub(d.now()), 10*time.Millisecond))
			look = g.C
		}
		woke := true
		select {
		case <-ctx.Done():
			return false
		case <-d.trigger:
		case <-t.C:
		case <-look:
			woke = false
		}
		if g != nil {
			g.Stop()
		}
		if woke {
			return true
		}
	}
}
