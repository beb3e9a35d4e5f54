package director

import (
	"context"
	"fmt"
	"slices"
	"sync"

	"golang.org/x/sys/unix"
)

// Fake is an in-memory IPVS for tests. It answers like the kernel does
// (EEXIST, ESRCH, ENOENT) and counts the operations it was sent.
type Fake struct {
	mu    sync.Mutex
	table map[ServiceKey]*KernelService
	ops   map[OpKind]int
	// FailOp, when set, is asked before each op; a non-nil error fails it.
	FailOp func(Op) error
}

// NewFake returns an empty fake table.
func NewFake() *Fake {
	return &Fake{table: map[ServiceKey]*KernelService{}, ops: map[OpKind]int{}}
}

// Dump implements IPVS.
func (f *Fake) Dump(ctx context.Context) ([]KernelService, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]KernelService, 0, len(f.table))
	for _, s := range f.table {
		c := *s
		c.Dests = slices.Clone(s.Dests)
		out = append(out, c)
	}
	sortKernel(out)
	return out, nil
}

// Apply implements IPVS.
func (f *Fake) Apply(ctx context.Context, ops []Op) []error {
	f.mu.Lock()
	defer f.mu.Unlock()
	errs := make([]error, len(ops))
	for i, op := range ops {
		f.ops[op.Kind]++
		if f.FailOp != nil {
			if err := f.FailOp(op); err != nil {
				errs[i] = err
				continue
			}
		}
		errs[i] = applyToTable(f.table, op)
	}
	return errs
}

// Close implements IPVS.
func (f *Fake) Close() error { return nil }

// Ops returns how many ops of each kind were sent; Total sums them.
func (f *Fake) Ops() map[OpKind]int {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := map[OpKind]int{}
	for k, v := range f.ops {
		out[k] = v
	}
	return out
}

// TotalOps is the number of ops sent since the last ResetOps.
func (f *Fake) TotalOps() int {
	n := 0
	for _, v := range f.Ops() {
		n += v
	}
	return n
}

// ResetOps zeroes the op counters.
func (f *Fake) ResetOps() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.ops = map[OpKind]int{}
}

// Mutate changes the table out of band, as an operator with ipvsadm would.
func (f *Fake) Mutate(fn func(table map[ServiceKey]*KernelService)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fn(f.table)
}

// applyToTable applies op to an in-memory table with the kernel's errors.
// The reconciler uses it too, to track what the kernel should hold.
func applyToTable(t map[ServiceKey]*KernelService, op Op) error {
	key := op.Service.Key
	s, ok := t[key]
	switch op.Kind {
	case OpNewService:
		if ok {
			return fmt.Errorf("new service %s: %w", key, unix.EEXIST)
		}
		t[key] = &KernelService{Service: op.Service}
		return nil
	case OpUpdateService:
		if !ok {
			return fmt.Errorf("update service %s: %w", key, unix.ESRCH)
		}
		s.Service = op.Service
		return nil
	case OpDelService:
		if !ok {
			return fmt.Errorf("delete service %s: %w", key, unix.ESRCH)
		}
		delete(t, key)
		return nil
	}
	if !ok {
		return fmt.Errorf("%s %s: %w", op.Kind, key, unix.ESRCH)
	}
	i := slices.IndexFunc(s.Dests, func(d Dest) bool { return d.Addr == op.Dest.Addr })
	switch op.Kind {
	case OpNewDest:
		if i >= 0 {
			return fmt.Errorf("new dest %s %s: %w", key, op.Dest.Addr, unix.EEXIST)
		}
		d := op.Dest
		d.ActiveConns, d.InactConns, d.Stats = 0, 0, Stats{}
		s.Dests = append(s.Dests, d)
	case OpUpdateDest:
		if i < 0 {
			return fmt.Errorf("update dest %s %s: %w", key, op.Dest.Addr, unix.ENOENT)
		}
		d := &s.Dests[i]
		d.Weight, d.Forward, d.Upper, d.Lower = op.Dest.Weight, op.Dest.Forward, op.Dest.Upper, op.Dest.Lower
	case OpDelDest:
		if i < 0 {
			return fmt.Errorf("delete dest %s %s: %w", key, op.Dest.Addr, unix.ENOENT)
		}
		s.Dests = slices.Delete(s.Dests, i, i+1)
	}
	return nil
}

func sortKernel(svcs []KernelService) {
	slices.SortFunc(svcs, func(a, b KernelService) int { return compareKeys(a.Key, b.Key) })
	for i := range svcs {
		slices.SortFunc(svcs[i].Dests, func(a, b Dest) int { return a.Addr.Compare(b.Addr) })
	}
}

func compareKeys(a, b ServiceKey) int {
	switch {
	case a.FWMark != b.FWMark:
		return cmpU(a.FWMark, b.FWMark)
	case a.Family != b.Family:
		return cmpU(uint32(a.Family), uint32(b.Family))
	case a.Addr != b.Addr:
		return a.Addr.Compare(b.Addr)
	case a.Port != b.Port:
		return cmpU(uint32(a.Port), uint32(b.Port))
	}
	return cmpU(uint32(a.Protocol), uint32(b.Protocol))
}

func cmpU(a, b uint32) int {
	if a < b {
		return -1
	}
	if a > b {
		return 1
	}
	return 0
}
