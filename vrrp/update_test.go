package vrrp

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lvsd/lvsd/config"
	"github.com/lvsd/lvsd/internal/proc"
	"github.com/prometheus/client_golang/prometheus"
)

// vipLog is an AddressManager that records every call with its VIPs.
type vipLog struct {
	mu  sync.Mutex
	ops []string
}

func (v *vipLog) record(op, iface string, vips []netip.Prefix) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.ops = append(v.ops, fmt.Sprintf("%s %s %v", op, iface, vips))
}

func (v *vipLog) AddVIPs(_ context.Context, iface string, vips []netip.Prefix) error {
	v.record("add", iface, vips)
	return nil
}

func (v *vipLog) RemoveVIPs(_ context.Context, iface string, vips []netip.Prefix) error {
	v.record("remove", iface, vips)
	return nil
}

// since returns the calls from the n-th on.
func (v *vipLog) since(n int) []string {
	v.mu.Lock()
	defer v.mu.Unlock()
	return slices.Clone(v.ops[n:])
}

func (v *vipLog) len() int {
	v.mu.Lock()
	defer v.mu.Unlock()
	return len(v.ops)
}

// announceLog is an Announcer that records which VIPs each call announced.
type announceLog struct{ vipLog }

func (a *announceLog) Announce(iface string, vips []netip.Prefix) error {
	a.record("announce", iface, vips)
	return nil
}

// switchLinks is a LinkWatcher whose links the test turns up and down;
// every link is up unless set down.
type switchLinks struct {
	mu      sync.Mutex
	broken  map[string]bool // Watch fails for these
	down    map[string]bool
	watches []switchWatch
}

type switchWatch struct {
	ctx    context.Context
	ifaces []string
	report func(string, bool)
}

func (l *switchLinks) Watch(ctx context.Context, ifaces []string, report func(string, bool)) error {
	l.mu.Lock()
	for _, i := range ifaces {
		if l.broken[i] {
			l.mu.Unlock()
			return fmt.Errorf("no such link %s", i)
		}
	}
	l.watches = append(l.watches, switchWatch{ctx, ifaces, report})
	states := map[string]bool{}
	for _, i := range ifaces {
		states[i] = !l.down[i]
	}
	l.mu.Unlock()
	for _, i := range ifaces {
		report(i, states[i])
	}
	return nil
}

func (l *switchLinks) failWatch(iface string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.broken == nil {
		l.broken = map[string]bool{}
	}
	l.broken[iface] = true
}

func (l *switchLinks) set(iface string, up bool) {
	l.mu.Lock()
	if l.down == nil {
		l.down = map[string]bool{}
	}
	l.down[iface] = !up
	var reports []func(string, bool)
	for _, w := range l.watches {
		if w.ctx.Err() == nil && slices.Contains(w.ifaces, iface) {
			reports = append(reports, w.report)
		}
	}
	l.mu.Unlock()
	for _, r := range reports {
		r(iface, up)
	}
}

// mrig is a running Manager on fakes.
type mrig struct {
	t      *testing.T
	clock  *fakeClock
	tr     *fakeTransport
	links  *switchLinks
	addrs  *vipLog
	ann    *announceLog
	reg    *prometheus.Registry
	log    *syncLog
	m      *Manager
	cancel context.CancelFunc
	done   chan error
}

type syncLog struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncLog) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncLog) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func startManager(t *testing.T, clock *fakeClock, tr Transport, links *switchLinks, cfgs ...config.VRRP) *mrig {
	t.Helper()
	return startManagerWith(t, managerOpts{clock: clock, tr: tr, links: links}, cfgs...)
}

// managerOpts are the less common choices of a test Manager.
type managerOpts struct {
	clock *fakeClock
	tr    Transport
	links *switchLinks
	// addrs wraps the rig's vipLog (which records every call), e.g. to
	// make it slow.
	addrs func(*vipLog) AddressManager
	// workers runs slow actions on the workers, as in production, rather
	// than inline.
	workers bool
	// exec runs resource commands and tracked scripts (manager_ha_test.go).
	exec func(context.Context, []string, proc.RunOptions) proc.Result
}

