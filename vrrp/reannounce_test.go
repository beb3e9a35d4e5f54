package vrrp

import (
	"net/netip"
	"slices"
	"testing"
	"time"
)

// announcedSince is what the rig announced at or after from.
func (r *rig) announcedSince(from time.Duration) []time.Duration {
	var out []time.Duration
	for _, at := range r.ann.times() {
		if at >= from {
			out = append(out, at)
		}
	}
	return out
}

// cycles is the announcements of reannounce cycles starting at each of
// starts: garp_repeat frames garp_interval apart, now and after delay.
func cycles(s settings, delay time.Duration, starts ...time.Duration) []time.Duration {
	var out []time.Duration
	for _, c := range starts {
		for _, base := range []time.Duration{c, c + delay} {
			for i := range s.garpRepeat {
				out = append(out, base+time.Duration(i)*s.garpInterval)
			}
		}
	}
	slices.Sort(out)
	return out
}

func TestMasterReannouncesToSecondMaster(t *testing.T) {
	for _, tt := range []struct {
		name         string
		prio         int
		src          netip.Addr
		garpInterval time.Duration
		delay        time.Duration // max(2 × interval, garp_repeat × garp_interval)
		reannounce   bool
	}{
		{"lower priority", 50, addrHigh, 20 * time.Millisecond, 200 * time.Millisecond, true},
		{"tie, sender has lower address", 100, addrLow, 20 * time.Millisecond, 200 * time.Millisecond, true},
		{"burst longer than two intervals", 50, addrHigh, 100 * time.Millisecond, 300 * time.Millisecond, true},
		{"no garp interval", 50, addrHigh, 0, 200 * time.Millisecond, true},
		{"tie, sender has higher address", 100, addrHigh, 20 * time.Millisecond, 0, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s := baseSettings()
			s.interval, s.garpRepeat, s.garpInterval = 100*time.Millisecond, 3, tt.garpInterval
			r := newRig(t, s, nil, nil)
			r.in.start()
			r.clock.Advance(masterDown(100, s.interval) + time.Second)
			heard := r.clock.Since()
			n := len(r.conn.adverts())
			r.hear(t, tt.src, tt.prio, s.interval)
			if !tt.reannounce {
				if r.state() != StateBackup {
					t.Fatalf("state %v, want backup", r.state())
				}
				return
			}
			if a := r.conn.adverts(); len(a) != n+1 || a[n].at != heard || a[n].ad.Priority != 100 {
				t.Errorf("no immediate advert answering the second master: %+v", a[n-1:])
			}
			r.clock.Advance(time.Second) // well before the 5 s second burst
			want := cycles(s, tt.delay, heard)
			if got := r.announcedSince(heard); !slices.Equal(got, want) {
				t.Errorf("announced at %v\nwant %v", got, want)
			}
			if r.state() != StateMaster {
				t.Errorf("state %v, want master", r.state())
			}
		})
	}
}

// A peer that keeps claiming mastership gets an advert for each of its
// own, but at most one announcement cycle a second; each cycle's delayed
// burst still goes out.
func TestReannounceRateLimit(t *testing.T) {
	s := baseSettings()
	s.interval, s.garpRepeat, s.garpInterval = 100*time.Millisecond, 3, 20*time.Millisecond
	r := newRig(t, s, nil, nil)
	r.in.start()
	r.clock.Advance(masterDown(100, s.interval) + 10*time.Second) // past the second burst
	start := r.clock.Since()
	n := len(r.conn.adverts())
	for range 300 { // 3 s of adverts every 10 ms
		r.hear(t, addrLow, 50, s.interval)
		r.clock.Advance(10 * time.Millisecond)
	}
	r.clock.Advance(2 * time.Second)
	want := cycles(s, 2*s.interval, start, start+time.Second, start+2*time.Second)
	if got := r.announcedSince(start); !slices.Equal(got, want) {
		t.Errorf("announced at %v\nwant %v", got, want)
	}
	// 300 answers plus our own adverts every 100 ms over 5 s.
	if got := len(r.conn.adverts()) - n; got != 300+50 {
		t.Errorf("sent %d adverts, want %d", got, 300+50)
	}
}

