package vrrp

import (
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

func TestSkewAndMasterDown(t *testing.T) {
	tests := []struct {
		prio     int
		interval time.Duration
		skew     time.Duration
	}{
		{100, time.Second, 609375 * time.Microsecond},             // 156/256 s
		{100, 100 * time.Millisecond, 60937500 * time.Nanosecond}, // 15.6/256: not rounded to ms
		{254, 100 * time.Millisecond, 781250 * time.Nanosecond},
		{1, 10 * time.Millisecond, 9960937 * time.Nanosecond},
	}
	for _, tt := range tests {
		if got := skew(tt.prio, tt.interval); got != tt.skew {
			t.Errorf("skew(%d, %v) = %v, want %v", tt.prio, tt.interval, got, tt.skew)
		}
		if got, want := masterDown(tt.prio, tt.interval), 3*tt.interval+tt.skew; got != want {
			t.Errorf("masterDown(%d, %v) = %v, want %v", tt.prio, tt.interval, got, want)
		}
	}
}

// TestBackupTakesOverAtMasterDown: Initialize -> Backup at startup, and
// Backup -> Master exactly at Master_Down_Interval with no master heard.
func TestBackupTakesOverAtMasterDown(t *testing.T) {
	for _, tt := range []struct {
		prio     int
		interval time.Duration
	}{{100, time.Second}, {100, 100 * time.Millisecond}, {200, 30 * time.Millisecond}} {
		s := baseSettings()
		s.priority, s.interval = tt.prio, tt.interval
		r := newRig(t, s, nil, nil)
		r.in.start()
		if r.state() != StateBackup {
			t.Fatalf("after startup: %v, want backup", r.state())
		}
		mdi := masterDown(tt.prio, tt.interval)
		r.clock.Advance(mdi - time.Nanosecond)
		if r.state() != StateBackup || r.addrs.holds() {
			t.Fatalf("1ns before Master_Down_Interval %v: %v", mdi, r.state())
		}
		r.clock.Advance(time.Nanosecond)
		if r.state() != StateMaster || !r.addrs.holds() {
			t.Fatalf("at Master_Down_Interval: %v, VIPs held %v", r.state(), r.addrs.holds())
		}
		if a := r.conn.last(); a.at != mdi || int(a.ad.Priority) != tt.prio || a.dst != GroupV4 {
			t.Errorf("first advert %+v, want priority %d at %v to %v", a, tt.prio, mdi, GroupV4)
		}
		// Adverts keep coming every interval.
		r.clock.Advance(3 * tt.interval)
		if n := len(r.conn.adverts()); n != 4 {
			t.Errorf("%d adverts after 3 intervals as master, want 4", n)
		}
	}
}

// TestBackupReceive covers the advert event in Backup (RFC 5798 6.4.2):
// when a backup keeps waiting and when it lets the timer run out.
func TestBackupReceive(t *testing.T) {
	tests := []struct {
		name     string
		preempt  bool
		heard    int
		src      netip.Addr
		takeover bool // becomes master while the peer keeps advertising
	}{
		{"higher priority master", true, 150, addrLow, false},
		{"lower priority, preempt", true, 50, addrLow, true},
		{"lower priority, no preempt", false, 50, addrLow, false},
		{"tie from lower address: backup never takes over on a tie", true, 100, addrLow, false},
		{"tie from higher address", true, 100, addrHigh, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := baseSettings()
			s.preempt = tt.preempt
			r := newRig(t, s, nil, nil)
			r.in.start()
			for range 10 {
				r.hear(t, tt.src, tt.heard, time.Second)
				r.clock.Advance(time.Second)
			}
			if got := r.state() == StateMaster; got != tt.takeover {
				t.Errorf("master = %v after 10 s of adverts, want %v", got, tt.takeover)
			}
		})
	}
}