func startManagerWith(t *testing.T, o managerOpts, cfgs ...config.VRRP) *mrig {
	t.Helper()
	clock, tr, links := o.clock, o.tr, o.links
	if clock == nil {
		clock = newFakeClock()
	}
	r := &mrig{t: t, clock: clock, links: links, addrs: &vipLog{}, ann: &announceLog{}, reg: prometheus.NewRegistry(), log: &syncLog{}, done: make(chan error, 1)}
	if r.links == nil {
		r.links = &switchLinks{}
	}
	if tr == nil {
		r.tr = &fakeTransport{clock: clock, conns: map[string]*fakeConn{}}
		tr = r.tr
	}
	var addrs AddressManager = r.addrs
	if o.addrs != nil {
		addrs = o.addrs(r.addrs)
	}
	var err error
	r.m, err = NewManager(cfgs, Options{
		Logger: slog.New(slog.NewTextHandler(r.log, nil)), Registerer: r.reg,
		Addresses: addrs, Clock: clock, Transport: tr, Announcer: r.ann, Links: r.links,
		OwnAddress: func(netip.Addr) bool { return false },
	})
	if err != nil {
		t.Fatal(err)
	}
	// Unless asked for workers, slow actions run in the goroutine that
	// caused them, so a test that advances the fake clock sees their
	// effects on return. The workers have tests of their own
	// (executor_test.go).
	r.m.ex.inline = !o.workers
	if o.exec != nil {
		r.m.exec = o.exec
	}
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	go func() { r.done <- r.m.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-r.done; err != nil {
			t.Errorf("Run: %v", err)
		}
		if t.Failed() {
			t.Logf("manager log:\n%s", r.log.String())
		}
	})
	var want []string
	for _, c := range cfgs {
		want = append(want, c.Name+"=backup")
	}
	// Backup, and what entering it does (the VIPs a killed predecessor
	// left are removed) done: inline, that runs on the goroutine that
	// reported the links up, and must not count as a later step's.
	waitUntil(t, "every instance backup", func() bool { return states(r.m) == strings.Join(want, " ") && r.m.ex.idle() })
	return r
}

// masters lets every instance become master (nobody else on the link).
func (r *mrig) masters() {
	r.t.Helper()
	r.clock.Advance(4 * time.Second)
	for _, st := range r.m.Status() {
		if st.State != "master" {
			r.t.Fatalf("not all master: %s", states(r.m))
		}
	}
}

// transitions sums lvsd_vrrp_transitions_total of an instance, and says
// whether the instance has any series at all.
func (r *mrig) transitions(name string) (float64, bool) {
	r.t.Helper()
	mfs, err := r.reg.Gather()
	if err != nil {
		r.t.Fatal(err)
	}
	sum, any := 0.0, false
	for _, mf := range mfs {
		for _, mt := range mf.GetMetric() {
			for _, lp := range mt.GetLabel() {
				if lp.GetName() == "vrrp_instance" && lp.GetValue() == name {
					any = true
					if mf.GetName() == "lvsd_vrrp_transitions_total" {
						sum += mt.GetCounter().GetValue()
					}
				}
			}
		}
	}
	return sum, any
}

func (r *mrig) status(name string) InstanceStatus {
	r.t.Helper()
	for _, st := range r.m.Status() {
		if st.Name == name {
			return st
		}
	}
	r.t.Fatalf("no instance %s: %s", name, states(r.m))
	return InstanceStatus{}
}

func (r *mrig) conn(iface string) *fakeConn {
	r.tr.mu.Lock()
	defer r.tr.mu.Unlock()
	return r.tr.conns[iface]
}

func (r *mrig) update(cfgs ...config.VRRP) {
	r.t.Helper()
	if err := r.m.Update(cfgs); err != nil {
		r.t.Fatalf("Update: %v", err)
	}
}

func prefixes(ps ...string) []config.Prefix {
	var out []config.Prefix
	for _, p := range ps {
		out = append(out, config.Prefix{Prefix: netip.MustParsePrefix(p)})
	}
	return out
}