// A master that steps down cancels every announcement it has pending: the
// rest of a burst, the second burst, the refresh and a reannounce cycle.
func TestSteppingDownCancelsAnnouncements(t *testing.T) {
	mdi := masterDown(100, time.Second)
	for _, tt := range []struct {
		name       string
		stepDown   time.Duration // after becoming master
		reannounce time.Duration // when a lower-priority master is heard; 0 = never
	}{
		{"mid first burst", 150 * time.Millisecond, 0},
		{"second burst pending", time.Second, 0},
		{"refresh pending", 6 * time.Second, 0},
		{"mid reannounce burst", time.Second + 150*time.Millisecond, time.Second},
		{"delayed reannounce pending", time.Second + 500*time.Millisecond, time.Second},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s := baseSettings()
			s.garpRepeat, s.garpInterval, s.garpRefresh = 3, 100*time.Millisecond, 10*time.Second
			r := newRig(t, s, nil, nil)
			r.in.start()
			r.clock.Advance(mdi)
			if tt.reannounce > 0 {
				r.clock.Advance(tt.reannounce)
				r.hear(t, addrLow, 50, time.Second)
				r.clock.Advance(tt.stepDown - tt.reannounce)
			} else {
				r.clock.Advance(tt.stepDown)
			}
			if r.state() != StateMaster {
				t.Fatalf("state %v before stepping down", r.state())
			}
			before := len(r.ann.times())
			// A higher-priority master takes over and keeps advertising.
			for range 60 {
				r.hear(t, addrHigh, 200, time.Second)
				r.clock.Advance(time.Second)
			}
			if r.state() != StateBackup {
				t.Fatalf("state %v, want backup", r.state())
			}
			if got := r.ann.times()[before:]; len(got) > 0 {
				t.Errorf("announced after stepping down at %v: %v", mdi+tt.stepDown, got)
			}
		})
	}
}

// After a split brain heals, the winner announces the VIPs again after the
// loser has stepped down, and the loser announces nothing once it has.
func TestSplitBrainAnnouncements(t *testing.T) {
	clock := newFakeClock()
	sa, sb := baseSettings(), baseSettings()
	for _, s := range []*settings{&sa, &sb} {
		s.interval, s.garpRepeat, s.garpInterval, s.garpRefresh = 100*time.Millisecond, 3, 20*time.Millisecond, 2*time.Second
	}
	sa.name, sa.priority, sa.source = "a", 200, addrLow
	sb.name, sb.priority, sb.source = "b", 100, addrHigh
	win, lose := newRig(t, sa, clock, nil), newRig(t, sb, clock, nil)
	win.conn.peer, lose.conn.peer = lose.in, win.in
	var steppedDown time.Duration = -1
	changed := lose.in.changed
	lose.in.changed = func(c StateChange) {
		if c.From == StateMaster {
			steppedDown = clock.Since()
		}
		changed(c)
	}
	win.in.start()
	lose.in.start()
	// The link heals just before the loser's Master_Down_Timer runs out
	// and before the winner's next advert, so the loser becomes master,
	// starts its burst, and its first advert reaches the winner: the
	// case where the winner's first answer may beat the loser's frames.
	clock.Advance(masterDown(100, sb.interval) - 5*time.Millisecond)
	if win.state() != StateMaster || lose.state() != StateBackup {
		t.Fatalf("link cut: winner %v loser %v, want master and backup", win.state(), lose.state())
	}
	healed := clock.Since()
	win.conn.setLinked(true)
	lose.conn.setLinked(true)
	clock.Advance(10 * time.Second) // past the loser's second burst and refresh
	if win.state() != StateMaster || lose.state() != StateBackup {
		t.Fatalf("healed: winner %v loser %v", win.state(), lose.state())
	}
	if steppedDown < 0 {
		t.Fatal("loser never stepped down")
	}
	if got := lose.announcedSince(steppedDown + time.Nanosecond); len(got) > 0 {
		t.Errorf("loser stepped down at %v but announced at %v", steppedDown, got)
	}
	// The winner answers the loser's advert with a cycle whose second
	// burst comes after the loser's last announcement.
	la := lose.conn.adverts()
	if len(la) == 0 || la[0].ad.Priority != 100 {
		t.Fatalf("loser's adverts: %+v", la)
	}
	heard := la[0].at + time.Millisecond // the fake link's delay
	want := cycles(sa, 2*sa.interval, heard)
	got := win.announcedSince(healed)
	for _, w := range want {
		if !slices.Contains(got, w) {
			t.Fatalf("winner announced at %v after the heal at %v\nwant a cycle %v from hearing the loser", got, healed, want)
		}
	}
	loserLast := lose.ann.times()[len(lose.ann.times())-1]
	if winnerLast := want[len(want)-1]; winnerLast <= loserLast {
		t.Errorf("winner's last announcement of the cycle at %v is not after the loser's at %v", winnerLast, loserLast)
	}
}

