package vrrp

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"sort"
	"sync"
	"testing"
	"time"
)

var epoch = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// fakeClock fires timers only when the test advances it, in deadline
// order, from the test's goroutine.
type fakeClock struct {
	mu     sync.Mutex
	now    time.Time
	timers []*fakeTimer
	seq    int
}

type fakeTimer struct {
	c       *fakeClock
	at      time.Time
	seq     int
	f       func()
	stopped bool
}

func newFakeClock() *fakeClock { return &fakeClock{now: epoch} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) AfterFunc(d time.Duration, f func()) Timer {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.seq++
	t := &fakeTimer{c: c, at: c.now.Add(d), seq: c.seq, f: f}
	c.timers = append(c.timers, t)
	return t
}

func (t *fakeTimer) Stop() bool {
	t.c.mu.Lock()
	defer t.c.mu.Unlock()
	was := !t.stopped
	t.stopped = true
	return was
}

// Advance moves time forward by d, firing every timer due on the way.
func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	target := c.now.Add(d)
	c.mu.Unlock()
	for {
		c.mu.Lock()
		var live []*fakeTimer
		for _, t := range c.timers {
			if !t.stopped {
				live = append(live, t)
			}
		}
		c.timers = live
		sort.Slice(live, func(i, j int) bool {
			if !live[i].at.Equal(live[j].at) {
				return live[i].at.Before(live[j].at)
			}
			return live[i].seq < live[j].seq
		})
		if len(live) == 0 || live[0].at.After(target) {
			c.now = target
			c.mu.Unlock()
			return
		}
		t := live[0]
		t.stopped = true
		c.now = t.at
		c.mu.Unlock()
		t.f()
	}
}

// Since is the time since the clock's epoch.
func (c *fakeClock) Since() time.Duration { return c.Now().Sub(epoch) }

type sentAdvert struct {
	at  time.Duration
	dst netip.Addr
	ad  Advert
	// vipsHeld and announced are what the rig's instance had done when it
	// sent this advert: VIPs on the interface, announcements sent.
	vipsHeld  bool
	announced int
	raw       []byte // as sent
}

// fakeConn records what an instance sends, and with a peer set delivers it
// to the peer 1 ms later through the clock (never under the sender's lock).
type fakeConn struct {
	mu     sync.Mutex
	clock  *fakeClock
	src    netip.Addr
	sent   []sentAdvert
	peer   *instance
	linked bool
	// closed, when set, makes Receive block until Close, as a socket does.
	closed    chan struct{}
	closeOnce sync.Once
	// host reports the rig's VIPs and announcements, for sentAdvert.
	host func() (vipsHeld bool, announced int)
}

func (c *fakeConn) Send(b []byte, dst netip.Addr) error {
	ad, _, err := Decode(b, c.src, dst)
	if err != nil {
		return err
	}
	b = slices.Clone(b) // the executor reuses its buffer
	sa := sentAdvert{at: c.clock.Since(), dst: dst, ad: ad, raw: b}
	if c.host != nil {
		sa.vipsHeld, sa.announced = c.host()
	}
	c.mu.Lock()
	c.sent = append(c.sent, sa)
	peer, linked := c.peer, c.linked
	c.mu.Unlock()
	if peer != nil && linked {
		pkt := Packet{Src: c.src, Dst: dst, TTL: 255, Payload: b}
		c.clock.AfterFunc(time.Millisecond, func() { peer.handle(pkt) })
	}
	return nil
}

func (c *fakeConn) Receive() (Packet, error) {
	if c.closed != nil {
		<-c.closed
	}
	return Packet{}, net.ErrClosed
}

func (c *fakeConn) Close() error {
	if c.closed != nil {
		c.closeOnce.Do(func() { close(c.closed) })
	}
	return nil
}

func (c *fakeConn) adverts() []sentAdvert {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]sentAdvert(nil), c.sent...)
}

func (c *fakeConn) last() sentAdvert {
	s := c.adverts()
	if len(s) == 0 {
		return sentAdvert{at: -1}
	}
	return s[len(s)-1]
}

