package e2e

import (
	"bytes"
	"encoding/hex"
	"fmt"
	"net/netip"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/lvsd/lvsd/e2e/lab"
	"github.com/lvsd/lvsd/vrrp"
)

// attackLab is a signed lvsd pair (d1 master at 200, d2 backup at 100,
// enforce, keys 1 and 2, key 2 from a file and signing) with an attacker
// namespace on the same bridge. d1 also runs vi2 (VRID 52, same keys), whose
// adverts an attacker can capture and splice. With auth false there is no
// [vrrp.auth] and no vi2.
type attackLab struct {
	*vrrpLab
	p1, p2  *lab.Proc
	atk     *wire
	keyFile string
}

const atkAddr = "10.9.0.66"

func newAttackLab(t *testing.T, auth bool) *attackLab {
	t.Helper()
	l := &attackLab{vrrpLab: newVRRPLabNamed(t, "auth-")}
	atk := lab.NewNS(t, "auth-atk")
	atk.Veth("eth0", l.sw, "pa")
	l.sw.Link("set", "pa", "master", "br0")
	atk.Addr("eth0", atkAddr+"/24")
	l.atk = openWire(t, atk, "eth0")
	l.keyFile = writeKeyFile(t, l.dir)
	v1 := lvsdVRRP{priority: 200, preempt: true}
	v2 := lvsdVRRP{priority: 100, preempt: true}
	if auth {
		// A replay 5 s later is then a replay, not stale.
		a := authCfg{window: "30s", active: 2, keys: []int{1, 2}}.lvsd(l.keyFile)
		v1.extra = a + `
[[vrrp]]
name = "vi2"
vrid = 52
priority = 200
advert_interval = "` + vrrpInterval().String() + `"
vips = ["10.9.0.20/24"]
` + a
		v2.extra = a
	}
	l.p1 = l.startLVSD(l.d1, v1)
	l.p2 = l.startLVSD(l.d2, v2)
	l.master(l.d1, l.d2, vrrpVIP, 2*takeoverWithin)
	return l
}

// forged is a priority-254 advert for VRID 51 from src, signed with key
// (nil: unsigned) and a sequence stamped now.
func forged(src netip.Addr, key *vrrp.AuthKey) []byte {
	ad := vrrp.Advert{VRID: 51, Priority: 254, Interval: vrrpInterval(), Addrs: []netip.Addr{netip.MustParseAddr(vrrpVIP)}}
	b, err := ad.Encode(src, vrrp.GroupV4, vrrp.ChecksumRFC5798)
	if err != nil {
		panic(err)
	}
	if key != nil {
		// The IPv4 checksum leaves the trailer out, so it stays valid.
		b = append(b, make([]byte, vrrp.TrailerLen)...)
		now := time.Now()
		vrrp.SignAdvert(b, src, key, uint64(now.Unix())<<32|uint64(now.Nanosecond()>>14)<<16)
	}
	return b
}

// drops reads the auth drop counters of vi1 in ns.
func (l *attackLab) drops(ns *lab.NS) map[string]uint64 {
	l.t.Helper()
	_, a, _ := l.authStatus(ns, "vi1")
	if a == nil {
		l.t.Fatalf("no auth status in %s", ns.Name)
	}
	return a.Drops
}

func hexKey(s string) []byte {
	b, err := hex.DecodeString(s)
	if err != nil {
		panic(err)
	}
	return b
}