func TestBackupAdoptsMasterInterval(t *testing.T) {
	r := newRig(t, baseSettings(), nil, nil) // our interval 1 s
	r.in.start()
	r.hear(t, addrHigh, 200, 200*time.Millisecond)
	mdi := masterDown(100, 200*time.Millisecond) // 600ms + 121.875ms
	r.clock.Advance(mdi - time.Nanosecond)
	if r.state() != StateBackup {
		t.Fatalf("before adopted Master_Down_Interval: %v", r.state())
	}
	r.clock.Advance(time.Nanosecond)
	if r.state() != StateMaster {
		t.Fatalf("at adopted Master_Down_Interval %v: %v", mdi, r.state())
	}
	// As master it advertises its own interval.
	if a := r.conn.last(); a.ad.Interval != time.Second {
		t.Errorf("master advertises %v, want its own 1s", a.ad.Interval)
	}
}

func TestBackupHearsResignation(t *testing.T) {
	r := newRig(t, baseSettings(), nil, nil)
	r.in.start()
	r.hear(t, addrHigh, 200, time.Second)
	r.clock.Advance(500 * time.Millisecond)
	r.hear(t, addrHigh, 0, time.Second)
	sk := skew(100, time.Second)
	r.clock.Advance(sk - time.Nanosecond)
	if r.state() != StateBackup {
		t.Fatalf("before Skew_Time: %v", r.state())
	}
	r.clock.Advance(time.Nanosecond)
	if r.state() != StateMaster {
		t.Fatalf("Skew_Time %v after priority 0: %v, want master", sk, r.state())
	}
}

// TestMasterReceive covers the advert event in Master (RFC 5798 6.4.3).
func TestMasterReceive(t *testing.T) {
	tests := []struct {
		name      string
		heard     int
		src       netip.Addr
		staysMstr bool
	}{
		{"higher priority", 150, addrLow, false},
		{"lower priority", 50, addrHigh, true},
		{"tie, sender has higher address", 100, addrHigh, false},
		{"tie, sender has lower address", 100, addrLow, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newRig(t, baseSettings(), nil, nil)
			r.in.start()
			r.clock.Advance(masterDown(100, time.Second))
			if r.state() != StateMaster {
				t.Fatal("not master")
			}
			r.hear(t, tt.src, tt.heard, 2*time.Second)
			if got := r.state() == StateMaster; got != tt.staysMstr {
				t.Fatalf("master = %v, want %v", got, tt.staysMstr)
			}
			if tt.staysMstr {
				return
			}
			if r.addrs.holds() {
				t.Error("VIPs still held after stepping down")
			}
			// The new master's interval is adopted: silence for its
			// Master_Down_Interval brings us back.
			n := len(r.conn.adverts())
			r.clock.Advance(masterDown(100, 2*time.Second) - time.Nanosecond)
			if r.state() != StateBackup || len(r.conn.adverts()) != n {
				t.Fatalf("backup sent adverts or left early: %v", r.state())
			}
			r.clock.Advance(time.Nanosecond)
			if r.state() != StateMaster {
				t.Fatalf("not master again after the new master fell silent")
			}
		})
	}
}

func TestMasterAnswersResignationAtOnce(t *testing.T) {
	r := newRig(t, baseSettings(), nil, nil)
	r.in.start()
	r.clock.Advance(masterDown(100, time.Second) + 300*time.Millisecond)
	n := len(r.conn.adverts())
	r.hear(t, addrLow, 0, time.Second)
	a := r.conn.adverts()
	if len(a) != n+1 || a[n].ad.Priority != 100 || a[n].at != r.clock.Since() {
		t.Fatalf("no immediate advert after priority 0: %+v", a[n-1:])
	}
	// The Adver_Timer restarted from now.
	r.clock.Advance(time.Second - time.Nanosecond)
	if len(r.conn.adverts()) != n+1 {
		t.Error("advert before a full interval after the reset")
	}
}

