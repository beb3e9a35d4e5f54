package main

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/lvsd/lvsd/config"
)

const (
	// burstTimeout bounds one HTTP request of a burst: long, because a slow
	// answer is not a failure (the client's TCP retries a lost SYN after 1s,
	// and an emulated CPU can be slow); streamTimeout bounds one query of a
	// stream, short, because the stream measures how long answers stopped.
	burstTimeout  = 10 * time.Second
	streamTimeout = 500 * time.Millisecond
	// streamEvery is how often a stream sends a query.
	streamEvery = 20 * time.Millisecond
	// startLimit bounds how long lvsd may take to start: under the VM's
	// emulated CPU its first start (the binary read over 9p) takes seconds.
	startLimit = 30 * time.Second
	// slack is added to every bound computed from the config: the VM's
	// emulated CPU runs two directors, five servers and this driver on two
	// cores, and timers fire late.
	slack = 2 * time.Second
)

// tour runs the steps in order and reports whether all of them behaved.
// A step that cannot go on returns false at once; the rest record failures
// and let the tour continue, so one run shows as much as it can.
func tour(l *lab) bool {
	n := l.n
	a, b := l.dirs[0], l.dirs[1]
	n.say("THE LAB: one Ethernet segment %s (a bridge); every machine below is a network namespace", segment)
	n.say("  client  %s", clientAddr)
	for _, d := range l.dirs {
		n.say("  %-7s %s  lvsd run -config %s (VRRP priority %d, adverts every %v)", d.name, d.addr, d.cfgPath, d.vrrp().Priority, d.vrrp().AdvertInterval.Duration)
	}
	for _, rs := range l.web {
		n.say("  %-7s %s  web server (bin/testserver), answers with its name", rs.name, rs.addr)
	}
	n.say("  %-7s %s  DNS server (dnsmasq)", l.dns.name, l.dns.addr)
	n.say("  VIP %s: held by the VRRP master; direct routing, so each real server also has it on lo and replies to the client itself", l.vip)
	if err := l.build(); err != nil {
		n.fail("building the lab: %v", err)
		return false
	}
	n.say("lab is up: namespaces, cables, real servers answering on their own addresses")
	if late := timerLateness(time.Second); late > 50*time.Millisecond {
		n.say("note: this CPU is slow or shared: a 10 ms timer fired up to %v late in the last second. Timings below include that; a stall over 3 adverts (~0.35 s) makes the backup take over for a moment", late.Round(time.Millisecond))
	}
	tStart := time.Now()
	l.journal.onNew = func(e event) { printEvent(n, e) }

	m := &measurements{}
	if !elect(l, m) {
		return false
	}
	spread(l, m)
	victim := l.web[1]
	if evict(l, m, victim) {
		restore(l, m, victim)
	}
	if crash(l, m) {
		comeBack(l, m)
	}
	n.say("STEP 7  lvsd status on the active director")
	active := a
	if st, err := a.ctl.status(); err != nil || st.vrrpState(a.vrrp().Name) != "master" {
		n.fail("%s is not master at the end", a.name)
		active = b
	}
	out, err := l.lvsdCommand(active, "status")
	if err != nil {
		n.fail("%v", err)
	}
	n.say("$ lvsd status -socket %s\n%s", active.cfg.Director.ControlSocket, indent(strings.TrimRight(out, "\n")))
	m.flaps = countFlaps(l, tStart, m)
	m.print(n)
	return len(n.failures()) == 0
}

// countFlaps counts the times the backup became master while the master
// was alive: outside the crash, that only happens when adverts are late.
func countFlaps(l *lab, since time.Time, m *measurements) int {
	b := l.dirs[1]
	flaps := 0
	l.journal.mu.Lock()
	defer l.journal.mu.Unlock()
	for _, e := range l.journal.events {
		if e.Time.Before(since) || !e.isVRRP() || e.Director != b.name || e.To != "master" {
			continue
		}
		if !m.crashAt.IsZero() && !e.Time.Before(m.crashAt) && e.Time.Before(m.crashAt.Add(5*time.Second)) {
			continue // the takeover the demo caused
		}
		flaps++
	}
	return flaps
}

