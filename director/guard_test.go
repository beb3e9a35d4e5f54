package director

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
)

// guardSim drives the guard as the Director does: failures of servers in
// the table, healthy verdicts, ticks of a fake clock, and lvsd's own state.
type guardSim struct {
	t     *testing.T
	g     *guard
	now   time.Time
	fault string
	out   map[rsID]string // evicted servers -> how ("at once" or a release outcome)
	log   []string
}

const (
	window  = 10 * time.Second
	maxHold = 2 * time.Minute
	rejudge = 7 * time.Second // below the window: the window is the floor
)

func newGuardSim(t *testing.T, pools map[string]int) *guardSim {
	s := &guardSim{t: t, g: newGuard(), now: time.Unix(1000, 0), out: map[rsID]string{}}
	servers := map[string][]string{}
	for p, n := range pools {
		for i := range n {
			servers[p] = append(servers[p], rs(i))
		}
	}
	s.g.configure(guardConfig{threshold: 50, window: window, maxHold: maxHold}, servers)
	return s
}

func rs(i int) string { return fmt.Sprintf("10.0.0.%d:80", i+1) }

// fail reports failures of servers 0..n-1 of pool with cause, one a
// second apart as probes spread over their interval would.
func (s *guardSim) fail(pool string, n int, cause Cause) {
	for i := range n {
		s.failOne(pool, i, cause)
		s.tick(time.Second)
	}
}

func (s *guardSim) failOne(pool string, i int, cause Cause) {
	id := rsID{pool, rs(i)}
	if _, gone := s.out[id]; gone {
		return
	}
	s.g.observe(s.now, s.fault)
	if !s.g.fail(id, Health{Known: true, Cause: cause, Reason: "timeout: x"}, rejudge, s.now) {
		s.out[id] = "at once"
	}
}

// doubt says the checks of server i of pool are in doubt, or no longer.
func (s *guardSim) doubt(pool string, i int, on bool) {
	id := rsID{pool, rs(i)}
	_, down := s.out[id]
	s.g.setDoubt(id, on, down)
}

func (s *guardSim) healthy(pool string, i int) {
	id := rsID{pool, rs(i)}
	if _, gone := s.out[id]; !gone {
		s.g.forget(id)
	}
}

// tick advances the clock by d in steps of one second, as Run polls.
func (s *guardSim) tick(d time.Duration) {
	for end := s.now.Add(d); s.now.Before(end); {
		s.now = s.now.Add(time.Second)
		s.g.observe(s.now, s.fault)
		rel, _ := s.g.due(s.now)
		for _, r := range rel {
			s.out[r.id] = r.outcome
		}
	}
}

// evicted counts the servers of pool (all pools if "") that left the
// table, by how.
func (s *guardSim) evicted(pool string) map[string]int {
	n := map[string]int{}
	for id, how := range s.out {
		if pool == "" || id.service == pool {
			n[how]++
		}
	}
	return n
}

func (s *guardSim) held() int { return len(s.g.held) }

