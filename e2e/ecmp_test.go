package e2e

// Active-active directors announced over BGP (see ecmp_lab_test.go for the
// lab): three directors carry one VIP behind a router doing ECMP, a client
// holds 200 long-lived connections and opens new ones all along, and the
// events of a site's bad day happen one after another:
//
//   - a real server dies: every director evicts it (weight 0, in place) and
//     new connections never reach it afterwards; only its own connections
//     are lost;
//   - lvsd alone dies on a director (SIGKILL; BIRD and the link stay up):
//     the VIP goes with lvsd's device, at once, and comes back with lvsd;
//   - a director dies without a word (unplugged, lvsd and BIRD SIGKILLed):
//     BFD takes it out of the router's route, and the connections it
//     carried continue through the others, on the same real servers;
//   - a fresh director joins: connections the router moves to it continue
//     (sloppy_tcp lets it take them mid-stream, mh picks the same server);
//   - one director loses quorum (its probes are blocked): it alone
//     withdraws, the others keep the VIP, no connection is lost.
//
// The dead real server stays dead through the director events, and the
// joining director starts while it is dead: an announced service keeps
// every server in the mh table (created at its weight, quiesced to 0;
// see director/announce.go), so every director hashes alike whatever it
// has seen. The counts are logged as a table; timings are logged beside their
// bounds, and only a withdrawal that took the hold timer instead of BFD
// (30 s against 3 s) fails.

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/lvsd/lvsd/anycast"
	"github.com/lvsd/lvsd/e2e/lab"
	"github.com/lvsd/lvsd/internal/status"
)