func (c *fakeConn) setLinked(on bool) {
	c.mu.Lock()
	c.linked = on
	c.mu.Unlock()
}

// fakeAddrs is an AddressManager over a set.
type fakeAddrs struct {
	mu   sync.Mutex
	held map[netip.Prefix]bool
	ops  []string
}

func (f *fakeAddrs) AddVIPs(_ context.Context, iface string, vips []netip.Prefix) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, p := range vips {
		f.held[p] = true
	}
	f.ops = append(f.ops, "add")
	return nil
}

func (f *fakeAddrs) RemoveVIPs(_ context.Context, iface string, vips []netip.Prefix) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, p := range vips {
		delete(f.held, p)
	}
	f.ops = append(f.ops, "remove")
	return nil
}

func (f *fakeAddrs) holds() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.held) > 0
}

type fakeAnnouncer struct {
	mu    sync.Mutex
	clock *fakeClock
	at    []time.Duration
}

func (a *fakeAnnouncer) Announce(string, []netip.Prefix) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.at = append(a.at, a.clock.Since())
	return nil
}

func (a *fakeAnnouncer) times() []time.Duration {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]time.Duration(nil), a.at...)
}

// rig is one instance wired to fakes.
type rig struct {
	in      *instance
	clock   *fakeClock
	conn    *fakeConn
	addrs   *fakeAddrs
	ann     *fakeAnnouncer
	mu      sync.Mutex
	changes []StateChange
}

var (
	addrLow  = netip.MustParseAddr("10.0.0.1")
	addrMid  = netip.MustParseAddr("10.0.0.2")
	addrHigh = netip.MustParseAddr("10.0.0.3")
	testVIP  = netip.MustParsePrefix("10.0.0.100/24")
)

func baseSettings() settings {
	return settings{
		name: "vi1", vrid: 51, iface: "eth0", priority: 100, interval: time.Second,
		preempt: true, vips: []netip.Prefix{testVIP}, source: addrMid,
		checksum: ChecksumRFC5798, garpRepeat: 5,
	}
}

func newRig(t *testing.T, s settings, clock *fakeClock, m *metrics) *rig {
	t.Helper()
	if clock == nil {
		clock = newFakeClock()
	}
	r := &rig{clock: clock, conn: &fakeConn{clock: clock, src: s.source}, addrs: &fakeAddrs{held: map[netip.Prefix]bool{}}, ann: &fakeAnnouncer{clock: clock}}
	r.conn.host = func() (bool, int) { return r.addrs.holds(), len(r.ann.times()) }
	ex := newExecutor(clock, slog.New(slog.NewTextHandler(io.Discard, nil)))
	ex.inline = true
	r.in = &instance{
		name: s.name, iface: s.iface, ex: ex, addrs: r.addrs, ann: r.ann, met: m.forInstance(s.name),
		log: slog.New(slog.NewTextHandler(io.Discard, nil)), m: newMachine(s, false),
		changed: func(c StateChange) {
			r.mu.Lock()
			r.changes = append(r.changes, c)
			r.mu.Unlock()
		},
	}
	r.in.life.configured = s
	r.in.opened(s.source, r.conn)
	ex.register(r.in)
	return r
}

func (r *rig) state() State {
	r.in.ex.mu.Lock()
	defer r.in.ex.mu.Unlock()
	return r.in.m.state
}

// hear delivers an advert from src to the instance as the transport would.
func (r *rig) hear(t *testing.T, src netip.Addr, prio int, interval time.Duration) {
	t.Helper()
	ad := Advert{VRID: r.in.m.cfg.vrid, Priority: uint8(prio), Interval: interval, Addrs: r.in.m.cfg.vipAddrs()}
	b, err := ad.Encode(src, GroupV4, ChecksumRFC5798)
	if err != nil {
		t.Fatal(err)
	}
	r.in.handle(Packet{Src: src, Dst: GroupV4, TTL: 255, Payload: b})
}

// link connects two rigs sharing one clock.
func link(a, b *rig) {
	a.conn.peer, a.conn.linked = b.in, true
	b.conn.peer, b.conn.linked = a.in, true
}