// TestUpdatePriorityOnMaster: a new priority goes out with the next advert,
// with no transition, no advert burst and no VIP or ARP activity.
func TestUpdatePriorityOnMaster(t *testing.T) {
	web := vrrpConfig("web", 51, "eth0", "10.0.0.100/24")
	r := startManager(t, nil, nil, nil, web)
	r.masters()
	before, _ := r.transitions("web")
	since := r.status("web").Since
	ops, anns := r.addrs.len(), r.ann.len()
	c := r.conn("eth0")
	sent := len(c.adverts())

	web.Priority = 150
	r.update(web)
	if n := len(c.adverts()); n != sent {
		t.Errorf("Update sent %d adverts at once, want none before the next interval", n-sent)
	}
	r.clock.Advance(time.Second)
	a := c.adverts()
	if len(a) != sent+1 || a[len(a)-1].ad.Priority != 150 {
		t.Fatalf("adverts after one interval: %d new, last %+v; want one with priority 150", len(a)-sent, a[len(a)-1])
	}
	st := r.status("web")
	if after, _ := r.transitions("web"); after != before || st.State != "master" || !st.Since.Equal(since) {
		t.Errorf("a priority change made a transition: %v -> %v, state %s since %v", before, after, st.State, st.Since)
	}
	if st.Priority != 150 || st.MasterPriority != 150 {
		t.Errorf("status priority %d, master priority %d; want 150", st.Priority, st.MasterPriority)
	}
	if got := r.addrs.since(ops); len(got) != 0 {
		t.Errorf("VIP operations for a priority change: %v", got)
	}
	if got := r.ann.since(anns); len(got) != 0 {
		t.Errorf("announcements for a priority change: %v", got)
	}
	// The same config again changes nothing at all.
	r.update(web)
	r.clock.Advance(time.Second)
	if n := len(c.adverts()); n != sent+2 {
		t.Errorf("%d adverts in two intervals, want 2", n-sent)
	}
	if !strings.Contains(r.log.String(), "changed=priority") {
		t.Errorf("the in-place update was not logged with what changed:\n%s", r.log.String())
	}
}

// segTransport puts every Manager of a segment on one link: what one
// sends reaches every instance of the others 1 ms later, through the clock.
type segment struct {
	clock *fakeClock
	mu    sync.Mutex
	mgrs  []*Manager
}

type segTransport struct {
	seg   *segment
	self  func() *Manager
	inner *fakeTransport
}

type segConn struct {
	*fakeConn
	t *segTransport
}

func (t *segTransport) Open(iface string, src netip.Addr, multicast bool) (Conn, error) {
	c, err := t.inner.Open(iface, src, multicast)
	if err != nil {
		return nil, err
	}
	return segConn{c.(*fakeConn), t}, nil
}

func (c segConn) Send(b []byte, dst netip.Addr) error {
	if err := c.fakeConn.Send(b, dst); err != nil {
		return err
	}
	c.t.seg.mu.Lock()
	others := slices.DeleteFunc(slices.Clone(c.t.seg.mgrs), func(m *Manager) bool { return m == c.t.self() })
	c.t.seg.mu.Unlock()
	pkt := Packet{Src: c.src, Dst: dst, TTL: 255, Payload: slices.Clone(b)}
	// The instance lists are read at delivery, outside the sender's lock.
	for _, m := range others {
		c.clock.AfterFunc(time.Millisecond, func() {
			for _, in := range m.instanceList() {
				in.handle(pkt)
			}
		})
	}
	return nil
}