func TestECMPActiveActive(t *testing.T) {
	const held = 200
	l := newECMPLab(t)
	d1, d2, d3, d4 := l.dirs[0], l.dirs[1], l.dirs[2], l.dirs[3]
	for _, d := range []*ecmpDirector{d1, d2, d3} {
		l.startDirector(d)
	}
	l.waitNexthops(90*time.Second, "d1", "d2", "d3")

	// What an operator sees on d1: the VIP announced, the BGP session up,
	// exporting it.
	st := l.announceStatus(d1)
	if len(st.VIPs) != 1 || !st.VIPs[0].Announced || st.VIPs[0].Reason != "serving: echo" {
		t.Errorf("d1 status: vips %+v", st.VIPs)
	}
	if len(st.Sessions) != 1 || st.Sessions[0].BGPState != "Established" || !slices.Equal(st.Sessions[0].Exported, []string{ecmpVIP + "/32"}) {
		t.Errorf("d1 status: bgp %+v (error %q)", st.Sessions, st.BIRDError)
	}

	route := l.watchRoute()
	conns := l.openHeld(held)
	s := l.startStream(100 * time.Millisecond)
	type row struct {
		event          string
		alive, of      int
		moved, kept    int // held connections that changed director / kept their real server
		windowFrom, to time.Time
	}
	var rows []row

	// 1. Every director carries traffic; each held connection is on
	// exactly one of them. realServer is where each connection is served.
	realServer := map[int]string{}
	on := map[int]string{}
	for _, d := range []*ecmpDirector{d1, d2, d3} {
		n := 0
		for port, c := range l.conns(d) {
			if slices.Contains(conns.ports, port) {
				n++
				realServer[port], on[port] = c.realServer, d.name
			}
		}
		t.Logf("%s carries %d of %d held connections", d.name, n, held)
		if n == 0 {
			t.Errorf("%s carries no connection: the router does not spread over it", d.name)
		}
	}
	if len(realServer) != held {
		t.Fatalf("%d of %d held connections found in the directors' tables", len(realServer), held)
	}
	perRS := map[string]int{}
	for _, rs := range realServer {
		perRS[rs]++
	}
	t.Logf("held connections per real server: %v", perRS)

	// moves compares where the held connections are now with where they
	// were: how many changed director, and whether each kept its real
	// server. It updates on. Call it right after an exchange: a connection
	// that moved leaves a stale entry on its old director, and the live
	// entry is the one the exchange just refreshed (the most time left).
	moves := func(dirs ...*ecmpDirector) (moved, kept int) {
		t.Helper()
		now := map[int]ipvsConn{}
		where := map[int]string{}
		for _, d := range dirs {
			for port, c := range l.conns(d) {
				if old, ok := now[port]; !ok || c.expires > old.expires {
					now[port], where[port] = c, d.name
				}
			}
		}
		for i, port := range conns.ports {
			if !conns.alive[i] {
				continue
			}
			c, ok := now[port]
			if !ok {
				t.Errorf("held connection %d (port %d) is in no director's table", i, port)
				continue
			}
			if where[port] != on[port] {
				moved++
				if c.realServer == realServer[port] {
					kept++
				} else {
					t.Errorf("connection %d moved %s -> %s and changed real server %s -> %s", i, on[port], where[port], realServer[port], c.realServer)
				}
				on[port] = where[port]
			}
		}
		return moved, kept
	}

	// 2. A real server dies: every director evicts it, in place.
	r3 := "10.40.0.23"
	onR3 := 0
	for i, port := range conns.ports {
		if conns.alive[i] && realServer[port] == r3 {
			onR3++
		}
	}
	from := time.Now()
	l.rsProc[2].Kill()
	bound := ecmpCheckFall*ecmpCheckInterval + ecmpCheckTimeout
	for _, d := range []*ecmpDirector{d1, d2, d3} {
		waitFor(t, 10*bound, d.name+" to evict "+r3, func() bool { return l.weights(d)[r3] == 0 })
		t.Logf("%s evicted %s (weight 0, kept in place) %v after the kill (bound fall × interval + timeout = %v)", d.name, r3, time.Since(from).Round(time.Millisecond), bound)
		if w := l.weights(d); len(w) != 3 {
			t.Errorf("%s: table %v, want all three servers (the dead one at weight 0)", d.name, w)
		}
	}
	evicted := time.Now()
	time.Sleep(3 * time.Second) // a window of new connections after the eviction, for the stream
	// No new connection reached r3 once every director had evicted it: no
	// IPVS entry of an attempt started since then points to it (entries
	// outlive the short connections by minutes), and none was refused
	// (r3's host resets what reaches its dead port). Timeouts are the
	// emulated CPU's, not a route to r3.
	tables := map[string]map[int]ipvsConn{}
	for _, d := range []*ecmpDirector{d1, d2, d3} {
		tables[d.name] = l.conns(d)
	}
	n, failed := s.failures(evicted, time.Now())
	reached, found := 0, 0
	for _, a := range s.since(evicted) {
		for name, tab := range tables {
			if c, ok := tab[a.port]; ok {
				found++
				if c.realServer == r3 {
					reached++
					t.Errorf("new connection from port %d, started %v after the eviction, went to %s through %s", a.port, a.start.Sub(evicted).Round(time.Millisecond), r3, name)
				}
			}
		}
	}
	for _, a := range failed {
		if strings.Contains(a.err.Error(), "refused") || strings.Contains(a.err.Error(), "reset") {
			t.Errorf("new connection from port %d, started %v after the eviction: %v", a.port, a.start.Sub(evicted).Round(time.Millisecond), a.err)
		}
	}
	t.Logf("after the eviction: %d new connections, %d found in the directors' tables, %d on %s, %d failed", n, found, reached, r3, len(failed))
	alive, lost := conns.exchange("after-rs-kill", 15*time.Second)
	rows = append(rows, row{"real server r3 killed", alive, held, 0, 0, from, time.Now()})
	if len(lost) != onR3 {
		t.Errorf("real server killed: lost %d connections, want exactly the %d on it", len(lost), onR3)
	}
	for _, i := range lost {
		if realServer[conns.ports[i]] != r3 {
			t.Errorf("connection %d on %s lost when %s died", i, realServer[conns.ports[i]], r3)
		}
	}

	// 3. lvsd alone dies on d3 (SIGKILL): BIRD and the link stay up, so no
	// BFD and no hold timer helps; the VIP must go with lvsd's device.
	// Then lvsd comes back and announces again.
	from = time.Now()
	d3.lvsd.Kill()
	l.waitNexthops(30*time.Second, "d1", "d2")
	t.Logf("lvsd on d3 SIGKILLed: its BIRD withdrew the VIP %v later (the device went with lvsd)", time.Since(from).Round(time.Millisecond))
	d3.lvsd = d3.ns.Start(lab.Bin(t, "lvsd"), "run", "-config", l.path(d3.name+".toml"))
	l.waitNexthops(90*time.Second, "d1", "d2", "d3")
	before := alive
	alive, lost = conns.exchange("after-lvsd-crash", 15*time.Second)
	moved, kept := moves(d1, d2, d3)
	rows = append(rows, row{"lvsd on d3 SIGKILLed, restarted", alive, before, moved, kept, from, time.Now()})
	if len(lost) > 0 {
		t.Errorf("lvsd crash: lost %v", lost)
	}

	// 4. A director dies without a word.
	from = time.Now()
	l.unplug(d2)
	d2.lvsd.Kill()
	d2.bird.Kill()
	l.waitNexthops(2*ecmpHoldTime, "d1", "d3")
	took := time.Since(from)
	bfd := ecmpBFDInterval * ecmpBFDMult
	t.Logf("d2 dead: the router stopped sending it new flows after %v (BFD bound %v, hold time %v)", took.Round(time.Millisecond), bfd, ecmpHoldTime)
	if took >= ecmpHoldTime/2 {
		t.Errorf("d2 was withdrawn after %v: by the BGP hold timer, not by BFD", took)
	}
	wasOnD2 := 0
	for i, port := range conns.ports {
		if conns.alive[i] && on[port] == "d2" {
			wasOnD2++
		}
	}
	before = alive
	alive, lost = conns.exchange("after-kill", 15*time.Second)
	moved, kept = moves(d1, d3)
	rows = append(rows, row{"director d2 killed (unplugged)", alive, before, moved, kept, from, time.Now()})
	if len(lost) > 0 || moved < wasOnD2 {
		t.Errorf("director killed: lost %v; %d of the %d connections on d2 moved", lost, moved, wasOnD2)
	}

	// 5. A fresh director joins (empty IPVS table), while r3 is still
	// dead: its table must still match the others'.
	from = time.Now()
	l.plug(d4)
	l.startDirector(d4)
	l.waitNexthops(90*time.Second, "d1", "d3", "d4")
	before = alive
	alive, lost = conns.exchange("after-join", 15*time.Second)
	moved, kept = moves(d1, d3, d4)
	rows = append(rows, row{"director d4 joins", alive, before, moved, kept, from, time.Now()})
	if len(lost) > 0 {
		t.Errorf("director joined: lost %v", lost)
	}
	if moved == 0 {
		t.Errorf("no connection moved to d4: the join proves nothing")
	}

	// 6. d1 alone loses quorum: its probes are dropped, traffic is not
	// (probes come from d1's address, forwarded traffic from the client's).
	from = time.Now()
	d1.ns.Run("nft", "add table inet lvsd_e2e; add chain inet lvsd_e2e out { type filter hook output priority 0; }; "+
		"add rule inet lvsd_e2e out ip saddr "+d1.ip+" tcp dport 80 drop")
	l.waitNexthops(60*time.Second, "d3", "d4")
	if v := l.announceStatus(d1).VIPs; len(v) != 1 || v[0].Announced || !strings.Contains(v[0].Reason, "below quorum") {
		t.Errorf("d1 without quorum: %+v", v)
	}
	for _, d := range []*ecmpDirector{d3, d4} {
		if v := l.announceStatus(d).VIPs; len(v) != 1 || !v[0].Announced {
			t.Errorf("%s while d1 lost quorum: %+v", d.name, v)
		}
	}
	before = alive
	alive, lost = conns.exchange("after-quorum-loss", 15*time.Second)
	moved, kept = moves(d1, d3, d4)
	rows = append(rows, row{"d1 loses quorum (alone)", alive, before, moved, kept, from, time.Now()})
	if len(lost) > 0 {
		t.Errorf("quorum lost on d1: lost %v", lost)
	}
	d1.ns.Run("nft", "delete table inet lvsd_e2e")
	l.waitNexthops(60*time.Second, "d1", "d3", "d4")
	if _, lost = conns.exchange("after-quorum-back", 15*time.Second); len(lost) > 0 {
		t.Errorf("d1 back: lost %v", lost)
	}
	moves(d1, d3, d4)

	s.close()
	var b strings.Builder
	fmt.Fprintf(&b, "\n%-32s %-14s %-16s %s\n", "event", "held survived", "moved (kept rs)", "new connections failed/started")
	for _, r := range rows {
		n, failed := s.failures(r.windowFrom, r.to)
		fmt.Fprintf(&b, "%-32s %3d/%-10d %3d (%3d)        %d/%d\n", r.event, r.alive, r.of, r.moved, r.kept, len(failed), n)
		for _, c := range route() {
			if !c.at.Before(r.windowFrom) && c.at.Before(r.to) {
				fmt.Fprintf(&b, "    +%v: router next hops %v\n", c.at.Sub(r.windowFrom).Round(10*time.Millisecond), c.nexthops)
			}
		}
		for _, a := range failed {
			fmt.Fprintf(&b, "    +%v: %v\n", a.start.Sub(r.windowFrom).Round(10*time.Millisecond), a.err)
		}
	}
	t.Log(b.String())
	if os.Getenv("E2E_ECMP_ROUTER_LOG") != "" {
		t.Logf("router's BIRD:\n%s", l.rtBird.Output())
	}
}

// announceStatus is the announce part of `lvsd status -json` on d.
func (l *ecmpLab) announceStatus(d *ecmpDirector) anycast.Status {
	l.t.Helper()
	out, err := exec.Command(lab.Bin(l.t, "lvsd"), "status", "-json", "-socket", l.path(d.name+".sock")).Output()
	if err != nil {
		l.t.Fatalf("lvsd status on %s: %v", d.name, err)
	}
	var st status.Report
	if err := json.Unmarshal(out, &st); err != nil || st.Announce == nil {
		l.t.Fatalf("lvsd status on %s: %v\n%s", d.name, err, out)
	}
	return *st.Announce
}