func TestGuardRule(t *testing.T) {
	three := map[string]int{"a": 4, "b": 4, "c": 4}
	for _, tc := range []struct {
		name  string
		pools map[string]int
		run   func(s *guardSim)
	}{{
		name: "one pool fails by timeout while lvsd is healthy: evicted at once", pools: three,
		run: func(s *guardSim) {
			s.fail("a", 4, CauseSilent)
			s.want(s.evicted("a")["at once"] == 4 && s.held() == 0, "every server of a evicted at once")
		},
	}, {
		name: "the whole table fails by timeout while lvsd is in trouble: held, reported, released when it clears", pools: three,
		run: func(s *guardSim) {
			s.fault = "fds: 980 of 1024 open files"
			for _, p := range []string{"a", "b", "c"} {
				s.fail(p, 4, CauseSilent)
			}
			s.tick(30 * time.Second)
			s.want(len(s.out) == 0 && s.held() == 12, "nothing evicted, 12 held")
			st := s.g.status()
			s.want(st.Fault == s.fault && len(st.Held) == 12 && strings.Contains(st.Held[0].Why, "mass failure"), "status tells: %+v", st.Held[0])
			s.fault = ""
			s.tick(2 * time.Second)
			for i := range 4 {
				s.healthy("a", i) // the checks call a's servers up again
			}
			s.want(len(s.out) == 0, "nothing evicted while the checks re-judge")
			s.tick(window)
			s.want(len(s.evicted("a")) == 0, "a recovered: never left the table")
			s.want(s.evicted("b")[outcomeApplied] == 4 && s.evicted("c")[outcomeApplied] == 4 && s.held() == 0,
				"b and c still failing once lvsd recovered: applied")
		},
	}, {
		name: "one pool really fails while lvsd is in trouble and the others are fine: applied within the window", pools: three,
		run: func(s *guardSim) {
			s.fault = "checks: 40 probes behind schedule"
			s.fail("a", 4, CauseSilent) // at +0s, +1s, +2s, +3s
			s.tick(window - 4*time.Second)
			s.want(s.out[rsID{"a", rs(0)}] == outcomeApplied && s.held() == 3, "the first failure applied when its window ended")
			s.tick(3 * time.Second)
			s.want(s.evicted("a")[outcomeApplied] == 4 && s.held() == 0, "a evicted")
		},
	}, {
		name: "a server that answers is evicted at once, even during a mass failure", pools: three,
		run: func(s *guardSim) {
			s.fault = "memory: 95% of memory.max in use"
			for _, p := range []string{"a", "b", "c"} {
				s.fail(p, 3, CauseSilent)
			}
			s.want(s.held() == 9, "9 held")
			s.failOne("c", 3, CauseAnswered) // refused
			s.failOne("a", 0, CauseAnswered) // held, then the server refuses
			s.want(s.out[rsID{"c", rs(3)}] == "at once" && s.out[rsID{"a", rs(0)}] == "at once" && s.held() == 8, "answers applied at once")
		},
	}, {
		name: "a probe with no local resources is held alone and puts lvsd in trouble", pools: three,
		run: func(s *guardSim) {
			s.failOne("a", 0, CauseLocal)
			s.want(s.held() == 1 && strings.HasPrefix(s.g.fault, "probes: "), "held, fault %q", s.g.fault)
			s.failOne("b", 0, CauseSilent) // within the window: lvsd is in trouble
			s.want(s.held() == 2, "the timeout waits out its window")
			s.tick(window + time.Second)
			s.want(s.out[rsID{"b", rs(0)}] == outcomeApplied, "a lone timeout is applied")
			s.want(s.g.fault == "" && s.held() == 1, "the local failure is still held")
			s.tick(window)
			s.want(s.out[rsID{"a", rs(0)}] == outcomeApplied && s.held() == 0, "applied once lvsd had been fine for a window")
		},
	}, {
		name: "max_hold bounds every hold", pools: three,
		run: func(s *guardSim) {
			s.fault = "fds: 1020 of 1024 open files"
			for _, p := range []string{"a", "b", "c"} {
				s.fail(p, 4, CauseSilent)
			}
			s.tick(maxHold - 13*time.Second)
			s.want(s.held() == 12, "held")
			s.tick(15 * time.Second)
			s.want(s.evicted("")[outcomeExpired] == 12 && s.held() == 0, "all applied at max_hold: %v", s.evicted(""))
		},
	}, {
		name:  "most of one pool, with failures elsewhere too: that pool held, a lone failure elsewhere applied",
		pools: map[string]int{"a": 10, "b": 10},
		run: func(s *guardSim) {
			s.fault = "checks: 300 probes behind schedule"
			s.failOne("b", 0, CauseSilent)
			s.fail("a", 6, CauseSilent)
			s.tick(window)
			s.want(s.held() == 6 && len(s.evicted("a")) == 0, "a held")
			s.want(s.out[rsID{"b", rs(0)}] == outcomeApplied, "b's lone failure applied")
		},
	}, {
		name:  "a pool failing alone is not held even if it is most of all servers",
		pools: map[string]int{"big": 8, "small": 2},
		run: func(s *guardSim) {
			s.fault = "fds: 990 of 1024 open files"
			s.fail("big", 8, CauseSilent)
			s.tick(window)
			s.want(s.evicted("big")[outcomeApplied] == 8 && s.held() == 0, "big evicted")
		},
	}, {
		name: "with one pool only, a mass failure of it is held", pools: map[string]int{"bdii": 3},
		run: func(s *guardSim) {
			s.fault = "memory: 97% of memory.max in use"
			s.fail("bdii", 2, CauseSilent)
			s.tick(window)
			s.want(s.held() == 2 && len(s.out) == 0, "2 of 3 held")
		},
	}, {
		name: "failures further apart than the window do not add up", pools: three,
		run: func(s *guardSim) {
			s.fault = "checks: 12 probes behind schedule"
			for _, p := range []string{"a", "b", "c"} {
				for i := range 4 {
					s.failOne(p, i, CauseSilent)
					s.tick(window + time.Second)
				}
			}
			s.want(s.evicted("")[outcomeApplied] == 12, "each applied after its window: %v", s.evicted(""))
		},
	}, {
		// A mass event whose verdicts lvsd's own lateness spreads over more
		// than the window: a's first server fails, the rest of the table is
		// in doubt (its probes timed out while lvsd was late), and their
		// verdicts come in only after the first failure's window.
		name: "failures of one mass event spread past the window by lvsd's lateness: held as one", pools: three,
		run: func(s *guardSim) {
			s.fault = "checks: 400 probes behind schedule"
			for _, p := range []string{"a", "b", "c"} {
				for i := range 4 {
					s.doubt(p, i, true)
				}
			}
			s.failOne("a", 0, CauseSilent)
			s.tick(3 * window)
			s.want(len(s.out) == 0 && s.held() == 1, "the first failure waits while lvsd cannot judge the others")
			for _, p := range []string{"a", "b", "c"} {
				s.fail(p, 4, CauseSilent)
			}
			s.tick(window)
			s.want(len(s.out) == 0 && s.held() == 12, "all 12 held as one mass failure")
			s.want(strings.Contains(s.g.status().Held[0].Why, "mass failure"), "a/0 held as part of the mass failure: %q", s.g.status().Held[0].Why)
		},
	}, {
		name: "one pool fails while the others are in doubt: applied once they are decided fine", pools: three,
		run: func(s *guardSim) {
			s.fault = "checks: 400 probes behind schedule"
			for i := range 4 {
				s.doubt("b", i, true)
			}
			s.doubt("a", 3, true)
			s.fail("a", 3, CauseSilent)
			s.tick(2 * window)
			s.want(len(s.out) == 0 && s.held() == 3, "a held while b, in doubt, could make it a mass failure")
			for i := range 4 {
				s.doubt("b", i, false) // b's checks pass again
			}
			s.tick(time.Second)
			s.want(s.evicted("a")[outcomeApplied] == 3 && s.held() == 0, "a applied: only a's own doubt is left, and a pool alone is no mass failure")
		},
	}, {
		name: "a down server in doubt does not make a lone failure look like one of many", pools: three,
		run: func(s *guardSim) {
			s.fail("b", 1, CauseSilent) // down long ago, applied
			s.tick(2 * window)
			s.doubt("b", 0, true) // its probes time out, inconclusively
			s.fault = "checks: 400 probes behind schedule"
			s.fail("a", 3, CauseSilent)
			s.tick(window)
			s.want(s.evicted("a")[outcomeApplied] == 3 && s.held() == 0, "a applied after its window")
		},
	}, {
		// Rule 4 with lvsd late: the checks had rise × interval to judge
		// the held server again, but every run was inconclusive.
		name: "a held failure is not applied as still down while lvsd was too late to judge the server again", pools: three,
		run: func(s *guardSim) {
			s.fault = "fds: 1000 of 1024 open files"
			for _, p := range []string{"a", "b", "c"} {
				s.fail(p, 4, CauseSilent)
			}
			s.fault = ""
			s.doubt("a", 0, true)
			s.tick(3 * window)
			s.want(s.held() == 1 && s.g.held[rsID{"a", rs(0)}] != nil, "a/0 still held while in doubt; the others applied")
			s.doubt("a", 0, false) // a conclusive failure at last
			s.tick(time.Second)
			s.want(s.out[rsID{"a", rs(0)}] == outcomeApplied && s.held() == 0, "a/0 applied once judged")
		},
	}, {
		name: "doubts do not hold a failure while lvsd is fine", pools: three,
		run: func(s *guardSim) {
			s.doubt("b", 0, true)
			s.doubt("c", 0, true)
			s.fail("a", 4, CauseSilent)
			s.want(s.evicted("a")["at once"] == 4 && s.held() == 0, "a evicted at once")
		},
	}, {
		name: "a held server the checks call healthy never leaves", pools: three,
		run: func(s *guardSim) {
			s.fault = "fds: 1000 of 1024 open files"
			for _, p := range []string{"a", "b", "c"} {
				s.fail(p, 4, CauseSilent)
			}
			for _, p := range []string{"a", "b", "c"} {
				for i := range 4 {
					s.healthy(p, i)
				}
			}
			s.tick(maxHold)
			s.want(len(s.out) == 0 && s.held() == 0, "nothing evicted")
		},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			s := newGuardSim(t, tc.pools)
			tc.run(s)
		})
	}
}