// TestUpdatePriorityBelowPeer: a master whose priority a reload drops
// below its peer's is preempted by the peer, as RFC 5798 has it, and
// steps down when it hears the peer's higher priority.
func TestUpdatePriorityBelowPeer(t *testing.T) {
	clock := newFakeClock()
	seg := &segment{clock: clock}
	var a, b *mrig
	ta := &segTransport{seg: seg, self: func() *Manager { return a.m }, inner: &fakeTransport{clock: clock, conns: map[string]*fakeConn{}}}
	tb := &segTransport{seg: seg, self: func() *Manager { return b.m }, inner: &fakeTransport{clock: clock, conns: map[string]*fakeConn{}}}
	ca := vrrpConfig("vi", 51, "eth0", "10.0.0.100/24")
	ca.Priority, ca.SourceAddress = 200, config.Addr{IP: addrLow}
	cb := vrrpConfig("vi", 51, "eth0", "10.0.0.100/24")
	cb.Priority, cb.SourceAddress = 100, config.Addr{IP: addrHigh}
	a = startManager(t, clock, ta, nil, ca)
	b = startManager(t, clock, tb, nil, cb)
	seg.mu.Lock()
	seg.mgrs = []*Manager{a.m, b.m}
	seg.mu.Unlock()
	clock.Advance(10 * time.Second)
	if a.status("vi").State != "master" || b.status("vi").State != "backup" {
		t.Fatalf("start: a %s, b %s", states(a.m), states(b.m))
	}
	ca.Priority = 50
	a.update(ca)
	if a.status("vi").State != "master" {
		t.Fatal("lowering the priority made a transition at once")
	}
	// b hears priority 50 at the next advert, lets its Master_Down_Timer
	// run out, takes over and a steps down on b's first advert.
	clock.Advance(time.Second + masterDown(100, time.Second) + 10*time.Millisecond)
	if a.status("vi").State != "backup" || b.status("vi").State != "master" {
		t.Fatalf("after lowering a's priority to 50: a %s, b %s; want b preempting", states(a.m), states(b.m))
	}
	// Raised above b's again, backup a preempts b in turn.
	ca.Priority = 250
	a.update(ca)
	clock.Advance(time.Second + masterDown(250, time.Second) + 10*time.Millisecond)
	if a.status("vi").State != "master" || b.status("vi").State != "backup" {
		t.Fatalf("after raising a's priority to 250: a %s, b %s; want a preempting", states(a.m), states(b.m))
	}
}

// TestUpdateVIPsOnMaster: a master adds and announces only the new VIP,
// removes only the dropped one, and makes no transition.
func TestUpdateVIPsOnMaster(t *testing.T) {
	web := vrrpConfig("web", 51, "eth0", "10.0.0.100/24")
	web.GARPRepeat = 3
	r := startManager(t, nil, nil, nil, web)
	r.masters()
	before, _ := r.transitions("web")
	ops, anns := r.addrs.len(), r.ann.len()

	web.VIPs = prefixes("10.0.0.100/24", "10.0.0.101/24")
	r.update(web)
	if got, want := r.addrs.since(ops), []string{"add eth0 [10.0.0.101/24]"}; !slices.Equal(got, want) {
		t.Errorf("VIP operations adding a VIP: %v, want %v", got, want)
	}
	if got, want := r.ann.since(anns), slices.Repeat([]string{"announce eth0 [10.0.0.101/24]"}, 3); !slices.Equal(got, want) {
		t.Errorf("announcements adding a VIP: %v, want %v", got, want)
	}
	r.clock.Advance(time.Second)
	if got := r.conn("eth0").last().ad.Addrs; len(got) != 2 {
		t.Errorf("next advert lists %v, want both VIPs", got)
	}

	ops, anns = r.addrs.len(), r.ann.len()
	web.VIPs = prefixes("10.0.0.101/24")
	r.update(web)
	if got, want := r.addrs.since(ops), []string{"remove eth0 [10.0.0.100/24]"}; !slices.Equal(got, want) {
		t.Errorf("VIP operations dropping a VIP: %v, want %v", got, want)
	}
	if got := r.ann.since(anns); len(got) != 0 {
		t.Errorf("announcements dropping a VIP: %v", got)
	}
	if after, _ := r.transitions("web"); after != before || r.status("web").State != "master" {
		t.Errorf("VIP changes made a transition: %v -> %v (%s)", before, after, states(r.m))
	}
	// Stepping down releases exactly the VIPs it holds now.
	ops = r.addrs.len()
	r.cancel()
	<-r.done
	r.done <- nil
	if got, want := r.addrs.since(ops), []string{"remove eth0 [10.0.0.101/24]"}; !slices.Equal(got, want) {
		t.Errorf("VIPs released on stop: %v, want %v", got, want)
	}
}

// TestUpdateVIPsOnBackup: a backup only records the new VIPs and claims
// them all when it becomes master.
func TestUpdateVIPsOnBackup(t *testing.T) {
	web := vrrpConfig("web", 51, "eth0", "10.0.0.100/24")
	r := startManager(t, nil, nil, nil, web)
	ops := r.addrs.len()
	web.VIPs = prefixes("10.0.0.100/24", "10.0.0.101/24")
	r.update(web)
	if got := r.addrs.since(ops); len(got) != 0 {
		t.Errorf("a backup touched VIPs on update: %v", got)
	}
	r.masters()
	if got, want := r.addrs.since(ops), []string{"add eth0 [10.0.0.100/24 10.0.0.101/24]"}; !slices.Equal(got, want) {
		t.Errorf("VIPs claimed on becoming master: %v, want %v", got, want)
	}
}