func TestShutdownSendsPriorityZero(t *testing.T) {
	r := newRig(t, baseSettings(), nil, nil)
	r.in.start()
	r.clock.Advance(masterDown(100, time.Second))
	r.in.shutdown("test")
	if a := r.conn.last(); a.ad.Priority != 0 {
		t.Errorf("last advert priority %d, want 0", a.ad.Priority)
	}
	if r.state() != StateInit || r.addrs.holds() {
		t.Errorf("after shutdown: %v, VIPs held %v", r.state(), r.addrs.holds())
	}
	n := len(r.conn.adverts())
	r.clock.Advance(10 * time.Second)
	if len(r.conn.adverts()) != n || len(r.ann.times()) != 5 {
		t.Error("timers still running after shutdown")
	}
}

// A new master that preempts a live master holds and announces its VIPs
// before its first advert: the master it preempts drops them on hearing
// that advert, so the other order leaves the VIPs nowhere for as long as
// adding them takes. A master taking over from silence (nobody holds the
// VIPs) sends its first advert at once, exactly at Master_Down_Interval,
// and the VIPs follow; a slow address manager never delays it
// (TestBlockedAddDelaysNoAdvert).
func TestVIPsBeforeFirstAdvert(t *testing.T) {
	for _, tt := range []struct {
		name      string
		prio      int  // of the live lower master we hear; 0: none
		vipsFirst bool // VIPs held and announced when the first advert goes
	}{{"master down", 0, false}, {"preempting a live lower master", 100, true}} {
		t.Run(tt.name, func(t *testing.T) {
			s := baseSettings()
			s.priority = 150
			r := newRig(t, s, nil, nil)
			r.in.start()
			for range 50 {
				if r.state() == StateMaster {
					break
				}
				if tt.prio > 0 {
					r.hear(t, addrLow, tt.prio, time.Second)
				}
				r.clock.Advance(time.Second)
			}
			a := r.conn.adverts()
			if r.state() != StateMaster || len(a) == 0 {
				t.Fatalf("state %v after %d adverts", r.state(), len(a))
			}
			if first := a[0]; tt.vipsFirst && (!first.vipsHeld || first.announced == 0) {
				t.Errorf("first advert sent with VIPs held %v and %d announcements; want both first", first.vipsHeld, first.announced)
			}
			if first := a[0]; !tt.vipsFirst && first.at != masterDown(150, time.Second) {
				t.Errorf("first advert at %v, want at Master_Down_Interval %v", first.at, masterDown(150, time.Second))
			}
			if !r.addrs.holds() || len(r.ann.times()) == 0 {
				t.Errorf("master holds VIPs %v, %d announcements", r.addrs.holds(), len(r.ann.times()))
			}
		})
	}
}

func TestPreemptDelay(t *testing.T) {
	s := baseSettings()
	s.priority = 150
	s.preemptDelay = 2 * time.Second
	r := newRig(t, s, nil, nil)
	r.in.start()
	var tookOver time.Duration
	for range 100 {
		if r.state() == StateMaster {
			tookOver = r.clock.Since()
			break
		}
		r.hear(t, addrLow, 100, 100*time.Millisecond) // a live lower master
		r.clock.Advance(100 * time.Millisecond)
	}
	if tookOver != 2*time.Second {
		t.Errorf("preempted at %v, want at the 2 s preempt_delay after first hearing the lower master", tookOver)
	}
}