// timerLateness sleeps 10 ms at a time for d and returns the worst lateness.
func timerLateness(d time.Duration) time.Duration {
	var worst time.Duration
	end := time.Now().Add(d)
	for time.Now().Before(end) {
		t := time.Now()
		time.Sleep(10 * time.Millisecond)
		worst = max(worst, time.Since(t)-10*time.Millisecond)
	}
	return worst
}

func printEvent(n *narrator, e event) {
	switch {
	case e.isVRRP():
		n.sayAt(e.Time, "    %s says: vrrp %s %s -> %s (%s)", e.Director, e.Instance, strings.ToUpper(e.From), strings.ToUpper(e.To), e.Reason)
	case e.isHealth():
		verdict := "UP"
		if !e.Healthy {
			verdict = "DOWN"
		}
		n.sayAt(e.Time, "    %s says: %s %s is %s (%s)", e.Director, e.Service, e.RealServer, verdict, e.Reason)
	}
}

// elect starts both directors and waits for the preferred one to be master
// with every real server checked and in its IPVS table.
func elect(l *lab, m *measurements) bool {
	n, a, b := l.n, l.dirs[0], l.dirs[1]
	n.say("STEP 1  the pair elects a master")
	t0 := time.Now()
	for _, d := range l.dirs {
		if err := l.startLvsd(d); err != nil {
			n.fail("%v", err)
			return false
		}
	}
	n.say("started lvsd on %s and %s", a.name, b.name)
	// Normally the higher priority wins the first election; if lvs-b got
	// there first, lvs-a takes over after its preempt_delay.
	limit := a.vrrp().PreemptDelay.Duration + startLimit
	ev, ok := l.journal.wait(t0, limit, vrrpTo(a.name, "master"))
	if !ok {
		n.fail("%s did not become master within %v", a.name, limit)
		return false
	}
	m.election = ev.Time.Sub(t0)
	if _, _, ok := b.ctl.waitStatus(5*time.Second, func(st *status) bool { return st.vrrpState(b.vrrp().Name) == "backup" }); !ok {
		n.fail("%s is not backup while %s is master", b.name, a.name)
		return false
	}
	n.say("%s is MASTER %s after the start (priority %d beats %d); %s is BACKUP", a.name, secs(m.election), a.vrrp().Priority, b.vrrp().Priority, b.name)
	if !allUp(l, a, 20*time.Second) {
		return false
	}
	m.ready = time.Since(t0)
	if !calm(l, 2*time.Second, 20*time.Second) {
		return false
	}
	n.say("%s: all %d web servers and the DNS server passed their checks and are in the IPVS table, %s after the start", a.name, len(l.web), secs(m.ready))
	return true
}

// spread sends requests through the VIP and counts who answered.
func spread(l *lab, m *measurements) {
	n := l.n
	n.say("STEP 2  the client sends requests to the VIP")
	c := newClient(l.client, l.vip.String(), burstTimeout)
	count := 10 * len(l.web)
	t := c.burst(count)
	m.spread = fmt.Sprintf("%d requests: %s", count, t)
	n.say("%d HTTP requests to http://%s/, each on a new connection: %s; %d failed", count, l.vip, t, t.failed)
	if t.failed > 0 {
		n.fail("%d of %d requests failed (last: %v); the client's ARP entry for the VIP: %s", t.failed, count, t.lastErr, l.arpOfVIP())
	}
	for _, rs := range l.web {
		if t.byServer[rs.name] == 0 {
			n.fail("%s got none of the %d requests", rs.name, count)
		}
	}
	name, answer := dnsRecord(l.dirs[0].service(l.dns.service))
	vipDNS := fmt.Sprintf("%s:%d", l.vip, l.dns.addr.Port())
	answered := 0
	for range 3 {
		got, err := c.queryDNS(vipDNS, name, time.Second)
		if err != nil || len(got) == 0 || got[0] != answer {
			n.fail("DNS query %s A to %s: got %v, %v; want %s", name, vipDNS, got, err, answer)
			continue
		}
		answered++
	}
	n.say("3 DNS queries for %s A to %s (udp): %d answered %s (from %s behind the VIP)", name, vipDNS, answered, answer, l.dns.name)
}

