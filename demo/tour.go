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
	l.journal.onNew = func(e event) { printEvent(n, e) }

	m := &measurements{}
	if adverts, err := listenAdverts(l.client); err != nil {
		n.say("note: cannot listen to VRRP adverts from the client (%v); the summary will not say how regular they were", err)
	} else {
		m.adverts = adverts
		defer adverts.close()
	}
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
	statusPage(l, active)
	m.flaps = countFlaps(l, m)
	m.print(n)
	return len(n.failures()) == 0
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
	if first, ok := l.journal.find(t0, vrrpTo(b.name, "master")); ok && first.Time.Before(ev.Time) {
		n.say("both started as backup and %s's Master_Down timer ran out before an advert of %s reached it, so %s held the VIP for %s until %s preempted it after its preempt_delay %v",
			b.name, a.name, b.name, secs(ev.Time.Sub(first.Time)), a.name, a.vrrp().PreemptDelay.Duration)
	}
	n.say("%s is MASTER %s after the start (priority %d beats %d); %s is BACKUP", a.name, secs(m.election), a.vrrp().Priority, b.vrrp().Priority, b.name)
	if !allUp(l, a, 20*time.Second) {
		return false
	}
	m.ready = time.Since(t0)
	if !calm(l, 2*time.Second, 20*time.Second) {
		return false
	}
	m.settled, m.master = time.Now(), a.addr
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
	bad, note := l.judge(t, m)
	n.say("%d HTTP requests to http://%s/, each on a new connection: %s; %d failed%s", count, l.vip, t, t.failed, note)
	if bad > 0 {
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
	victim.proc.Kill()
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
	bad, note := l.judge(t, m)
	n.say("%d HTTP requests: %s; %d failed%s", t.total(), t, t.failed, note)
	if bad > 0 || t.byServer[victim.name] > 0 {
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
	bad, note := l.judge(t, m)
	n.say("%d HTTP requests: %s; %d failed%s", t.total(), t, t.failed, note)
	if bad > 0 || t.byServer[victim.name] == 0 {
		n.fail("after the restore: %d failed (last: %v), %d answered by %s; want none failed and %s answering again; the client's ARP entry for the VIP: %s", t.failed, t.lastErr, t.byServer[victim.name], victim.name, victim.name, l.arpOfVIP())
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