// TestVRRPAuthAttacks: from a third namespace on the segment, an attacker
// sends what it can forge or capture; every advert is dropped before the
// state machine and counted under its reason, and the master stays master
// with no transition on either node. Then a flood of 10,000 forged adverts
// a second for 10 s: no transition, every one counted (or dropped by the
// kernel for a full socket buffer, which /proc/net/raw counts), and the
// lateness of the master's adverts through it is logged. No key shows in
// any log or status.
func TestVRRPAuthAttacks(t *testing.T) {
	l := newAttackLab(t, true)
	changes1, changes2 := stateChanges(l.p1), stateChanges(l.p2)
	atk := netip.MustParseAddr(atkAddr)
	master := netip.MustParseAddr("10.9.0.1")

	l.atk.drain() // adverts from before the lab settled: not what "5 s later" means
	captured := l.atk.mustNext(scaled(2*time.Second), "d1's VRID 51 advert", advertOf(51, "10.9.0.1"))
	other := l.atk.mustNext(scaled(2*time.Second), "d1's VRID 52 advert", advertOf(52, "10.9.0.1"))
	if len(captured.payload) != 12+vrrp.TrailerLen || len(other.payload) != 12+vrrp.TrailerLen {
		t.Fatalf("the pair does not sign: %v, %v", captured, other)
	}
	// A valid trailer spliced onto an advert of another VRID: VRID 52's
	// message rewritten as VRID 51 at priority 254, trailer kept.
	ad, _, err := vrrp.Decode(other.payload, master, vrrp.GroupV4)
	if err != nil {
		t.Fatal(err)
	}
	ad.VRID, ad.Priority, ad.Addrs = 51, 254, []netip.Addr{netip.MustParseAddr(vrrpVIP)}
	spliced, err := ad.Encode(master, vrrp.GroupV4, vrrp.ChecksumRFC5798)
	if err != nil {
		t.Fatal(err)
	}
	spliced = append(spliced, other.payload[12:]...)

	wrongKey := vrrp.NewAuthKey(2, bytes.Repeat([]byte("wrong key "), 4))
	unknownKey := vrrp.NewAuthKey(9, hexKey(labKey1))
	for _, a := range []struct {
		name, reason string
		src          netip.Addr
		payload      func() []byte
		d1           bool // d1 counts it too (not its own address)
	}{
		{"priority 254 without a trailer", vrrp.ReasonMissing, atk, func() []byte { return forged(atk, nil) }, true},
		{"priority 254 signed with a wrong key", vrrp.ReasonBadHMAC, atk, func() []byte { return forged(atk, wrongKey) }, true},
		{"priority 254 with an unknown key id", vrrp.ReasonUnknownKey, atk, func() []byte { return forged(atk, unknownKey) }, true},
		{"the master's advert replayed 5 s later", vrrp.ReasonReplay, master, func() []byte {
			time.Sleep(5*time.Second - time.Since(captured.at))
			return captured.payload
		}, false},
		{"a valid trailer spliced onto an advert of another VRID", vrrp.ReasonBadHMAC, master, func() []byte { return spliced }, false},
	} {
		before1, before2 := l.drops(l.d1), l.drops(l.d2)
		if err := l.atk.sendVRRP(a.src, a.payload()); err != nil {
			t.Fatal(err)
		}
		waitFor(t, scaled(2*time.Second), a.name+" counted", func() bool { return l.drops(l.d2)[a.reason] == before2[a.reason]+1 })
		if a.d1 {
			waitFor(t, scaled(2*time.Second), a.name+" counted by the master", func() bool { return l.drops(l.d1)[a.reason] == before1[a.reason]+1 })
		}
		l.stillMaster(l.d1, l.d2, vrrpVIP, 500*time.Millisecond)
		t.Logf("%s: dropped as %s", a.name, a.reason)
	}
	if n1, n2 := stateChanges(l.p1), stateChanges(l.p2); n1 != changes1 || n2 != changes2 {
		t.Fatalf("the attacks made transitions: d1 %d, d2 %d", n1-changes1, n2-changes2)
	}

	l.flood(t, master)
	if n1, n2 := stateChanges(l.p1), stateChanges(l.p2); n1 != changes1 || n2 != changes2 {
		t.Fatalf("the flood made transitions: d1 %d, d2 %d", n1-changes1, n2-changes2)
	}
	l.master(l.d1, l.d2, vrrpVIP, takeoverWithin)

	// No key in any log or status document.
	_, _, st1 := l.authStatus(l.d1, "vi1")
	_, _, st2 := l.authStatus(l.d2, "vi1")
	for name, text := range map[string]string{"d1 log": l.p1.Output(), "d2 log": l.p2.Output(), "d1 status": st1, "d2 status": st2} {
		for _, k := range []string{labKey1, labKey2, hex.EncodeToString([]byte(labKey2))} {
			if strings.Contains(text, k) {
				t.Errorf("the %s shows a key", name)
			}
		}
	}
}