// evict kills one web server and measures how fast the master stops
// sending it traffic.
func evict(l *lab, m *measurements, victim *realServer) bool {
	n, a, b := l.n, l.dirs[0], l.dirs[1]
	n.say("STEP 3  a web server dies and is evicted")
	check := checkOf(a, victim)
	expected := time.Duration(check.Fall)*check.Interval.Duration + check.Timeout.Duration
	bound := 2*expected + slack
	if !allUp(l, a, 15*time.Second) {
		return false
	}
	t0 := time.Now()
	victim.proc.kill()
	n.say("killed %s's web server (SIGKILL)", victim.name)
	ev, ok := l.journal.wait(t0, bound, healthOf(a.name, victim.key(), false))
	if !ok {
		n.fail("%s did not mark %s down within %v", a.name, victim.name, bound)
		return false
	}
	m.evictDown = ev.Time.Sub(t0)
	n.say("%s marked %s DOWN %s after the kill (at most fall %d × interval %v + timeout %v = %s expected)",
		a.name, victim.name, secs(m.evictDown), check.Fall, check.Interval.Duration, check.Timeout.Duration, secs(expected))
	if m.evictDown > bound {
		n.fail("eviction took %s, over the %s bound", secs(m.evictDown), secs(bound))
	}
	tOut, _, ok := a.ctl.waitStatus(bound, func(st *status) bool {
		_, _, kw, found := st.realServer(victim.service, victim.key())
		return found && kw < 0
	})
	if !ok {
		n.fail("%s is still in %s's IPVS table %v after the kill", victim.name, a.name, bound)
		return false
	}
	m.evictOut = tOut.Sub(t0)
	n.say("%s is out of %s's IPVS table %s after the kill (seen by polling its status)", victim.name, a.name, secs(m.evictOut))
	if ev, ok := l.journal.wait(t0, bound, healthOf(b.name, victim.key(), false)); ok {
		n.say("%s (backup) checks on its own and marked it DOWN too, %s after the kill", b.name, secs(ev.Time.Sub(t0)))
	}
	out, err := l.lvsdCommand(a, "status", "-json")
	if err != nil {
		n.fail("%v", err)
	} else {
		var st status
		if err := json.Unmarshal([]byte(out), &st); err != nil {
			n.fail("lvsd status -json: %v", err)
		} else {
			health, reason, kw, _ := st.realServer(victim.service, victim.key())
			n.say("$ lvsd status -json on %s: %s is %q, kernel_weight %d, reason: %s", a.name, victim.key(), health, kw, reason)
			if health != "down" || reason == "" {
				n.fail("lvsd status -json shows %s as %q with reason %q; want down with the failed check's reason", victim.key(), health, reason)
			}
		}
	}
	c := newClient(l.client, l.vip.String(), burstTimeout)
	t := c.burst(10 * len(l.web))
	n.say("%d HTTP requests: %s; %d failed", t.total(), t, t.failed)
	if t.failed > 0 || t.byServer[victim.name] > 0 {
		n.fail("after the eviction: %d failed (last: %v), %d answered by %s; want none of either; the client's ARP entry for the VIP: %s", t.failed, t.lastErr, t.byServer[victim.name], victim.name, l.arpOfVIP())
	}
	return true
}

// allUp waits until d has every real server up and in its IPVS table.
func allUp(l *lab, d *director, limit time.Duration) bool {
	all := append(append([]*realServer(nil), l.web...), l.dns)
	_, _, ok := d.ctl.waitStatus(limit, func(st *status) bool {
		for _, rs := range all {
			if health, _, kw, ok := st.realServer(rs.service, rs.key()); !ok || health != "up" || kw <= 0 {
				return false
			}
		}
		return true
	})
	if !ok {
		l.n.fail("%s: not every real server was up and in the IPVS table within %v", d.name, limit)
	}
	return ok
}