func (s *guardSim) want(ok bool, format string, args ...any) {
	s.t.Helper()
	if !ok {
		s.t.Errorf("at +%s: want "+format+"; evicted %v, held %d", append(append([]any{s.now.Sub(time.Unix(1000, 0))}, args...), s.evicted(""), s.held())...)
	}
}

func TestGuardOff(t *testing.T) {
	g := newGuard()
	pools := map[string][]string{"a": {rs(0), rs(1)}}
	g.configure(guardConfig{threshold: 50, window: window, maxHold: maxHold}, pools)
	now := time.Unix(1000, 0)
	g.observe(now, "fds: full")
	if !g.fail(rsID{"a", rs(0)}, Health{Known: true, Cause: CauseLocal}, 0, now) {
		t.Fatal("not held with the guard on")
	}
	rel := g.configure(guardConfig{}, pools)
	if len(rel) != 1 || rel[0].outcome != outcomeApplied || len(g.held) != 0 {
		t.Errorf("turning the guard off released %+v, held %d", rel, len(g.held))
	}
	if g.fail(rsID{"a", rs(1)}, Health{Known: true, Cause: CauseLocal}, 0, now) {
		t.Error("held with the guard off")
	}
}

// The counts behind "most of a pool" stay right as servers come and go.
func TestGuardCountsStayConsistent(t *testing.T) {
	s := newGuardSim(t, map[string]int{"a": 4, "b": 4, "c": 4})
	s.fault = "fds: full"
	s.fail("a", 3, CauseSilent)
	s.failOne("b", 0, CauseLocal)
	s.healthy("a", 1)
	s.tick(maxHold)
	s.fail("c", 2, CauseSilent)
	check := func() {
		t.Helper()
		want := map[string]int{}
		for id := range s.g.held {
			want[id.service]++
		}
		for id := range s.g.recentAt {
			if s.g.held[id] == nil {
				want[id.service]++
			}
		}
		all := 0
		for _, n := range want {
			all += n
		}
		if !maps(want, s.g.failing) || all != s.g.failingAll || len(want) != s.g.failingPools {
			t.Errorf("counts %v/%d/%d, want %v/%d/%d", s.g.failing, s.g.failingAll, s.g.failingPools, want, all, len(want))
		}
	}
	check()
	s.g.configure(s.g.cfg, map[string][]string{"c": {rs(0)}, "d": {rs(0)}})
	check()
	s.tick(window)
	check()
}

func maps(a, b map[string]int) bool {
	ka, kb := keys(a), keys(b)
	if !slices.Equal(ka, kb) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

func keys(m map[string]int) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// A failure the guard does not hold ends an earlier hold of the server.
func TestGuardFailureNotHeldEndsAHold(t *testing.T) {
	s := newGuardSim(t, map[string]int{"a": 4, "b": 4})
	s.fault = "fds: full"
	s.failOne("a", 0, CauseSilent)
	s.want(s.held() == 1, "held while lvsd is in trouble")
	s.fault = ""
	s.failOne("a", 0, CauseSilent)
	s.want(s.held() == 0 && s.out[rsID{"a", rs(0)}] == "at once", "applied, the hold gone")
}