// floodRate is the flood's packets a second: 10,000 on the host; the e2e
// VM's emulated CPU runs a 5× slower protocol, and gets a 5× thinner flood.
func floodRate() int { return int(10000 * (100 * time.Millisecond) / vrrpInterval()) }

// flood sends 10,000 forged adverts a second for 10 s, half unsigned and
// half signed with a wrong key (each costs the receivers a digest), from
// spoofed sources, and checks that both nodes count every one that reached
// their socket, while it records the gaps between the master's adverts.
func (l *attackLab) flood(t *testing.T, master netip.Addr) {
	const seconds = 10
	rate := floodRate()
	wrongKey := vrrp.NewAuthKey(2, bytes.Repeat([]byte("wrong key "), 4))
	var packets [][]byte
	var srcs []netip.Addr
	for i := range 200 {
		src := netip.AddrFrom4([4]byte{10, 9, 0, byte(100 + i%100)})
		key := wrongKey
		if i%2 == 0 {
			key = nil
		}
		packets, srcs = append(packets, forged(src, key)), append(srcs, src)
	}
	before1, before2 := l.drops(l.d1), l.drops(l.d2)
	kernel2, softnet := rawDrops(t, l.d2), softnetDrops(t)

	// The master's adverts, timestamped by the attacker's kernel.
	l.atk.drain()
	var mu sync.Mutex
	var adverts []time.Time
	stop := make(chan struct{})
	captured := make(chan struct{})
	go func() {
		defer close(captured)
		for {
			select {
			case <-stop:
				return
			default:
			}
			if s, ok := l.atk.next(200*time.Millisecond, advertOf(51, "10.9.0.1")); ok {
				mu.Lock()
				adverts = append(adverts, s.at)
				mu.Unlock()
			}
		}
	}()
	time.Sleep(scaled(time.Second)) // a baseline before the flood
	sent, failed := 0, 0
	start := time.Now()
	perTick := rate / 1000
	for tick := time.NewTicker(time.Millisecond); time.Since(start) < seconds*time.Second; <-tick.C {
		// Catch up on ticks the scheduler missed, so the rate holds.
		due := int(time.Since(start)/time.Millisecond) * perTick
		for ; sent+failed < due; sent++ {
			i := (sent + failed) % len(packets)
			if err := l.atk.sendVRRP(srcs[i], packets[i]); err != nil {
				failed++
				sent--
			}
		}
	}
	floodEnd := time.Now()
	time.Sleep(scaled(time.Second))
	close(stop)
	<-captured
	took := floodEnd.Sub(start)
	t.Logf("flood: %d forged adverts in %v (%.0f/s), %d sends failed", sent, took.Round(time.Millisecond), float64(sent)/took.Seconds(), failed)

	counted := func(d map[string]uint64, before map[string]uint64) uint64 {
		return d[vrrp.ReasonMissing] - before[vrrp.ReasonMissing] + d[vrrp.ReasonBadHMAC] - before[vrrp.ReasonBadHMAC]
	}
	// Every forgery that reached the backup's socket is counted; the
	// kernel may have dropped some before (a full socket buffer, counted
	// in /proc/net/raw; a full backlog under CPU starvation, counted in
	// /proc/net/softnet_stat, which is not per namespace).
	var c2, k2, s2 uint64
	deadline := time.Now().Add(scaled(5 * time.Second))
	for {
		c2, k2, s2 = counted(l.drops(l.d2), before2), rawDrops(t, l.d2)-kernel2, softnetDrops(t)-softnet
		if c2+k2+s2 >= uint64(sent) || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	c1 := counted(l.drops(l.d1), before1)
	d2 := l.drops(l.d2)
	t.Logf("flood: backup counted %d (%d missing, %d bad_hmac); the kernel dropped %d packets for its full socket buffer (forged or not), %d for full backlogs (any namespace); master counted %d",
		c2, d2[vrrp.ReasonMissing]-before2[vrrp.ReasonMissing], d2[vrrp.ReasonBadHMAC]-before2[vrrp.ReasonBadHMAC], k2, s2, c1)
	if c2 > uint64(sent) || c2+k2+s2 < uint64(sent) {
		t.Errorf("backup: %d counted, %d + %d dropped by the kernel: not the %d sent", c2, k2, s2, sent)
	}
	if c2 < uint64(sent)*9/10 || c1 < uint64(sent)*9/10 {
		t.Errorf("less than 90%% of the flood counted: backup %d, master %d of %d", c2, c1, sent)
	}
	for _, r := range []string{vrrp.ReasonMalformed, vrrp.ReasonUnknownKey, vrrp.ReasonStale, vrrp.ReasonReplay} {
		if d2[r] != before2[r] {
			t.Errorf("the flood was counted as %s too", r)
		}
	}

	// How late the master's adverts were: gaps beyond the interval, before
	// and through the flood.
	mu.Lock()
	defer mu.Unlock()
	var base, during []time.Duration
	for i := 1; i < len(adverts); i++ {
		gap := adverts[i].Sub(adverts[i-1])
		switch {
		case adverts[i].Before(start):
			base = append(base, gap)
		case adverts[i-1].After(start) && adverts[i].Before(floodEnd):
			during = append(during, gap)
		}
	}
	if len(during) < int(took/vrrpInterval())/2 {
		t.Errorf("only %d adverts of the master seen during %v of flood", len(during), took)
	}
	t.Logf("master's advert gaps (interval %v): before the flood %s; during it %s", vrrpInterval(), gapSummary(base), gapSummary(during))
}

func gapSummary(gaps []time.Duration) string {
	if len(gaps) == 0 {
		return "none seen"
	}
	s := slices.Clone(gaps)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	p := func(q int) time.Duration { return s[min(len(s)-1, (q*len(s)+99)/100-1)] }
	return fmt.Sprintf("n=%d p50 %v p99 %v max %v", len(s), p(50).Round(10*time.Microsecond), p(99).Round(10*time.Microsecond), s[len(s)-1].Round(10*time.Microsecond))
}

// rawDrops sums the drops column of ns's raw sockets of protocol 112
// (/proc/net/raw): packets the kernel discarded because a socket's
// receive buffer was full.
func rawDrops(t *testing.T, ns *lab.NS) uint64 {
	t.Helper()
	out := ns.Run("cat", "/proc/net/raw")
	var sum uint64
	for _, line := range strings.Split(out, "\n")[1:] {
		f := strings.Fields(line)
		if len(f) < 13 || !strings.HasSuffix(f[1], ":0070") {
			continue
		}
		n, err := strconv.ParseUint(f[len(f)-1], 10, 64)
		if err != nil {
			t.Fatalf("/proc/net/raw: %q", line)
		}
		sum += n
	}
	return sum
}

// softnetDrops sums the dropped column of /proc/net/softnet_stat: packets
// the kernel discarded because a CPU's input backlog was full.
func softnetDrops(t *testing.T) uint64 {
	t.Helper()
	data, err := os.ReadFile("/proc/net/softnet_stat")
	if err != nil {
		t.Fatal(err)
	}
	var sum uint64
	for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		n, err := strconv.ParseUint(f[1], 16, 64)
		if err != nil {
			t.Fatalf("/proc/net/softnet_stat: %q", line)
		}
		sum += n
	}
	return sum
}