// TestUpdateRemovesInstance: a removed master resigns with priority 0,
// releases its VIPs and loses its metric series; the other is untouched.
func TestUpdateRemovesInstance(t *testing.T) {
	web := vrrpConfig("web", 51, "eth0", "10.0.0.100/24")
	db := vrrpConfig("db", 52, "eth1", "10.0.1.100/24")
	r := startManager(t, nil, nil, nil, web, db)
	r.masters()
	webBefore, _ := r.transitions("web")
	webSent := len(r.conn("eth0").adverts())
	ops := r.addrs.len()

	r.update(web)
	if a := r.conn("eth1").last(); a.ad.Priority != 0 {
		t.Errorf("removed master's last advert has priority %d, want 0", a.ad.Priority)
	}
	if got, want := r.addrs.since(ops), []string{"remove eth1 [10.0.1.100/24]"}; !slices.Equal(got, want) {
		t.Errorf("VIP operations removing db: %v, want %v", got, want)
	}
	if got := states(r.m); got != "web=master" {
		t.Errorf("instances after removing db: %s", got)
	}
	if _, any := r.transitions("db"); any {
		t.Error("metric series of the removed instance db remain")
	}
	n := len(r.conn("eth1").adverts())
	r.clock.Advance(5 * time.Second)
	if len(r.conn("eth1").adverts()) != n {
		t.Error("the removed instance still sends adverts")
	}
	if after, _ := r.transitions("web"); after != webBefore || len(r.conn("eth0").adverts()) != webSent+5 {
		t.Errorf("web was disturbed: transitions %v -> %v", webBefore, after)
	}
	if err := r.m.Takeover("db"); err == nil {
		t.Error("Takeover of the removed instance succeeded")
	}
}

// TestUpdateAddsInstance: an added instance starts as backup (on its own
// socket) and takes over by the usual rules; the others are untouched.
func TestUpdateAddsInstance(t *testing.T) {
	web := vrrpConfig("web", 51, "eth0", "10.0.0.100/24")
	r := startManager(t, nil, nil, nil, web)
	r.masters()
	before, _ := r.transitions("web")
	mail := vrrpConfig("mail", 53, "eth2", "10.0.2.100/24")
	r.update(web, mail)
	if got := states(r.m); got != "web=master mail=backup" {
		t.Fatalf("after adding mail: %s", got)
	}
	r.clock.Advance(4 * time.Second)
	if got := states(r.m); got != "web=master mail=master" {
		t.Fatalf("mail did not take over on a silent link: %s", got)
	}
	if r.conn("eth2") == nil || r.conn("eth2").last().ad.VRID != 53 {
		t.Error("mail sends no adverts on eth2")
	}
	if after, _ := r.transitions("web"); after != before {
		t.Errorf("web made transitions: %v -> %v", before, after)
	}
}

// TestUpdateInterfaceRestartsOnlyThatInstance: a new interface needs a new
// socket: that instance resigns and starts again as backup, logging why.
func TestUpdateInterfaceRestartsOnlyThatInstance(t *testing.T) {
	web := vrrpConfig("web", 51, "eth0", "10.0.0.100/24")
	db := vrrpConfig("db", 52, "eth1", "10.0.1.100/24")
	r := startManager(t, nil, nil, nil, web, db)
	r.masters()
	dbBefore, _ := r.transitions("db")
	webBefore, _ := r.transitions("web")
	ops := r.addrs.len()

	web.Interface = "eth3"
	r.update(web, db)
	if a := r.conn("eth0").last(); a.ad.Priority != 0 {
		t.Errorf("old socket's last advert has priority %d, want 0", a.ad.Priority)
	}
	if got := states(r.m); got != "web=backup db=master" {
		t.Fatalf("after moving web to eth3: %s", got)
	}
	if got := r.addrs.since(ops); !slices.Contains(got, "remove eth0 [10.0.0.100/24]") || slices.ContainsFunc(got, func(s string) bool { return strings.Contains(s, "eth1") }) {
		t.Errorf("VIP operations: %v; want web's removed from eth0 and db's untouched", got)
	}
	if after, _ := r.transitions("web"); after != webBefore+2 {
		t.Errorf("web transitions %v -> %v, want master->init->backup", webBefore, after)
	}
	if !strings.Contains(r.log.String(), "interface eth0 -> eth3") {
		t.Errorf("the restart's reason was not logged:\n%s", r.log.String())
	}
	r.clock.Advance(4 * time.Second)
	if got := states(r.m); got != "web=master db=master" {
		t.Fatalf("web on eth3: %s", got)
	}
	if r.conn("eth3").last().ad.VRID != 51 {
		t.Error("web does not advertise on eth3")
	}
	if after, _ := r.transitions("db"); after != dbBefore {
		t.Errorf("db made transitions: %v -> %v", dbBefore, after)
	}
}

