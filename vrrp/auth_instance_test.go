package vrrp

import (
	"bytes"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

const (
	testKey1 = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"
	testKey2 = "2122232425262728292a2b2c2d2e2f303132333435363738393a3b3c3d3e3f40"
)

// authInstance is the rig instance's config with an [vrrp.auth] body
// ("" for none).
func authInstance(prio int, src, auth string) string {
	s := fmt.Sprintf("[[vrrp]]\nname = \"vi1\"\nvrid = 51\ninterface = \"eth0\"\npriority = %d\nadvert_interval = \"1s\"\nvips = [\"10.0.0.100/24\"]\nsource_address = %q\n", prio, src)
	if auth != "" {
		s += "[vrrp.auth]\n" + auth
	}
	return s
}

func authKeys(ids ...int) string {
	var b strings.Builder
	for _, id := range ids {
		k := testKey1
		if id == 2 {
			k = testKey2
		}
		fmt.Fprintf(&b, "[[vrrp.auth.key]]\nid = %d\nsecret = \"hex:%s\"\n", id, k)
	}
	return b.String()
}

func authSettingsFor(t *testing.T, prio int, src, auth string) settings {
	t.Helper()
	s, err := settingsOf(&parseVRRP(authInstance(prio, src, auth))[0])
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// authPair is a master (10.0.0.3, priority 200) and a backup (10.0.0.2,
// priority 100) on one fake link, both with the same [vrrp.auth], settled.
type authPair struct {
	a, b       *rig
	ma, mb     *metrics
	changesBef int
}

func newAuthPair(t *testing.T, auth string) *authPair {
	t.Helper()
	clock := newFakeClock()
	p := &authPair{}
	var err error
	if p.ma, err = newMetrics(prometheus.NewRegistry()); err != nil {
		t.Fatal(err)
	}
	if p.mb, err = newMetrics(prometheus.NewRegistry()); err != nil {
		t.Fatal(err)
	}
	p.a = newRig(t, authSettingsFor(t, 200, "10.0.0.3", auth), clock, p.ma)
	p.b = newRig(t, authSettingsFor(t, 100, "10.0.0.2", auth), clock, p.mb)
	link(p.a, p.b)
	p.b.in.start()
	clock.Advance(time.Second)
	p.a.in.start()
	clock.Advance(10 * time.Second)
	if p.a.state() != StateMaster || p.b.state() != StateBackup {
		t.Fatalf("pair did not settle: a %v, b %v", p.a.state(), p.b.state())
	}
	p.changesBef = p.changes()
	return p
}

func (p *authPair) changes() int {
	n := 0
	for _, r := range []*rig{p.a, p.b} {
		r.mu.Lock()
		n += len(r.changes)
		r.mu.Unlock()
	}
	return n
}

// stable asserts that a is still master, b backup, with no transition
// since the pair settled, over a few more intervals.
func (p *authPair) stable(t *testing.T, what string) {
	t.Helper()
	p.a.clock.Advance(5 * time.Second)
	if p.a.state() != StateMaster || p.b.state() != StateBackup || p.changes() != p.changesBef {
		t.Fatalf("%s: a %v, b %v, %d transitions", what, p.a.state(), p.b.state(), p.changes()-p.changesBef)
	}
}

// hearAll delivers one packet to both nodes as the link would.
func (p *authPair) hearAll(src netip.Addr, b []byte) {
	for _, r := range []*rig{p.a, p.b} {
		r.in.handle(Packet{Src: src, Dst: GroupV4, TTL: 255, Payload: bytes.Clone(b)})
	}
}

// forge builds an advert from src to the VRRP group; key nil leaves it
// unsigned.
func forge(vrid, prio uint8, src netip.Addr, key *AuthKey, seq uint64) []byte {
	return forgeTo(GroupV4, vrid, prio, src, key, seq)
}

func forgeTo(dst netip.Addr, vrid, prio uint8, src netip.Addr, key *AuthKey, seq uint64) []byte {
	ad := Advert{VRID: vrid, Priority: prio, Interval: time.Second, Addrs: []netip.Addr{testVIP.Addr()}}
	b, err := ad.Encode(src, dst, ChecksumRFC5798)
	if err != nil {
		panic(err)
	}
	if key != nil {
		b = append(b, make([]byte, TrailerLen)...)
		SignAdvert(b, src, key, seq)
		setChecksum(b, src, dst, ChecksumRFC5798, true)
	}
	return b
}

func drops(m *metrics, reason string) float64 {
	return counterValue(m.drops.WithLabelValues("vi1", reason))
}

// TestAuthRejectsForgeries: a signed pair (enforce) hears what an attacker
// on the link can send; each is dropped before the state machine, counted
// under its reason on both nodes, and the master stays master.
func TestAuthRejectsForgeries(t *testing.T) {
	for _, replay := range []string{"time", "monotonic"} {
		t.Run(replay, func(t *testing.T) {
			p := newAuthPair(t, "anti_replay = \""+replay+"\"\ntime_window = \"30s\"\n"+authKeys(1))
			attacker := addrLow
			now := func() uint64 { return clockSeq(p.a.clock.Now()) }
			wrongKey := NewAuthKey(1, bytes.Repeat([]byte{7}, 32))
			rightKey := NewAuthKey(1, mustHexKey(testKey1))
			captured := p.a.conn.last().raw
			if len(captured) != headerLen+4+TrailerLen {
				t.Fatalf("the master sends %d bytes, want a signed advert", len(captured))
			}
			p.a.clock.Advance(5 * time.Second)
			spliced := forge(52, 200, addrHigh, rightKey, now()+1) // another VRID's advert, same key
			spliced[1], spliced[2] = 51, 254
			setChecksum(spliced, addrHigh, GroupV4, ChecksumRFC5798, true)
			badType := forge(51, 254, attacker, rightKey, now())
			badType[len(badType)-TrailerLen] = 2
			cases := []struct {
				name, reason string
				src          netip.Addr
				b            []byte
			}{
				{"unsigned priority 254", ReasonMissing, attacker, forge(51, 254, attacker, nil, 0)},
				{"signed with a wrong key", ReasonBadHMAC, attacker, forge(51, 254, attacker, wrongKey, now())},
				{"unknown key id", ReasonUnknownKey, attacker, forge(51, 254, attacker, NewAuthKey(9, bytes.Repeat([]byte{7}, 32)), now())},
				{"the master's advert 5 s later", ReasonReplay, addrHigh, captured},
				{"a valid trailer spliced onto another VRID's advert", ReasonBadHMAC, addrHigh, spliced},
				{"trailer of another type", ReasonMalformed, attacker, badType},
				{"10 bytes after the message", ReasonMalformed, attacker, append(forge(51, 254, attacker, nil, 0), make([]byte, 10)...)},
			}
			for _, c := range cases {
				p.hearAll(c.src, c.b)
				p.stable(t, c.name)
				for _, m := range []*metrics{p.ma, p.mb} {
					if m == p.ma && c.src == addrHigh {
						continue // the master drops its own address first
					}
					if got := drops(m, c.reason); got < 1 {
						t.Errorf("%s: drops{%s} = %v", c.name, c.reason, got)
					}
				}
			}
			// The master's advert replayed after the window: stale under
			// time, still a replay under monotonic.
			p.a.clock.Advance(40 * time.Second)
			p.b.in.handle(Packet{Src: addrHigh, Dst: GroupV4, TTL: 255, Payload: captured})
			p.stable(t, "replayed late")
			want := map[string]float64{"time": 1, "monotonic": 0}[replay]
			if got := drops(p.mb, ReasonStale); got != want {
				t.Errorf("late replay: drops{stale} = %v, want %v", got, want)
			}
			st := p.b.in.status().Auth
			if st == nil || st.Verified == 0 || st.Drops[ReasonMissing] != 1 || st.Drops[ReasonBadHMAC] != 2 || st.Unsigned != 0 {
				t.Errorf("backup's auth status: %+v", st)
			}
		})
	}
}

// TestForgeryWithoutAuthTakesTheVIPs: the attack those drops stop is real.
// Without [vrrp.auth] one unsigned priority-254 advert makes the master
// step down and drop its VIPs.
func TestForgeryWithoutAuthTakesTheVIPs(t *testing.T) {
	p := newAuthPair(t, "")
	p.hearAll(addrLow, forge(51, 254, addrLow, nil, 0))
	if p.a.state() != StateBackup || p.a.addrs.holds() {
		t.Fatalf("a forged advert left the master %v (holding VIPs: %v)", p.a.state(), p.a.addrs.holds())
	}
}

// TestAuthRolloutAndRotationByReload: from no authentication to enforce in
// the three steps, one node at a time, then a key rotation, each by reload:
// no transition and no dropped advert on either node.
func TestAuthRolloutAndRotationByReload(t *testing.T) {
	p := newAuthPair(t, "")
	steps := []string{
		"mode = \"receive-only\"\n" + authKeys(1),
		"mode = \"permissive\"\n" + authKeys(1),
		"mode = \"enforce\"\n" + authKeys(1),
		"active_key = 1\n" + authKeys(1, 2),
		"active_key = 2\n" + authKeys(1, 2),
		authKeys(2),
	}
	for _, step := range steps {
		for _, r := range []*rig{p.a, p.b} {
			s := authSettingsFor(t, r.in.m.cfg.priority, r.in.m.cfg.source.String(), step)
			r.in.reconfigure(s)
			p.stable(t, "after "+strings.ReplaceAll(step, "\n", " "))
		}
	}
	for _, m := range []*metrics{p.ma, p.mb} {
		for _, reason := range AuthReasons {
			if got := drops(m, reason); got != 0 {
				t.Errorf("drops{%s} = %v", reason, got)
			}
		}
	}
	last := p.a.conn.last().raw
	if tr, ok := ParseTrailer(last[len(last)-TrailerLen:]); !ok || tr.KeyID != 2 {
		t.Errorf("after the rotation the master signs with %+v", tr)
	}
	if st := p.b.in.status().Auth; st.Mode != "enforce" || st.ActiveKey != 2 || len(st.KeyIDs) != 1 || st.Verified == 0 {
		t.Errorf("backup's status: %+v", st)
	}
}

// TestAuthUnsignedCountedInMigration: receive-only and permissive accept
// an unsigned advert and say so (the status an operator checks before
// enforce).
func TestAuthUnsignedCountedInMigration(t *testing.T) {
	p := newAuthPair(t, "mode = \"receive-only\"\n"+authKeys(1))
	st := p.b.in.status().Auth
	if st.Unsigned == 0 || st.LastUnsignedFrom != "10.0.0.3" || st.Verified != 0 || st.ActiveKey != 0 {
		t.Errorf("receive-only backup: %+v", st)
	}
	if n := len(p.a.conn.last().raw); n != headerLen+4 {
		t.Errorf("receive-only sends %d bytes, want an unsigned advert", n)
	}
}

// TestAuthUnicastStrangerAndMinTTL: a unicast instance drops a stranger
// before spending a digest, and an advert below min_ttl.
func TestAuthUnicastStrangerAndMinTTL(t *testing.T) {
	m, _ := newMetrics(prometheus.NewRegistry())
	cfg := authInstance(100, "10.0.0.2", "")
	cfg = strings.Replace(cfg, "[[vrrp]]\n", "[[vrrp]]\nunicast_peers = [\"10.0.0.3\"]\nmin_ttl = 255\n", 1)
	cfg += "[vrrp.auth]\n" + authKeys(1)
	s, err := settingsOf(&parseVRRP(cfg)[0])
	if err != nil {
		t.Fatal(err)
	}
	r := newRig(t, s, nil, m)
	r.in.start()
	key := NewAuthKey(1, mustHexKey(testKey1))
	seq := clockSeq(r.clock.Now())
	r.in.handle(Packet{Src: addrLow, Dst: addrMid, TTL: 255, Payload: forgeTo(addrMid, 51, 200, addrLow, key, seq)})
	if got := drops(m, "unknown_sender"); got != 1 {
		t.Errorf("stranger: drops{unknown_sender} = %v", got)
	}
	r.in.handle(Packet{Src: addrHigh, Dst: addrMid, TTL: 64, Payload: forgeTo(addrMid, 51, 200, addrHigh, key, seq)})
	if got := drops(m, "ttl"); got != 1 {
		t.Errorf("TTL 64 under min_ttl 255: drops{ttl} = %v", got)
	}
	r.in.handle(Packet{Src: addrHigh, Dst: addrMid, TTL: 255, Payload: forgeTo(addrMid, 51, 200, addrHigh, key, seq+1)})
	if st := r.in.status().Auth; st.Verified != 1 {
		t.Errorf("the peer's advert: %+v", st)
	}
}

// TestAuthReloadInPlaceNeverLogsKeys: through the Manager, a reload that
// turns signing on applies in place (no restart, no transition), the next
// adverts carry the trailer, and no log line carries a key.
func TestAuthReloadInPlaceNeverLogsKeys(t *testing.T) {
	clock := newFakeClock()
	r := startManager(t, clock, nil, nil, parseVRRP(authInstance(100, "10.0.0.2", ""))...)
	r.masters()
	before, _ := r.transitions("vi1")
	r.update(parseVRRP(authInstance(100, "10.0.0.2", "mode = \"permissive\"\nactive_key = 2\n"+authKeys(1, 2)))...)
	clock.Advance(3 * time.Second)
	if after, _ := r.transitions("vi1"); after != before {
		t.Errorf("the reload made %v transitions", after-before)
	}
	last := r.conn("eth0").last().raw
	if tr, ok := ParseTrailer(last[len(last)-TrailerLen:]); len(last) != headerLen+4+TrailerLen || !ok || tr.KeyID != 2 {
		t.Errorf("after the reload the master sends %x", last)
	}
	logs := r.log.String()
	if !strings.Contains(logs, "updated in place") || !strings.Contains(logs, "changed=auth") {
		t.Errorf("no in-place update logged:\n%s", logs)
	}
	for _, k := range []string{testKey1, testKey2, string(mustHexKey(testKey2)[:8])} {
		if strings.Contains(logs, k) || strings.Contains(fmt.Sprintf("%+v", r.m.Status()), k) {
			t.Errorf("a key shows in the logs or the status")
		}
	}
}

// TestSignedTickAllocatesNothing: signing keeps the advert tick free of
// allocation (issue 11's TestTickAllocatesNothing, with a unicast instance
// of two peers signing and [vrrp.auth] on).
func TestSignedTickAllocatesNothing(t *testing.T) {
	clk := &stepClock{now: time.Unix(1e9, 0)}
	ex := newExecutor(clk, slog.New(slog.NewTextHandler(io.Discard, nil)))
	ex.wake = nopWaker{}
	cfg := fastInstance + "unicast_peers = [\"10.0.0.3\", \"10.0.0.4\"]\n[vrrp.auth]\n" + authKeys(1)
	s, err := settingsOf(&parseVRRP(cfg)[0])
	if err != nil {
		t.Fatal(err)
	}
	in := &instance{name: s.name, iface: s.iface, ex: ex, addrs: &vipLog{}, ann: &announceLog{},
		log: ex.log, m: newMachine(s, false), changed: func(StateChange) {}}
	in.life.configured = s
	in.work = newWorker(in)
	go in.work.run()
	defer in.work.close()
	conn := &lastConn{}
	in.opened(s.source, conn)
	ex.register(in)
	in.start()
	for range 1000 {
		clk.step(10 * time.Millisecond)
		ex.tick()
	}
	if in.status().State != "master" {
		t.Fatal("not master")
	}
	if n := testing.AllocsPerRun(1000, func() {
		clk.step(10 * time.Millisecond)
		ex.tick()
	}); n != 0 {
		t.Errorf("a signed advert tick allocates %v times, want 0", n)
	}
	// And what it sent verifies, once per peer with one trailer.
	k := NewAuthKey(1, mustHexKey(testKey1))
	for _, b := range conn.last {
		if _, reason := VerifyAdvert(b, s.source, &AuthCheck{Keys: []*AuthKey{k}, Now: clk.Now(), Window: 5 * time.Second}); reason != "" {
			t.Errorf("sent %x: %s", b, reason)
		}
	}
	if len(conn.last) != 2 || !bytes.Equal(conn.last[0][12:], conn.last[1][12:]) {
		t.Errorf("the two peers' copies differ after the message: %x", conn.last)
	}
}

// lastConn keeps a copy of the last advert sent to each destination,
// without allocating once it has seen them.
type lastConn struct {
	nopConn
	dsts []netip.Addr
	last [][]byte
}

func (c *lastConn) Send(b []byte, dst netip.Addr) error {
	for i, d := range c.dsts {
		if d == dst {
			c.last[i] = append(c.last[i][:0], b...)
			return nil
		}
	}
	c.dsts = append(c.dsts, dst)
	c.last = append(c.last, bytes.Clone(b))
	return nil
}

func TestReplayTable(t *testing.T) {
	var r replayTable
	now := time.Unix(1_700_000_000, 0)
	seq := clockSeq(now)
	a := netip.MustParseAddr("192.0.2.1")
	if !r.accept(a, seq, now, 0) || r.accept(a, seq, now, 0) || r.accept(a, seq-1, now, 0) || !r.accept(a, seq+1, now, 0) {
		t.Fatal("a sender's sequence must grow strictly")
	}
	// Four other senders push a out (least recently used); it then starts
	// afresh, which is why only HMAC-verified senders may enter.
	for i := range 4 {
		r.accept(netip.AddrFrom4([4]byte{192, 0, 2, byte(10 + i)}), seq, now, 0)
	}
	if !r.accept(a, seq, now, 0) {
		t.Error("an evicted sender is not known any more")
	}
	// Under anti_replay time a mark outside the window expires: after
	// both clocks were stepped back a minute, the sender's new (lower)
	// sequence is accepted, then orders again.
	earlier := now.Add(-time.Minute)
	back := clockSeq(earlier)
	if r.accept(a, back, earlier, 0) {
		t.Error("monotonic: a lower sequence must never pass")
	}
	if !r.accept(a, back, earlier, 5*time.Second) {
		t.Error("time: a mark outside the window must not hold back a sender")
	}
	if r.accept(a, back, earlier, 5*time.Second) {
		t.Error("the same sequence twice")
	}
	r.size(10)
	if len(r.slots) != 10 || r.accept(a, back, earlier, 5*time.Second) {
		t.Error("growing the table forgets what it knows")
	}
}

// TestMasterDownReadsPastAFlood: a backup whose receiving goroutine is
// starved while a flood of forged adverts fills its socket still finds the
// master's advert queued behind 500 of them before Master_Down, and stays
// backup (issue 11's read before Master_Down, deep enough for a flood).
func TestMasterDownReadsPastAFlood(t *testing.T) {
	m, _ := newMetrics(prometheus.NewRegistry())
	r := newRig(t, authSettingsFor(t, 100, "10.0.0.2", authKeys(1)), nil, m)
	qc := &queuedConn{fakeConn: r.conn}
	r.in.opened(addrMid, qc)
	r.in.start()
	key := NewAuthKey(1, mustHexKey(testKey1))
	heard := func() Packet {
		return Packet{Src: addrHigh, Dst: GroupV4, TTL: 255, Payload: forge(51, 200, addrHigh, key, clockSeq(r.clock.Now()))}
	}
	r.in.handle(heard())
	r.clock.Advance(time.Second)
	qc.mu.Lock()
	for range 500 {
		qc.queued = append(qc.queued, Packet{Src: addrLow, Dst: GroupV4, TTL: 255, Payload: forge(51, 254, addrLow, nil, 0)})
	}
	qc.queued = append(qc.queued, heard())
	qc.mu.Unlock()
	r.clock.Advance(masterDown(100, time.Second) - time.Second)
	if r.state() != StateBackup || drops(m, ReasonMissing) != 500 {
		t.Errorf("%v at Master_Down with the master's advert behind 500 forgeries (%v counted)", r.state(), drops(m, ReasonMissing))
	}
}

// TestAuthDropLogsRateLimited: a flood of forgeries is counted one by
// one but logged once per reason every 10 s, saying how many went
// unlogged in between.
func TestAuthDropLogsRateLimited(t *testing.T) {
	m, _ := newMetrics(prometheus.NewRegistry())
	r := newRig(t, authSettingsFor(t, 100, "10.0.0.2", authKeys(1)), nil, m)
	var logs syncLog
	r.in.log = slog.New(slog.NewTextHandler(&logs, nil))
	r.in.start()
	wrong := NewAuthKey(1, bytes.Repeat([]byte{9}, 32))
	flood := func(n int) {
		for i := range n {
			var key *AuthKey
			if i%2 == 1 {
				key = wrong
			}
			r.in.handle(Packet{Src: addrLow, Dst: GroupV4, TTL: 255, Payload: forge(51, 254, addrLow, key, clockSeq(r.clock.Now()))})
		}
	}
	flood(1000)
	r.clock.Advance(9 * time.Second)
	flood(1000)
	if n := strings.Count(logs.String(), "failed authentication"); n != 2 || drops(m, ReasonMissing) != 1000 || drops(m, ReasonBadHMAC) != 1000 {
		t.Fatalf("%d log lines for 2 reasons in 9 s, drops missing %v bad_hmac %v:\n%s", n, drops(m, ReasonMissing), drops(m, ReasonBadHMAC), logs.String())
	}
	r.clock.Advance(2 * time.Second)
	flood(2)
	if !strings.Contains(logs.String(), "reason=missing src=10.0.0.1 key_id=0 dropped_unlogged=999") ||
		!strings.Contains(logs.String(), "reason=bad_hmac src=10.0.0.1 key_id=1 dropped_unlogged=999") {
		t.Errorf("after 10 s, no line with the count of unlogged drops:\n%s", logs.String())
	}
}
