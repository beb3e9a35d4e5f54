package checks

// A real server's checks are in doubt while the latest run of one of them
// said nothing conclusive: it timed out while lvsd itself was late
// (judgeTimeout), or, for a server not down, it failed fewer times in a
// row than fall. The server may be failing, or recovered; lvsd cannot tell
// yet. The director's eviction guard needs to know: a failure it holds to
// see whether it is one of many must not be applied as a lone one while
// lvsd's own lateness keeps the verdicts on other servers back, and a
// failure it held while lvsd was in trouble must not be applied as "still
// down" while lvsd was too late to judge the server again
// (director/guard.go).

// Doubt reports that the checks of a real server fell into doubt or came
// out of it.
type Doubt struct {
	Service, RealServer string
	InDoubt             bool
}

// WithDoubt calls f whenever the checks of a real server fall into doubt
// or come out of it. It is called from the goroutine that delivers
// transitions, after the transitions of the same result, and may block.
func WithDoubt(f func(Doubt)) Option { return func(s *Scheduler) { s.onDoubt = f } }

// inDoubt says whether t's checks are in doubt: one of them last ran
// inconclusively, or t is not down and one is failing but not yet fall
// times.
func (t *target) inDoubt() bool {
	for _, sl := range t.slots {
		if sl.inconclusive || t.health != Down && sl.failures > 0 && sl.health != Down {
			return true
		}
	}
	return false
}

// redoubt records whether t is in doubt now and reports a change.
func redoubt(t *target, out []Doubt) []Doubt {
	if d := t.inDoubt(); d != t.doubt {
		t.doubt = d
		out = append(out, Doubt{Service: t.Service, RealServer: t.RealServer, InDoubt: d})
	}
	return out
}

// deliverDoubts hands doubt changes on; deliverMu is held.
func (s *Scheduler) deliverDoubts(doubts []Doubt) {
	if s.onDoubt == nil {
		return
	}
	for _, d := range doubts {
		s.onDoubt(d)
	}
}