// A master that steps down for a higher priority resigns with priority 0,
// and a master that hears a resignation answers at once and announces its
// VIPs again: another router held them too.
func TestResignationOnSteppingDown(t *testing.T) {
	s := baseSettings()
	s.interval, s.garpRepeat, s.garpInterval = 100*time.Millisecond, 3, 20*time.Millisecond
	loser := newRig(t, s, nil, nil)
	loser.in.start()
	loser.clock.Advance(masterDown(100, s.interval) + time.Second)
	heard := loser.clock.Since()
	loser.hear(t, addrHigh, 200, s.interval)
	if a := loser.conn.last(); loser.state() != StateBackup || a.ad.Priority != 0 || a.at != heard || loser.addrs.holds() {
		t.Errorf("stepping down: state %v, last advert %+v, VIPs held %v; want backup, priority 0 at %v, none",
			loser.state(), a, loser.addrs.holds(), heard)
	}

	winner := newRig(t, s, nil, nil)
	winner.in.start()
	winner.clock.Advance(masterDown(100, s.interval) + time.Second)
	heard = winner.clock.Since()
	n := len(winner.conn.adverts())
	winner.hear(t, addrLow, 0, s.interval)
	if a := winner.conn.adverts(); len(a) != n+1 || a[n].at != heard || a[n].ad.Priority != 100 {
		t.Errorf("no immediate advert answering the resignation: %+v", a[n-1:])
	}
	winner.clock.Advance(time.Second)
	if got, want := winner.announcedSince(heard), cycles(s, 2*s.interval, heard); !slices.Equal(got, want) {
		t.Errorf("announced at %v after the resignation\nwant %v", got, want)
	}
}

// The split brain the winner never hears of: the link heals just before
// the winner's advert, so the loser steps down without one of its own
// adverts reaching the winner. Its resignation makes the winner announce
// the VIPs again.
func TestSplitBrainHealedByWinnersAdvert(t *testing.T) {
	clock := newFakeClock()
	sa, sb := baseSettings(), baseSettings()
	for _, s := range []*settings{&sa, &sb} {
		s.interval, s.garpRepeat, s.garpInterval = 100*time.Millisecond, 3, 20*time.Millisecond
	}
	sa.name, sa.priority, sa.source = "a", 200, addrLow
	sb.name, sb.priority, sb.source = "b", 100, addrHigh
	win, lose := newRig(t, sa, clock, nil), newRig(t, sb, clock, nil)
	win.conn.peer, lose.conn.peer = lose.in, win.in
	win.in.start()
	lose.in.start()
	// Both are masters. The winner advertises at 321.875 ms + k × 100 ms,
	// the loser at 360.9375 ms + k × 100 ms; healing at 1.4 s puts the
	// winner's advert (1.421875 s) before the loser's next one.
	clock.Advance(1400 * time.Millisecond)
	if win.state() != StateMaster || lose.state() != StateMaster {
		t.Fatalf("link cut: winner %v loser %v, want both master", win.state(), lose.state())
	}
	healed := clock.Since()
	nLoser := len(lose.conn.adverts())
	win.conn.setLinked(true)
	lose.conn.setLinked(true)
	clock.Advance(time.Second)
	if win.state() != StateMaster || lose.state() != StateBackup {
		t.Fatalf("healed: winner %v loser %v", win.state(), lose.state())
	}
	la := lose.conn.adverts()[nLoser:]
	if len(la) != 1 || la[0].ad.Priority != 0 {
		t.Fatalf("loser's adverts after the heal: %+v; want only its resignation", la)
	}
	heard := la[0].at + time.Millisecond // the fake link's delay
	if got, want := win.announcedSince(healed), cycles(sa, 2*sa.interval, heard); !slices.Equal(got, want) {
		t.Errorf("winner announced at %v after the heal\nwant a cycle %v from hearing the resignation", got, want)
	}
}