// While HoldPreempt is held (lvsd's first health checks are still running)
// a backup does not preempt a live lower-priority master, but preempt_delay
// runs meanwhile; once released it preempts as usual. The hold never stops
// a takeover when no master is heard, nor an operator takeover.
func TestPreemptHold(t *testing.T) {
	mdi := masterDown(150, 100*time.Millisecond)
	tests := []struct {
		name         string
		preemptDelay time.Duration
		release      time.Duration // when the hold lifts; 0: never
		masterStops  time.Duration // when the lower master falls silent; 0: never
		takeover     time.Duration // when the operator takes over; 0: never
		want         time.Duration // when we become master; 0: never, within 6 s
	}{
		{name: "held, never released", release: 0},
		{name: "released, no delay", release: 3 * time.Second, want: 2900*time.Millisecond + mdi},
		{name: "delay passed while held", preemptDelay: 2 * time.Second, release: 3 * time.Second, want: 2900*time.Millisecond + mdi},
		{name: "delay outlasts the hold", preemptDelay: 4 * time.Second, release: 3 * time.Second, want: 4 * time.Second},
		{name: "master dies while held", masterStops: 2 * time.Second, want: 1900*time.Millisecond + mdi},
		{name: "operator takeover while held", takeover: 2 * time.Second, want: 2 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := baseSettings()
			s.priority, s.preemptDelay = 150, tt.preemptDelay
			r := newRig(t, s, nil, nil)
			held := true
			r.in.holdPreempt(true)
			r.in.start()
			var became time.Duration
			for step := time.Duration(0); step < 6*time.Second && became == 0; step += 100 * time.Millisecond {
				if tt.release > 0 && step == tt.release {
					held = false
					r.in.holdPreempt(false)
				}
				if tt.takeover > 0 && step == tt.takeover {
					r.in.takeover()
				}
				if r.state() != StateMaster && (tt.masterStops == 0 || step < tt.masterStops) {
					r.hear(t, addrLow, 100, 100*time.Millisecond)
				}
				for range 100 {
					if r.state() == StateMaster {
						became = r.clock.Since()
						break
					}
					r.clock.Advance(time.Millisecond)
				}
			}
			// The loop looks every millisecond, so it sees the change at the
			// first whole millisecond after it.
			if want := (tt.want + time.Millisecond - 1).Truncate(time.Millisecond); became != want {
				t.Errorf("became master at %v, want %v (0: never)", became, tt.want)
			}
			if st := r.in.status(); st.PreemptHeld != held {
				t.Errorf("status says preempt held %v, the hold is %v", st.PreemptHeld, held)
			}
		})
	}
}

func TestAnnouncementSchedule(t *testing.T) {
	s := baseSettings()
	s.garpRepeat, s.garpInterval, s.garpRefresh = 3, 100*time.Millisecond, 30*time.Second
	r := newRig(t, s, nil, nil)
	r.in.start()
	mdi := masterDown(100, time.Second)
	r.clock.Advance(mdi + 40*time.Second)
	var want []time.Duration
	for _, base := range []time.Duration{0, 5 * time.Second, 35 * time.Second} {
		for i := range 3 {
			want = append(want, mdi+base+time.Duration(i)*100*time.Millisecond)
		}
	}
	if got := r.ann.times(); !slices.Equal(got, want) {
		t.Errorf("announced at %v\nwant %v", got, want)
	}
	// Stepping down stops them.
	r.hear(t, addrHigh, 200, time.Second)
	n := len(r.ann.times())
	r.clock.Advance(3 * time.Second) // less than Master_Down_Interval
	if len(r.ann.times()) != n {
		t.Error("announcements continued after leaving master")
	}
}

