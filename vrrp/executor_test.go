package vrrp

import (
	"context"
	"net/netip"
	"slices"
	"sync"
	"testing"
	"time"
)

// slowAddrs is an address manager whose calls block for a while of the
// fake clock, as netlink does on a busy or stuck kernel. It records when
// each call starts ("add start"), and vipLog records when it returns.
type slowAddrs struct {
	*vipLog
	clock         *fakeClock
	add, remove   time.Duration
	mu            sync.Mutex
	started       []string
	addsDone      int
	startedAtFake []time.Duration
	release       chan struct{}
}

func (s *slowAddrs) block(op, iface string, d time.Duration) {
	s.mu.Lock()
	s.started = append(s.started, op+" "+iface)
	s.startedAtFake = append(s.startedAtFake, s.clock.Since())
	s.mu.Unlock()
	if d <= 0 {
		return
	}
	done := make(chan struct{})
	s.clock.AfterFunc(d, func() { close(done) })
	select {
	case <-done:
	case <-s.released():
	}
}

// released is closed when the test ends, so that a hung call lets the
// Manager stop.
func (s *slowAddrs) released() chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.release == nil {
		s.release = make(chan struct{})
	}
	return s.release
}

func (s *slowAddrs) AddVIPs(ctx context.Context, iface string, vips []netip.Prefix) error {
	s.block("add", iface, s.add)
	err := s.vipLog.AddVIPs(ctx, iface, vips)
	s.mu.Lock()
	s.addsDone++
	s.mu.Unlock()
	return err
}

func (s *slowAddrs) RemoveVIPs(ctx context.Context, iface string, vips []netip.Prefix) error {
	s.block("remove", iface, s.remove)
	return s.vipLog.RemoveVIPs(ctx, iface, vips)
}

func (s *slowAddrs) calls() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.started)
}

func (s *slowAddrs) adds() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.addsDone
}

// advertTimes is when a fake connection sent its adverts.
func advertTimes(c *fakeConn) []time.Duration {
	var out []time.Duration
	for _, a := range c.adverts() {
		out = append(out, a.at)
	}
	return out
}

// cadence is first, first+interval, ... up to until.
func cadence(first, interval, until time.Duration) []time.Duration {
	var out []time.Duration
	for t := first; t <= until; t += interval {
		out = append(out, t)
	}
	return out
}

// TestBlockedAddDelaysNoAdvert: every address change blocks for 2 s (the
// startup removal, then the add of becoming master). Meanwhile each
// instance's Master_Down timer fires exactly on time, its first advert
// goes at once, and its adverts keep their 100 ms cadence: the address
// work runs on the instance's worker, outside the lock the timers need.
func TestBlockedAddDelaysNoAdvert(t *testing.T) {
	clock := newFakeClock()
	var slow *slowAddrs
	web := vrrpConfig("web", 51, "eth0", "10.0.0.100/24")
	web.Priority, web.AdvertInterval.Duration = 150, 100*time.Millisecond
	db := vrrpConfig("db", 52, "eth1", "10.0.1.100/24")
	db.AdvertInterval.Duration = 100 * time.Millisecond
	r := startManagerWith(t, managerOpts{clock: clock, workers: true, addrs: func(l *vipLog) AddressManager {
		slow = &slowAddrs{vipLog: l, clock: clock, add: 2 * time.Second, remove: 2 * time.Second}
		return slow
	}}, web, db)
	t.Cleanup(func() { close(slow.released()) })
	// A timer path that waits for the address manager would hang in
	// clock.Advance below (the fake add waits for the fake clock): fail
	// loudly instead of at go test's timeout.
	guard := time.AfterFunc(time.Minute, func() { panic("TestBlockedAddDelaysNoAdvert: the timers are blocked behind the address manager") })
	defer guard.Stop()
	waitUntil(t, "both startup removals under way", func() bool { return len(slow.calls()) == 2 })

	mdiWeb, mdiDB := masterDown(150, 100*time.Millisecond), masterDown(100, 100*time.Millisecond)
	for range 190 { // to 1.9 s, while both removals still block
		clock.Advance(10 * time.Millisecond)
	}
	if got := states(r.m); got != "web=master db=master" {
		t.Fatalf("with every address call blocked: %s; want both master on time", got)
	}
	if got, want := advertTimes(r.conn("eth0")), cadence(mdiWeb, 100*time.Millisecond, 1900*time.Millisecond); !slices.Equal(got, want) {
		t.Errorf("web's adverts at %v\nwant %v", got, want)
	}
	if got, want := advertTimes(r.conn("eth1")), cadence(mdiDB, 100*time.Millisecond, 1900*time.Millisecond); !slices.Equal(got, want) {
		t.Errorf("db's adverts at %v\nwant %v", got, want)
	}
	if n := r.addrs.len(); n != 0 {
		t.Fatalf("%d address calls returned already; the test wants them blocked", n)
	}

	// The removals return at 2 s; the adds start and block until ~4 s.
	clock.Advance(110 * time.Millisecond)
	waitUntil(t, "both adds under way", func() bool { return len(slow.calls()) == 4 })
	for range 180 {
		clock.Advance(10 * time.Millisecond)
	}
	if slow.adds() != 0 {
		t.Fatal("an add returned early; the test wants it blocked")
	}
	if got, want := advertTimes(r.conn("eth0")), cadence(mdiWeb, 100*time.Millisecond, 3810*time.Millisecond); !slices.Equal(got, want) {
		t.Errorf("web's adverts while its add blocks at %v\nwant %v", got, want)
	}
	clock.Advance(300 * time.Millisecond)
	waitUntil(t, "the adds to finish and the VIPs to be announced", func() bool {
		return slow.adds() == 2 && r.ann.len() == 10
	})
}