// TestUpdateRejectsInvalid: a bad config changes nothing.
func TestUpdateRejectsInvalid(t *testing.T) {
	web := vrrpConfig("web", 51, "eth0", "10.0.0.100/24")
	db := vrrpConfig("db", 52, "eth1", "10.0.1.100/24")
	r := startManager(t, nil, nil, nil, web, db)
	r.masters()
	good := []config.VRRP{web, db}
	changedWeb := web
	changedWeb.Priority = 200
	// Rules are config.Parse's (TestConfigGuardsTheManager); what Update
	// itself can fail on is readying what the new config needs: here,
	// watching a link that no instance tracked before.
	r.links.failWatch("eth8")
	tracksBad := db
	tracksBad.TrackInterfaces = []string{"eth8"}
	movesToBad := db
	movesToBad.Interface = "eth8"
	tests := []struct {
		name string
		cfgs []config.VRRP
		want string
	}{
		{"one instance tracks a link that cannot be watched", []config.VRRP{changedWeb, tracksBad}, "watching links"},
		{"one instance moves to it", []config.VRRP{changedWeb, movesToBad}, "watching links"},
	}
	for _, tt := range tests {
		ops, sent := r.addrs.len(), len(r.conn("eth0").adverts())
		before := r.m.Status()
		err := r.m.Update(tt.cfgs)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: Update error %v, want one containing %q", tt.name, err, tt.want)
		}
		r.clock.Advance(time.Second)
		if got := r.m.Status(); !slices.EqualFunc(got, before, func(a, b InstanceStatus) bool {
			return a.Name == b.Name && a.State == b.State && a.Priority == b.Priority && a.Since.Equal(b.Since)
		}) {
			t.Errorf("%s: status changed: %+v -> %+v", tt.name, before, got)
		}
		if a := r.conn("eth0").adverts(); len(a) != sent+1 || a[len(a)-1].ad.Priority != 100 {
			t.Errorf("%s: web's adverts after a rejected update: %+v", tt.name, a[sent:])
		}
		if got := r.addrs.since(ops); len(got) != 0 {
			t.Errorf("%s: VIP operations: %v", tt.name, got)
		}
	}
	r.update(good...)
}

// TestUpdateTracking: track lists are re-evaluated against what the
// Manager knows: a newly tracked service that is down, or a newly tracked
// link that is down, faults the instance; dropping it clears the fault.
// An added instance on a link that is down starts in Fault.
func TestUpdateTracking(t *testing.T) {
	links := &switchLinks{}
	links.set("eth9", false)
	web := vrrpConfig("web", 51, "eth0", "10.0.0.100/24")
	r := startManager(t, nil, nil, links, web)
	r.masters()
	r.m.SetServiceDown("http", true) // untracked: no effect
	if got := states(r.m); got != "web=master" {
		t.Fatalf("untracked service down: %s", got)
	}
	web.TrackServices = []string{"http"}
	r.update(web)
	if got := states(r.m); got != "web=fault" {
		t.Fatalf("now tracking a down service: %s", got)
	}
	web.TrackServices = nil
	r.update(web)
	if got := states(r.m); got != "web=backup" {
		t.Fatalf("no longer tracking it: %s", got)
	}
	web.TrackInterfaces = []string{"eth9"}
	r.update(web)
	if got := states(r.m); got != "web=fault" {
		t.Fatalf("now tracking a down link: %s", got)
	}
	links.set("eth9", true)
	if got := states(r.m); got != "web=backup" {
		t.Fatalf("tracked link came up: %s", got)
	}
	links.set("eth7", false)
	mail := vrrpConfig("mail", 53, "eth7", "10.0.2.100/24")
	r.update(web, mail)
	if got := states(r.m); got != "web=backup mail=fault" {
		t.Fatalf("added on a down link: %s", got)
	}
	links.set("eth7", true)
	if got := states(r.m); got != "web=backup mail=backup" {
		t.Fatalf("its link came up: %s", got)
	}
}

