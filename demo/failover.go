package main

import (
	"fmt"
	"time"

	"github.com/lvsd/lvsd/config"
)

// crash kills the master the hard way and measures the takeover, from
// VRRP's view and from the client's.
func crash(l *lab, m *measurements) bool {
	n, a, b := l.n, l.dirs[0], l.dirs[1]
	n.say("STEP 5  the master crashes")
	adv := b.vrrp().AdvertInterval.Duration
	expected := masterDownInterval(b.vrrp())
	skew := expected - 3*adv
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
	if err := a.host.Unplug(l.lan, a.host.Role); err != nil {
		n.fail("pulling %s's cable: %v", a.name, err)
	}
	a.lvsd.Kill()
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
	if bad := l.unexplained(failedOutside(results, t0.Add(-streamTimeout-100*time.Millisecond), ev.Time.Add(time.Second)), m); len(bad) > 0 {
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
	asBackup, ok := l.journal.wait(t0, startLimit, vrrpTo(a.name, "backup"))
	if !ok {
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
	// Before preempt_delay is up, a backup takes over only when the master
	// looks dead: no advert for Master_Down_Interval. On a starved CPU the
	// master's adverts can come that late; then it is an unplanned takeover,
	// reported as such. With adverts on time it is a bug.
	early := ok && ev.Time.Sub(asBackup.Time) < delay
	silent := time.Duration(0)
	if early && m.adverts != nil {
		if last := m.adverts.lastBefore(b.addr, ev.Time); !last.IsZero() {
			silent = ev.Time.Sub(last)
		}
	}
	mdi := masterDownInterval(a.vrrp())
	switch {
	case early && silent > mdi:
		m.flaps++
		n.say("that was early, before its preempt_delay: %s had sent no advert for %s (over %s's Master_Down_Interval %s), so it looked dead: an unplanned takeover",
			b.name, secs(silent), a.name, secs(mdi))
	case early && m.adverts != nil:
		n.fail("%s took the VIP %s after starting as backup, before its preempt_delay %v, although %s's adverts came on time (the last %s before)",
			a.name, secs(ev.Time.Sub(asBackup.Time)), delay, b.name, secs(silent))
	}
	if checked.IsZero() || checked.After(ev.Time) {
		if early && silent > mdi {
			n.say("%s took over before all its checks had passed: the servers not yet checked were missing from its table until they had", a.name)
		} else {
			n.fail("%s became master before its checks had passed", a.name)
		}
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
	if bad := l.unexplained(failedOutside(results, ev.Time.Add(-streamTimeout-100*time.Millisecond), ev.Time.Add(time.Second)), m); len(bad) > 0 {
		n.fail("%d queries failed outside the moment the VIP moved (first sent at %s: %v)", len(bad), bad[0].start.Format("15:04:05.000"), bad[0].err)
		n.say("the stream: %s", timeline(results))
		n.say("the client's ARP entry for the VIP: %s", l.arpOfVIP())
	}
}

// masterDownInterval is RFC 5798's Master_Down_Interval of v: three adverts
// and the skew of its priority.
func masterDownInterval(v *config.VRRP) time.Duration {
	adv := v.AdvertInterval.Duration
	return 3*adv + time.Duration(256-v.Priority)*adv/256
}