// TestPreemptionWaitsForVIPs: a backup that preempts a live lower master
// sends its first advert only once its VIPs are added and announced (the
// old master keeps them and serves until it hears that advert), and at the
// latest claimBound after becoming master when the add hangs.
func TestPreemptionWaitsForVIPs(t *testing.T) {
	for _, tt := range []struct {
		name  string
		add   time.Duration
		first time.Duration // after becoming master
	}{{"add takes 2s", 2 * time.Second, 2 * time.Second}, {"add hangs", time.Hour, claimBound}} {
		t.Run(tt.name, func(t *testing.T) {
			clock := newFakeClock()
			var slow *slowAddrs
			web := vrrpConfig("web", 51, "eth0", "10.0.0.100/24")
			web.Priority = 150
			r := startManagerWith(t, managerOpts{clock: clock, workers: true, addrs: func(l *vipLog) AddressManager {
				slow = &slowAddrs{vipLog: l, clock: clock, add: tt.add}
				return slow
			}}, web)
			t.Cleanup(func() { close(slow.released()) })
			in := r.m.byName["web"]
			lower := Advert{VRID: 51, Priority: 100, Interval: time.Second, Addrs: []netip.Addr{testVIP.Addr()}}
			b, err := lower.Encode(addrLow, GroupV4, ChecksumRFC5798)
			if err != nil {
				t.Fatal(err)
			}
			c := r.conn("eth0")
			var became time.Duration
			for step := 0; step < 100; step++ { // a live lower master, one advert a second
				if step%10 == 0 {
					in.handle(Packet{Src: addrLow, Dst: GroupV4, TTL: 255, Payload: b})
				}
				clock.Advance(100 * time.Millisecond)
				if became == 0 && r.status("web").State == "master" {
					became = clock.Since()
					waitUntil(t, "the add to start", func() bool { return slices.Contains(slow.calls(), "add eth0") })
				}
				if became > 0 && clock.Since() < became+tt.first && len(c.adverts()) > 0 {
					t.Fatalf("first advert at %v, %v after becoming master, before the VIPs were up", c.adverts()[0].at, c.adverts()[0].at-became)
				}
				if became > 0 && clock.Since() >= became+tt.first {
					break
				}
			}
			if became != 3500*time.Millisecond { // the step after masterDown(150, 1s) = 3.41 s
				t.Fatalf("became master at %v", became)
			}
			waitUntil(t, "the first advert", func() bool { return len(c.adverts()) > 0 })
			first := c.adverts()[0]
			if tt.add < claimBound && (slow.adds() != 1 || r.ann.len() == 0) {
				t.Errorf("first advert with %d adds done and %d announcements; want the VIPs up first", slow.adds(), r.ann.len())
			}
			if tt.add > claimBound && first.at != masterDown(150, time.Second)+claimBound {
				t.Errorf("with the add hung, first advert at %v, want claimBound after becoming master", first.at)
			}
			if first.ad.Priority != 150 {
				t.Errorf("first advert priority %d", first.ad.Priority)
			}
		})
	}
}

// queuedConn is a fakeConn whose received packets wait in its queue, as in
// a socket whose reading goroutine has not run yet.
type queuedConn struct {
	*fakeConn
	mu     sync.Mutex
	queued []Packet
}

func (c *queuedConn) ReceivePending() (Packet, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.queued) == 0 {
		return Packet{}, false
	}
	p := c.queued[0]
	c.queued = c.queued[1:]
	return p, true
}

// TestMasterDownReadsQueuedAdverts: when a backup's Master_Down_Timer runs
// out while the master's adverts sit unread in its socket (its receiving
// goroutine starved of CPU), the timing thread reads them first, and the
// backup stays backup. Without them it takes over, as the RFC says.
func TestMasterDownReadsQueuedAdverts(t *testing.T) {
	for _, queued := range []bool{true, false} {
		r := newRig(t, baseSettings(), nil, nil)
		qc := &queuedConn{fakeConn: r.conn}
		r.in.opened(addrMid, qc)
		r.in.start()
		ad := Advert{VRID: 51, Priority: 200, Interval: time.Second, Addrs: []netip.Addr{testVIP.Addr()}}
		b, err := ad.Encode(addrHigh, GroupV4, ChecksumRFC5798)
		if err != nil {
			t.Fatal(err)
		}
		r.hear(t, addrHigh, 200, time.Second)
		r.clock.Advance(time.Second)
		if queued { // the next advert arrived, but nobody has read it
			qc.mu.Lock()
			qc.queued = append(qc.queued, Packet{Src: addrHigh, Dst: GroupV4, TTL: 255, Payload: b})
			qc.mu.Unlock()
		}
		r.clock.Advance(masterDown(100, time.Second) - time.Second)
		if want := map[bool]State{true: StateBackup, false: StateMaster}[queued]; r.state() != want {
			t.Errorf("advert queued %v: %v at Master_Down_Interval, want %v", queued, r.state(), want)
		}
	}
}