// TestUpdateConcurrent runs updates beside service events, operator
// commands and status reads, for the race detector.
func TestUpdateConcurrent(t *testing.T) {
	web := vrrpConfig("web", 51, "eth0", "10.0.0.100/24")
	web.TrackServices = []string{"http"}
	db := vrrpConfig("db", 52, "eth1", "10.0.1.100/24")
	r := startManager(t, nil, nil, nil, web, db)
	r.masters()
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for _, f := range []func(i int){
		func(i int) { r.m.SetServiceDown("http", i%2 == 0) },
		func(int) { r.m.Status() },
		func(i int) { r.m.Takeover("db"); r.m.Reset("db") },
		func(int) { r.clock.Advance(100 * time.Millisecond) },
	} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				f(i)
			}
		}()
	}
	for i := range 30 {
		w, d := web, db
		w.Priority = 100 + i
		w.VIPs = prefixes("10.0.0.100/24", fmt.Sprintf("10.0.0.%d/24", 101+i%3))
		cfgs := []config.VRRP{w}
		if i%3 != 0 {
			cfgs = append(cfgs, d)
		}
		if i%5 == 0 {
			w.Interface = "eth4"
			cfgs[0] = w
		}
		r.update(cfgs...)
	}
	close(stop)
	wg.Wait()
}

// TestUpdatePeersAndNotify: new unicast peers get the next advert and
// adverts from the old peer are refused; a notify command added by a
// reload runs on the next transition. Neither makes a transition itself.
func TestUpdatePeersAndNotify(t *testing.T) {
	web := vrrpConfig("web", 51, "eth0", "10.0.0.100/24")
	web.UnicastPeers = []config.Addr{{IP: addrHigh}}
	r := startManager(t, nil, nil, nil, web)
	r.masters()
	before, _ := r.transitions("web")
	if a := r.conn("eth0").last(); a.dst != addrHigh {
		t.Fatalf("advert to %v, want the peer %v", a.dst, addrHigh)
	}

	dir := t.TempDir()
	notifyLog := dir + "/notify.log"
	script := dir + "/notify.sh"
	if err := os.WriteFile(script, []byte("#!/bin/sh\necho \"$@\" >> "+notifyLog+"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	web.UnicastPeers = []config.Addr{{IP: addrLow}}
	web.Notify = []string{script}
	r.update(web)
	r.clock.Advance(time.Second)
	if a := r.conn("eth0").last(); a.dst != addrLow {
		t.Errorf("advert after the update to %v, want the new peer %v", a.dst, addrLow)
	}
	if after, _ := r.transitions("web"); after != before {
		t.Errorf("changing peers and notify made transitions: %v -> %v", before, after)
	}

	// The old peer is a stranger now; the new one is heard.
	r.m.mu.Lock()
	in := r.m.byName["web"]
	r.m.mu.Unlock()
	ad := Advert{VRID: 51, Priority: 200, Interval: time.Second, Addrs: []netip.Addr{testVIP.Addr()}}
	for _, src := range []netip.Addr{addrHigh, addrLow} {
		b, err := ad.Encode(src, addrMid, ChecksumRFC5798)
		if err != nil {
			t.Fatal(err)
		}
		in.handle(Packet{Src: src, Dst: addrMid, TTL: 64, Payload: b})
		if src == addrHigh && r.status("web").State != "master" {
			t.Fatal("a master stepped down for an advert from a peer no longer configured")
		}
	}
	if st := r.status("web"); st.State != "backup" || st.Master != addrLow.String() {
		t.Fatalf("after a higher priority advert from the new peer: %+v", st)
	}
	waitUntil(t, "notify of the step-down", func() bool {
		b, _ := os.ReadFile(notifyLog)
		return string(b) == "web backup 100\n"
	})
}
