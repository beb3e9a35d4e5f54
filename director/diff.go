package director

import (
	"slices"
)

// forwardLocal is what the kernel reports for a destination that is one of
// its own addresses, whatever forwarding was asked for.
const forwardLocal Forward = 1

func destMatches(want desiredDest, have Dest) bool {
	if have.Forward == forwardLocal {
		have.Forward = want.Forward
	}
	return want.Dest.settingsEqual(have)
}

// diff returns the smallest list of ops that turns kernel into desired,
// touching only services in desired or for which owned is true. Ops come
// grouped by kind in OpKind order, so creations precede deletions and a
// service never passes through an empty state it does not have to.
func diff(desired map[ServiceKey]*desiredService, kernel []KernelService, owned func(ServiceKey) bool) []Op {
	byKind := make([][]Op, len(opNames))
	add := func(op Op) { byKind[op.Kind] = append(byKind[op.Kind], op) }
	have := make(map[ServiceKey]*KernelService, len(kernel))
	for i := range kernel {
		have[kernel[i].Key] = &kernel[i]
	}
	keys := make([]ServiceKey, 0, len(desired))
	newSvcs, newDests := 0, 0
	for k, ds := range desired {
		keys = append(keys, k)
		if have[k] == nil {
			newSvcs, newDests = newSvcs+1, newDests+len(ds.dests)
		}
	}
	slices.SortFunc(keys, compareKeys)
	// Services the kernel lacks come whole: size their lists up front
	// rather than grow slices of 400-byte ops by doubling.
	byKind[OpNewService] = make([]Op, 0, newSvcs)
	byKind[OpNewDest] = make([]Op, 0, newDests)
	for _, k := range keys {
		ds := desired[k]
		ks, ok := have[k]
		if !ok {
			add(Op{Kind: OpNewService, Service: ds.svc, Name: ds.name})
			for _, d := range ds.dests {
				if !d.drainOnly {
					newDest(add, ds, d)
				}
			}
			continue
		}
		if !ds.svc.settingsEqual(ks.Service) {
			add(Op{Kind: OpUpdateService, Service: ds.svc, OldSvc: ks.Service, Name: ds.name})
		}
		kd := make(map[string]Dest, len(ks.Dests))
		for _, d := range ks.Dests {
			kd[d.Addr.String()] = d
		}
		for _, d := range ds.dests {
			cur, ok := kd[d.Addr.String()]
			delete(kd, d.Addr.String())
			switch {
			case !ok && !d.drainOnly:
				newDest(add, ds, d)
			case !ok:
			case d.drainOnly && cur.ActiveConns+cur.InactConns == 0:
				add(Op{Kind: OpDelDest, Service: ds.svc, Dest: cur, OldDest: cur, Name: ds.name, RealServer: d.realserver})
			case !destMatches(d, cur):
				add(Op{Kind: OpUpdateDest, Service: ds.svc, Dest: d.Dest, OldDest: cur, Name: ds.name, RealServer: d.realserver})
			}
		}
		for _, cur := range ks.Dests {
			if _, stale := kd[cur.Addr.String()]; stale {
				add(Op{Kind: OpDelDest, Service: ds.svc, Dest: cur, OldDest: cur, Name: ds.name})
			}
		}
	}
	for _, ks := range kernel {
		if _, ok := desired[ks.Key]; !ok && owned(ks.Key) {
			add(Op{Kind: OpDelService, Service: ks.Service, OldSvc: ks.Service})
		}
	}
	n := 0
	for _, l := range byKind {
		n += len(l)
	}
	ops := make([]Op, 0, n) // an Op is some 400 bytes: copy each once
	for _, l := range byKind {
		ops = append(ops, l...)
	}
	return ops
}