// restore starts the killed web server again.
func restore(l *lab, m *measurements, victim *realServer) {
	n, a := l.n, l.dirs[0]
	n.say("STEP 4  the web server comes back")
	check := checkOf(a, victim)
	expected := time.Duration(check.Rise)*check.Interval.Duration + check.Timeout.Duration
	bound := 2*expected + slack
	t0 := time.Now()
	if err := l.startServer(victim); err != nil {
		n.fail("restarting %s: %v", victim.name, err)
		return
	}
	n.say("restarted %s's web server", victim.name)
	ev, ok := l.journal.wait(t0, bound, healthOf(a.name, victim.key(), true))
	if !ok {
		n.fail("%s did not mark %s up within %v", a.name, victim.name, bound)
		return
	}
	m.restoreUp = ev.Time.Sub(t0)
	tIn, _, ok := a.ctl.waitStatus(bound, func(st *status) bool {
		health, _, kw, found := st.realServer(victim.service, victim.key())
		return found && health == "up" && kw > 0
	})
	if !ok {
		n.fail("%s is not back in %s's IPVS table %v after its restart", victim.name, a.name, bound)
		return
	}
	m.restoreIn = tIn.Sub(t0)
	n.say("%s marked %s UP %s after its restart (rise %d × interval %v), back in the IPVS table after %s",
		a.name, victim.name, secs(m.restoreUp), check.Rise, check.Interval.Duration, secs(m.restoreIn))
	c := newClient(l.client, l.vip.String(), burstTimeout)
	t := c.burst(10 * len(l.web))
	n.say("%d requests: %s; %d failed", t.total(), t, t.failed)
	if t.failed > 0 || t.byServer[victim.name] == 0 {
		n.fail("after the restore: %d failed (last: %v), %d answered by %s; want none failed and %s answering again; the client's ARP entry for the VIP: %s", t.failed, t.lastErr, t.byServer[victim.name], victim.name, victim.name, l.arpOfVIP())
	}
}

// crash kills the master the hard way and measures the takeover, from
// VRRP's view and from the client's.
func crash(l *lab, m *measurements) bool {
	n, a, b := l.n, l.dirs[0], l.dirs[1]
	n.say("STEP 5  the master crashes")
	adv := b.vrrp().AdvertInterval.Duration
	skew := time.Duration(256-b.vrrp().Priority) * adv / 256
	expected := 3*adv + skew
	if !calm(l, 2*time.Second, 20*time.Second) {
		return false
	}
	s, ok := startQueries(l)
	if !ok {
		return false
	}
	time.Sleep(time.Second)
	// The cable first: until it is out, the kernel of a machine whose lvsd
	// is dead still holds the VIP and forwards with its IPVS table.
	t0 := time.Now()
	m.crashAt = t0
	if err := a.host.unplug(l.lan); err != nil {
		n.fail("pulling %s's cable: %v", a.name, err)
	}
	a.lvsd.kill()
	n.sayAt(t0, "%s crashed: the machine dropped off the network (its cable is pulled) and lvsd got SIGKILL. (A killed lvsd alone would leave the VIP and the IPVS table in %s's kernel, still forwarding.)", a.name, a.name)
	bound := 5*expected + slack
	ev, ok := l.journal.wait(t0, bound, vrrpTo(b.name, "master"))
	if !ok {
		s.stop()
		n.fail("%s did not take over within %v", b.name, bound)
		return false
	}
	m.takeover = ev.Time.Sub(t0)
	m.takeoverExpected = expected
	// Master_Down_Interval runs from the last advert heard, which came up
	// to one interval before the crash.
	n.say("%s is MASTER %s after the crash (expected %s to %s: Master_Down_Interval 3 × %v + skew %v, counted from the last advert)",
		b.name, secs(m.takeover), secs(expected-adv), secs(expected), adv, skew.Round(100*time.Microsecond))
	time.Sleep(1500 * time.Millisecond)
	results := s.stop()
	o := analyse(results)
	m.takeoverGap, m.takeoverFailed = o.gap, o.failed
	switch {
	case o.failed == 0:
		n.say("client: all %d queries answered, no gap", o.total)
	case o.gap < 0:
		n.fail("client: %d of %d queries failed and the stream never recovered (last error: %v)", o.failed, o.total, o.lastErr)
	default:
		n.say("client: %d of %d queries failed, all sent between %s and %s; no query was answered for %s; every query after that was",
			o.failed, o.total, o.firstFail.Format("15:04:05.000"), o.lastFail.Format("15:04:05.000"), secs(o.gap))
	}
	// A query sent just before the crash may still be waiting for the answer
	// when the cable goes: the window opens one timeout (and a little) before.
	if bad := failedOutside(results, t0.Add(-streamTimeout-100*time.Millisecond), ev.Time.Add(time.Second)); len(bad) > 0 {
		n.fail("%d queries failed outside the failover window (first sent at %s: %v)", len(bad), bad[0].start.Format("15:04:05.000"), bad[0].err)
		n.say("the stream: %s", timeline(results))
		n.say("the client's ARP entry for the VIP: %s", l.arpOfVIP())
	}
	c := newClient(l.client, l.vip.String(), burstTimeout)
	t := c.burst(10 * len(l.web))
	n.say("%d HTTP requests through %s: %s; %d failed", t.total(), b.name, t, t.failed)
	if t.failed > 0 {
		n.fail("after the takeover %d of %d HTTP requests failed (last: %v)", t.failed, t.total(), t.lastErr)
	}
	return true
}