func TestTakeoverAndGiveup(t *testing.T) {
	clock := newFakeClock()
	sa, sb := baseSettings(), baseSettings()
	sa.name, sa.priority, sa.source = "a", 200, addrLow
	sb.name, sb.priority, sb.source = "b", 100, addrHigh
	a, b := newRig(t, sa, clock, nil), newRig(t, sb, clock, nil)
	link(a, b)
	a.in.start()
	b.in.start()
	clock.Advance(5 * time.Second)
	if a.state() != StateMaster || b.state() != StateBackup {
		t.Fatalf("start: a %v b %v", a.state(), b.state())
	}
	// Planned maintenance: b takes over; a steps down on b's first advert.
	b.in.takeover()
	clock.Advance(2 * time.Millisecond)
	if a.state() != StateBackup || b.state() != StateMaster {
		t.Fatalf("after takeover: a %v b %v", a.state(), b.state())
	}
	if b.conn.last().ad.Priority != takeoverPriority {
		t.Errorf("takeover advertises %d, want %d", b.conn.last().ad.Priority, takeoverPriority)
	}
	// a's preemption does not undo an operator takeover.
	clock.Advance(10 * time.Second)
	if b.state() != StateMaster {
		t.Fatal("takeover undone by preemption")
	}
	// b gives up: a takes over after its skew time, b stays backup even
	// when a later goes silent.
	b.in.giveup()
	clock.Advance(skew(200, time.Second) + 2*time.Millisecond)
	if a.state() != StateMaster || b.state() != StateBackup || b.addrs.holds() {
		t.Fatalf("after giveup: a %v b %v", a.state(), b.state())
	}
	a.conn.setLinked(false)
	clock.Advance(10 * time.Second)
	if b.state() != StateBackup {
		t.Fatal("given-up instance took over")
	}
	// Reset: b is an ordinary backup again and takes over from silence.
	b.in.reset()
	clock.Advance(5 * time.Second)
	if b.state() != StateMaster {
		t.Fatal("after reset, b did not take over from a silent peer")
	}
}

func TestFault(t *testing.T) {
	r := newRig(t, baseSettings(), nil, nil)
	r.in.start()
	r.clock.Advance(masterDown(100, time.Second))
	r.in.setFault("interface eth0 down", true)
	r.in.setFault("service web down", true)
	if r.state() != StateFault || r.addrs.holds() || r.conn.last().ad.Priority != 0 {
		t.Fatalf("fault: %v, VIPs %v, last priority %d", r.state(), r.addrs.holds(), r.conn.last().ad.Priority)
	}
	n := len(r.conn.adverts())
	r.clock.Advance(time.Minute)
	if len(r.conn.adverts()) != n || r.state() != StateFault {
		t.Fatal("adverts or takeover while in fault")
	}
	r.in.setFault("interface eth0 down", false)
	if r.state() != StateFault {
		t.Fatal("left fault with one reason still set")
	}
	r.in.setFault("service web down", false)
	if r.state() != StateBackup {
		t.Fatalf("fault cleared: %v, want backup", r.state())
	}
	r.clock.Advance(masterDown(100, time.Second))
	if r.state() != StateMaster {
		t.Fatal("no takeover after fault cleared")
	}
	// A fault before startup keeps the instance in fault from the start.
	r2 := newRig(t, baseSettings(), nil, nil)
	r2.in.setFault("service web down", true)
	r2.in.start()
	if r2.state() != StateFault {
		t.Fatalf("started with a fault: %v", r2.state())
	}
}

// TestSplitBrainHeals: with the link cut both become master; when it
// returns the lower priority (or on a tie the lower address) steps down.
func TestSplitBrainHeals(t *testing.T) {
	for _, tt := range []struct {
		name         string
		prioA, prioB int
		winner       string
	}{{"priority", 200, 100, "a"}, {"tie broken by higher address", 100, 100, "b"}} {
		t.Run(tt.name, func(t *testing.T) {
			clock := newFakeClock()
			sa, sb := baseSettings(), baseSettings()
			sa.name, sa.priority, sa.source = "a", tt.prioA, addrLow
			sb.name, sb.priority, sb.source = "b", tt.prioB, addrHigh
			a, b := newRig(t, sa, clock, nil), newRig(t, sb, clock, nil)
			a.conn.peer, b.conn.peer = b.in, a.in
			a.in.start()
			b.in.start()
			clock.Advance(5 * time.Second)
			if a.state() != StateMaster || b.state() != StateMaster {
				t.Fatalf("link cut: a %v b %v, want both master", a.state(), b.state())
			}
			a.conn.setLinked(true)
			b.conn.setLinked(true)
			clock.Advance(2 * time.Second)
			win, lose := a, b
			if tt.winner == "b" {
				win, lose = b, a
			}
			if win.state() != StateMaster || lose.state() != StateBackup || lose.addrs.holds() || !win.addrs.holds() {
				t.Fatalf("healed: winner %v loser %v", win.state(), lose.state())
			}
		})
	}
}