// TestVRRPForgeryWithoutAuth: the attack is real. Without [vrrp.auth] the
// same forged advert (priority 254, no trailer, from the attacker's
// namespace) takes the VIP away from the master.
func TestVRRPForgeryWithoutAuth(t *testing.T) {
	l := newAttackLab(t, false)
	changes := stateChanges(l.p1)
	atk := netip.MustParseAddr(atkAddr)
	stop := make(chan struct{})
	sent := make(chan error, 1)
	go func() { // an attacker advertising priority 254 at twice the pair's rate
		tick := time.NewTicker(vrrpInterval() / 2)
		defer tick.Stop()
		for {
			if err := l.atk.sendVRRP(atk, forged(atk, nil)); err != nil {
				sent <- err
				return
			}
			select {
			case <-stop:
				sent <- nil
				return
			case <-tick.C:
			}
		}
	}()
	waitFor(t, scaled(3*time.Second), "the master to lose its VIP to forged adverts", func() bool { return !holdsVIP(l.d1, vrrpVIP) })
	close(stop)
	if err := <-sent; err != nil {
		t.Fatal(err)
	}
	if stateChanges(l.p1) == changes || !strings.Contains(l.p1.Output(), "higher priority master "+atkAddr+" (254)") {
		t.Error("d1 dropped the VIP without stepping down for the forged master")
	}
	t.Logf("without auth, forged adverts made the master resign:\n%s", lastLines(l.p1.Output(), "state change", 2))
}

