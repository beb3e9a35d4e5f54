package vrrp

import (
	"net/netip"
	"time"
)

// replayTable is an instance's anti-replay state: the highest sequence
// number accepted from each sender. Only adverts whose HMAC verified reach
// it, so a flood of forged sources cannot churn it; a few slots suffice,
// since two senders only advertise one VRID at once while they contend.
// The least recently used slot makes room for a new sender. It is not
// safe for concurrent use (the gate's lock covers it), and it survives a
// reload: a reload must not reopen the door to adverts captured earlier.
type replayTable struct {
	slots []replaySlot
	clock uint64
}

type replaySlot struct {
	addr netip.Addr
	seq  uint64 // the last accepted
	used uint64 // LRU rank; 0: empty
}

// minReplaySlots is how many senders the table remembers at least; a
// unicast instance remembers every peer besides.
const minReplaySlots = 4

// size makes room for n senders, keeping what the table knows.
func (r *replayTable) size(n int) {
	n = max(n, minReplaySlots)
	if len(r.slots) >= n {
		return
	}
	r.slots = append(r.slots, make([]replaySlot, n-len(r.slots))...)
}

// accept says whether seq from src grows past the last sequence accepted
// from it, and if so records it. With a window (anti_replay time), a mark
// whose timestamp lies outside it no longer orders anything (the freshness
// check already rejects what it would), so it is dropped: a sender whose
// clock was stepped back recovers after the window, as with keepalived.
// Without one (monotonic), only strict growth counts, forever.
func (r *replayTable) accept(src netip.Addr, seq uint64, now time.Time, window time.Duration) bool {
	r.size(0)
	r.clock++
	var victim *replaySlot
	for i := range r.slots {
		s := &r.slots[i]
		if s.used != 0 && s.addr == src {
			s.used = r.clock
			if window > 0 && !fresh(s.seq, now, window) {
				s.seq = seq
				return true
			}
			if !seqAfter(seq, s.seq) {
				return false
			}
			s.seq = seq
			return true
		}
		if victim == nil || s.used < victim.used {
			victim = s
		}
	}
	*victim = replaySlot{addr: src, seq: seq, used: r.clock}
	return true
}
