package director

import "fmt"

// What the director offers active-active directors (services with
// announce = true), whose VIP the routers spread over several directors.
//
// pinnedOrder: a connection the routers move to another director is
// scheduled there afresh (sloppy_tcp), so every director must pick the
// same real server for it. The mh and sh schedulers hash the connection
// over the service's destination list, and the result depends on the
// list's order: ip_vs_mh populates its lookup table walking the list, each
// destination claiming its next preferred slot, so the same servers in
// another order give another table. The kernel adds a destination at the
// head of the list and never reorders it; a server evicted and re-added
// moves to the head, and servers that come up in a different order on two
// directors (alpha, first checks) leave them with different lists. So an
// announced service keeps every configured real server in the table from
// the start, in config order, at weight 0 while it is down or unchecked
// (mh and sh keep their slots, and with mh-fallback or sh-fallback move
// their connections to the next server by the hash; see primedWeight): the list
// is the same on every director that runs the same config, and health only
// changes weights, which are the same wherever the checks agree.

// primedWeight: mh builds its lookup table from each destination's last
// non-zero weight (the kernel's dest->last_weight, kept when a server is
// quiesced to 0), not from its weight now; a quiesced server keeps its
// slots, and with mh-fallback its connections go to the next server by
// the hash, the same on every director. But a destination created at
// weight 0 has last weight 0 and no slots, so a director that started
// while a server was down would build another table than one that saw it
// up. So an announced service's destination is created at its configured
// weight and set to its real weight in the same batch: every director's
// table then holds every configured server at its configured weight,
// whatever the health history, and health only says which slots fall back.
// (Nothing is announced before the first checks are done, so no traffic
// sees the created weight; a server added by a reload to an announced
// service is schedulable for the moments between the two ops.)

// newDest adds the ops that create d in ds (see primedWeight).
func newDest(add func(Op), ds *desiredService, d desiredDest) {
	if d.prime > 0 && d.Weight != d.prime {
		created := d.Dest
		created.Weight = d.prime
		add(Op{Kind: OpNewDest, Service: ds.svc, Dest: created, Name: ds.name, RealServer: d.realserver})
		add(Op{Kind: OpUpdateDest, Service: ds.svc, Dest: d.Dest, OldDest: created, Name: ds.name, RealServer: d.realserver})
		return
	}
	add(Op{Kind: OpNewDest, Service: ds.svc, Dest: d.Dest, Name: ds.name, RealServer: d.realserver})
}

// WithPassHook calls f after every reconcile pass, successful or not, so a
// caller that depends on what the kernel table holds (the announcer) can
// look again. f must not block.
func WithPassHook(f func()) Option { return func(d *Director) { d.onPass = f } }

// Ready says whether the service can take traffic on this director now:
// it has quorum, the first checks have decided every real server (alpha),
// and the kernel table, as of the last pass, holds it with at least quorum
// (at least one) real servers of weight above 0. why says what is missing
// when it cannot.
//
// Waiting for every first verdict matters to active-active: a director
// that announced with one server still unchecked (weight 0 here, weight 1
// on the others) would hash the connections the routers move to it
// differently from the directors they come from. A verdict always comes,
// at most fall × interval + timeout after start.
func (d *Director) Ready(service string) (ready bool, why string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	cs := d.byName[service]
	if cs == nil {
		return false, "not configured"
	}
	q := quorumOf(cs)
	if d.pools[service].lost() {
		return false, fmt.Sprintf("below quorum: %d of %d real servers up, quorum %d", countUp(cs, d.state), len(cs.reals), q)
	}
	if cs.alpha {
		unchecked := 0
		for _, r := range cs.reals {
			if st := d.state[rsID{cs.name, r.name}]; st == nil || !st.health.Known {
				unchecked++
			}
		}
		if unchecked > 0 {
			return false, fmt.Sprintf("first checks pending for %d of %d real servers", unchecked, len(cs.reals))
		}
	}
	ks := d.last[cs.svc.Key]
	if ks == nil {
		return false, "not in the kernel table yet"
	}
	serving := 0
	for _, dest := range ks.Dests {
		if dest.Weight > 0 {
			serving++
		}
	}
	if serving < max(q, 1) {
		return false, fmt.Sprintf("%d real servers with weight above 0 in the kernel table, quorum %d", serving, max(q, 1))
	}
	return true, ""
}