func lastLines(out, substr string, n int) string {
	var hits []string
	for _, line := range strings.Split(out, "\n") {
		if strings.Contains(line, substr) {
			hits = append(hits, line)
		}
	}
	return strings.Join(hits[max(0, len(hits)-n):], "\n")
}

// TestVRRPAuthRolloutByReload: a running lvsd pair moves from no
// authentication to enforce in the three steps (receive-only, permissive,
// enforce), one node at a time by SIGHUP, then rotates its key (add key 2,
// sign with it, remove key 1): no transition on either node and not one
// advert dropped. Then the roles swap (takeover, giveup) on the new key.
func TestVRRPAuthRolloutByReload(t *testing.T) {
	l := newVRRPLabNamed(t, "auth-")
	keyFile := writeKeyFile(t, l.dir)
	nodes := []struct {
		ns *lab.NS
		v  lvsdVRRP
		p  *lab.Proc
	}{{ns: l.d1, v: lvsdVRRP{priority: 200, preempt: true}}, {ns: l.d2, v: lvsdVRRP{priority: 100, preempt: true}}}
	for i := range nodes {
		nodes[i].p = l.startLVSD(nodes[i].ns, nodes[i].v)
	}
	l.master(l.d1, l.d2, vrrpVIP, 2*takeoverWithin)
	before := []int{stateChanges(nodes[0].p), stateChanges(nodes[1].p)}
	for _, step := range []authCfg{
		{mode: "receive-only", keys: []int{1}},
		{mode: "permissive", keys: []int{1}},
		{mode: "enforce", keys: []int{1}},
		{active: 1, keys: []int{1, 2}},
		{active: 2, keys: []int{1, 2}},
		{keys: []int{2}},
	} {
		for _, n := range nodes {
			v := n.v
			v.extra = step.lvsd(keyFile)
			if err := os.WriteFile(l.configPath(n.ns), []byte(v.config(l.socket(n.ns))), 0o644); err != nil {
				t.Fatal(err)
			}
			n.p.Signal(syscall.SIGHUP)
			mode, active := step.mode, step.active
			if mode == "" {
				mode = "enforce"
			}
			if active == 0 && mode != "receive-only" {
				active = step.keys[0]
			}
			what := fmt.Sprintf("%s reloaded to %s key %d of %v", n.ns.Name, mode, active, step.keys)
			waitFor(t, scaled(3*time.Second), what, func() bool {
				_, a, _ := l.authStatus(n.ns, "vi1")
				return a != nil && a.Mode == mode && a.ActiveKey == active && slices.Equal(a.KeyIDs, step.keys)
			})
			l.stillMaster(l.d1, l.d2, vrrpVIP, 600*time.Millisecond)
			t.Logf("%s: d1 %s, d2 %s", what, l.authLine(l.d1), l.authLine(l.d2))
		}
	}
	for i, n := range nodes {
		if c := stateChanges(n.p); c != before[i] {
			t.Errorf("%s made %d transitions during the rollout", n.ns.Name, c-before[i])
		}
	}
	// Roles swap on the new key: d1 must now verify d2's adverts.
	l.ctl(l.d2, "takeover", "vi1")
	l.master(l.d2, l.d1, vrrpVIP, takeoverWithin)
	l.ctl(l.d2, "giveup", "vi1")
	l.master(l.d1, l.d2, vrrpVIP, takeoverWithin)
	l.verifiedNoDrops(l.d1)
	l.verifiedNoDrops(l.d2)
}

func (l *vrrpLab) authLine(ns *lab.NS) string {
	_, a, _ := l.authStatus(ns, "vi1")
	if a == nil {
		return "no auth"
	}
	return fmt.Sprintf("verified %d, unsigned %d, drops %v", a.Verified, a.Unsigned, a.Drops)
}
