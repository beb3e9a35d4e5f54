package director

import (
	"context"
	"errors"
	"fmt"
)

// Flush deletes every service this director owns (configured now or
// retired and still in the kernel), for on_exit = "flush". Services of
// others stay, as in every pass.
func (d *Director) Flush(ctx context.Context) error {
	d.passMu.Lock()
	defer d.passMu.Unlock()
	kernel, err := d.ipvs.Dump(ctx)
	if err != nil {
		return fmt.Errorf("dump ipvs table: %w", err)
	}
	d.mu.Lock()
	owned := map[ServiceKey]string{}
	for _, cs := range d.services {
		owned[cs.svc.Key] = cs.name
	}
	for k := range d.retired {
		owned[k] = ""
	}
	d.mu.Unlock()
	var ops []Op
	for _, ks := range kernel {
		if name, ok := owned[ks.Key]; ok {
			ops = append(ops, Op{Kind: OpDelService, Service: ks.Service, OldSvc: ks.Service, Name: name})
		}
	}
	var errs []error
	for i, err := range d.ipvs.Apply(ctx, ops) {
		d.metrics.op(ops[i].Kind, err)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", ops[i], err))
		}
	}
	d.expected = nil
	return errors.Join(errs...)
}