// calm waits until the first director is master, the second backup, and
// neither has changed state for quiet: a measurement must start from a
// settled pair, not from the tail of an earlier transition.
func calm(l *lab, quiet, limit time.Duration) bool {
	a, b := l.dirs[0], l.dirs[1]
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		since := time.Now().Add(-quiet)
		_, moved := l.journal.find(since, func(e event) bool { return e.isVRRP() })
		sa, errA := a.ctl.status()
		sb, errB := b.ctl.status()
		if !moved && errA == nil && errB == nil && sa.vrrpState(a.vrrp().Name) == "master" && sb.vrrpState(b.vrrp().Name) == "backup" {
			return true
		}
		time.Sleep(200 * time.Millisecond)
	}
	l.n.fail("the pair did not settle (%s master, %s backup, no VRRP change for %v) within %v", a.name, b.name, quiet, limit)
	return false
}

// startQueries starts the client's stream of DNS queries through the VIP.
func startQueries(l *lab) (*stream, bool) {
	name, _ := dnsRecord(l.dirs[0].service(l.dns.service))
	vipDNS := fmt.Sprintf("%s:%d", l.vip, l.dns.addr.Port())
	c := newClient(l.client, l.vip.String(), streamTimeout)
	s, err := c.startStream(vipDNS, name, streamEvery, streamTimeout)
	if err != nil {
		l.n.fail("starting the query stream: %v", err)
		return nil, false
	}
	l.n.say("the client sends a DNS query for %s to %s every %v (unanswered after %v = failed)", name, vipDNS, streamEvery, streamTimeout)
	return s, true
}

// comeBack reboots the crashed director: a fresh machine whose lvsd joins
// as backup, checks its servers and then preempts.
func comeBack(l *lab, m *measurements) {
	n, a, b := l.n, l.dirs[0], l.dirs[1]
	n.say("STEP 6  the old master comes back")
	s, ok := startQueries(l)
	if !ok {
		return
	}
	if err := l.rebootDirectorHost(a); err != nil {
		s.stop()
		n.fail("rebooting %s: %v", a.name, err)
		return
	}
	t0 := time.Now()
	if err := l.startLvsd(a); err != nil {
		s.stop()
		n.fail("%v", err)
		return
	}
	delay := a.vrrp().PreemptDelay.Duration
	n.say("%s rebooted (empty IPVS table, no VIP, cable back in) and started lvsd; its preempt_delay is %v", a.name, delay)
	if _, ok := l.journal.wait(t0, startLimit, vrrpTo(a.name, "backup")); !ok {
		n.fail("%s did not start as backup", a.name)
	}
	var checked time.Time
	for _, rs := range append(append([]*realServer(nil), l.web...), l.dns) {
		ev, ok := l.journal.wait(t0, startLimit, healthOf(a.name, rs.key(), true))
		if !ok {
			n.fail("%s did not mark %s up after its reboot", a.name, rs.name)
			continue
		}
		checked = maxTime(checked, ev.Time)
	}
	bound := delay + startLimit
	ev, ok := l.journal.wait(t0, bound, vrrpTo(a.name, "master"))
	if !ok {
		s.stop()
		n.fail("%s did not take the VIP back within %v of its restart", a.name, bound)
		return
	}
	m.preempt = ev.Time.Sub(t0)
	n.say("%s took the VIP back %s after lvsd started; its checks had all passed after %s", a.name, secs(m.preempt), secs(checked.Sub(t0)))
	if checked.IsZero() || checked.After(ev.Time) {
		n.fail("%s became master before its checks had passed", a.name)
	}
	if _, ok := l.journal.wait(t0, bound, vrrpTo(b.name, "backup")); !ok {
		n.fail("%s did not step back to backup", b.name)
	}
	time.Sleep(1500 * time.Millisecond)
	results := s.stop()
	o := analyse(results)
	m.preemptGap, m.preemptFailed = o.gap, o.failed
	switch {
	case o.failed == 0:
		n.say("client: all %d queries answered while the VIP moved back, no gap", o.total)
	case o.gap < 0:
		n.fail("client: %d of %d queries failed and the stream never recovered (last error: %v)", o.failed, o.total, o.lastErr)
	default:
		n.say("client: %d of %d queries failed while the VIP moved back; no query was answered for %s", o.failed, o.total, secs(o.gap))
	}
	if bad := failedOutside(results, ev.Time.Add(-streamTimeout-100*time.Millisecond), ev.Time.Add(time.Second)); len(bad) > 0 {
		n.fail("%d queries failed outside the moment the VIP moved (first sent at %s: %v)", len(bad), bad[0].start.Format("15:04:05.000"), bad[0].err)
		n.say("the stream: %s", timeline(results))
		n.say("the client's ARP entry for the VIP: %s", l.arpOfVIP())
	}
}