func TestReceiveFilters(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, err := newMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	s := baseSettings()
	r := newRig(t, s, nil, m)
	r.in.ownAddr = func(a netip.Addr) bool { return a == addrLow }
	r.in.start()
	good := func(src netip.Addr, vrid uint8) []byte {
		ad := Advert{VRID: vrid, Priority: 200, Interval: time.Second, Addrs: s.vipAddrs()}
		b, _ := ad.Encode(src, GroupV4, ChecksumRFC9568)
		return b
	}
	corrupt := good(addrHigh, 51)
	corrupt[6]++
	tests := []struct {
		name   string
		p      Packet
		reason string // "" = accepted
	}{
		{"ttl 254", Packet{Src: addrHigh, Dst: GroupV4, TTL: 254, Payload: good(addrHigh, 51)}, "ttl"},
		{"own address", Packet{Src: addrLow, Dst: GroupV4, TTL: 255, Payload: good(addrLow, 51)}, "own_address"},
		{"our source", Packet{Src: addrMid, Dst: GroupV4, TTL: 255, Payload: good(addrMid, 51)}, "own_address"},
		{"checksum", Packet{Src: addrHigh, Dst: GroupV4, TTL: 255, Payload: corrupt}, "checksum"},
		{"version 2", Packet{Src: addrHigh, Dst: GroupV4, TTL: 255, Payload: mustHex(t, keepalivedV2)}, "version"},
		{"other vrid is silent", Packet{Src: addrHigh, Dst: GroupV4, TTL: 255, Payload: good(addrHigh, 52)}, "-"},
		{"good", Packet{Src: addrHigh, Dst: GroupV4, TTL: 255, Payload: good(addrHigh, 51)}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := counterValue(m.receivedTotal.WithLabelValues("vi1"))
			dropsBefore := counterValue(m.drops.WithLabelValues("vi1", tt.reason))
			r.in.handle(tt.p)
			after := counterValue(m.receivedTotal.WithLabelValues("vi1"))
			switch tt.reason {
			case "":
				if after != before+1 {
					t.Error("good advert not counted as received")
				}
				if r.in.status().Master != addrHigh.String() {
					t.Error("good advert did not reach the state machine")
				}
			case "-":
				if after != before {
					t.Error("other VRID counted as received")
				}
			default:
				if got := counterValue(m.drops.WithLabelValues("vi1", tt.reason)); got != dropsBefore+1 {
					t.Errorf("drops{reason=%q} = %v, want %v", tt.reason, got, dropsBefore+1)
				}
			}
		})
	}
	// Unicast: only configured peers count.
	s.peers = []netip.Addr{addrHigh}
	s.name = "vi2"
	r2 := newRig(t, s, nil, m)
	r2.in.start()
	r2.in.handle(Packet{Src: addrLow, Dst: addrMid, TTL: 64, Payload: good(addrLow, 51)})
	if got := counterValue(m.drops.WithLabelValues("vi2", "unknown_sender")); got != 1 {
		t.Errorf("unicast from a stranger: drops = %v", got)
	}
	r2.in.handle(Packet{Src: addrHigh, Dst: addrMid, TTL: 64, Payload: good(addrHigh, 51)})
	if got := counterValue(m.receivedTotal.WithLabelValues("vi2")); got != 1 {
		t.Errorf("unicast from the peer (any TTL): received = %v", got)
	}
}

func counterValue(c prometheus.Counter) float64 {
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		return -1
	}
	return m.GetCounter().GetValue()
}