// checkOf returns the first check the director runs on rs.
func checkOf(d *director, rs *realServer) *config.Check {
	for _, r := range d.service(rs.service).RealServers {
		if r.Key() == rs.key() && len(r.Checks) > 0 {
			return r.Checks[0]
		}
	}
	return &config.Check{}
}

func maxTime(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// secs prints a duration in seconds with millisecond precision: "0.412 s".
func secs(d time.Duration) string { return fmt.Sprintf("%.3f s", d.Seconds()) }

// measurements are the numbers the summary repeats.
type measurements struct {
	election, ready                         time.Duration
	spread                                  string
	evictDown, evictOut                     time.Duration
	restoreUp, restoreIn                    time.Duration
	takeover, takeoverExpected, takeoverGap time.Duration
	takeoverFailed                          int
	preempt, preemptGap                     time.Duration
	preemptFailed                           int
	crashAt                                 time.Time
	flaps                                   int
}

func (m *measurements) print(n *narrator) {
	gap := func(d time.Duration, failed int) string {
		switch {
		case failed == 0:
			return "none"
		case d < 0:
			return fmt.Sprintf("never recovered (%d queries failed)", failed)
		}
		return fmt.Sprintf("%s (%d queries failed)", secs(d), failed)
	}
	lines := []string{
		"SUMMARY",
		fmt.Sprintf("  election           master after %s, all servers in the table after %s", secs(m.election), secs(m.ready)),
		fmt.Sprintf("  spread             %s", m.spread),
	}
	if m.evictDown > 0 {
		lines = append(lines, fmt.Sprintf("  eviction           down after %s, out of the table after %s", secs(m.evictDown), secs(m.evictOut)))
	}
	if m.restoreUp > 0 {
		lines = append(lines, fmt.Sprintf("  restore            up after %s, back in the table after %s", secs(m.restoreUp), secs(m.restoreIn)))
	}
	if m.takeover > 0 {
		lines = append(lines, fmt.Sprintf("  takeover (SIGKILL) backup master after %s (at most %s expected); client gap %s", secs(m.takeover), secs(m.takeoverExpected), gap(m.takeoverGap, m.takeoverFailed)))
	}
	if m.preempt > 0 {
		lines = append(lines, fmt.Sprintf("  preempt            old master back after %s; client gap %s", secs(m.preempt), gap(m.preemptGap, m.preemptFailed)))
	}
	if m.flaps > 0 {
		times := fmt.Sprintf("%d times", m.flaps)
		if m.flaps == 1 {
			times = "once"
		}
		lines = append(lines, fmt.Sprintf("  unplanned          the backup took the VIP %s while the master was alive (the master's adverts came over 3 intervals late)", times))
	}
	for _, line := range lines {
		n.say("%s", line)
	}
}
