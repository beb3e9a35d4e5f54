package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// HA for the services themselves, with `lvsd run` in namespaces on the
// host (no IPVS needed). The waits are generous bounds for "it happened";
// takeover times are measured by bench/resources.

// TestHAStatefulServiceSurvivesMasterKill is the MyProxy pair: the master
// lvsd is SIGKILLed and its cable pulled; the service answers on the peer
// with every write acknowledged before the failure.
func TestHAStatefulServiceSurvivesMasterKill(t *testing.T) {
	l := newHALab(t)
	d1, d2 := l.nodes[0], l.nodes[1]
	l.start(d1, l.haConfig(d1, 200, l.dbResource(d1, "")))
	l.serves(d1, storePort, 5*time.Second)
	l.start(d2, l.haConfig(d2, 100, l.dbResource(d2, "")))
	waitFor(t, scaled(3*time.Second), "d2 backup", func() bool { return l.status(d2).instance("ha").State == "backup" })
	l.write("k", 50)

	d1.lvsd.Signal(syscall.SIGKILL)
	l.cable(d1, false)
	l.serves(d2, storePort, 5*time.Second)
	l.holds("k", 50)
	if st := l.status(d2).instance("ha"); st.State != "master" || st.Resources["db"] != "running" {
		t.Errorf("d2: %+v", st)
	}
}

// TestHAStartFails: a start that exits 1, and one that hangs past its
// start_timeout, hand mastership to the peer within the start timeout plus
// one Master_Down_Interval (and the stops), and the store never runs on
// both nodes at once.
func TestHAStartFails(t *testing.T) {
	for _, tt := range []struct {
		name, gate string
	}{
		{"exit1", `["/bin/sh", "-c", "echo no disk; exit 1"]`},
		{"hang", `["/bin/sleep", "3600"]`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			l := newHALab(t)
			d1, d2 := l.nodes[0], l.nodes[1]
			startTimeout := scaled(time.Second)
			gate := func(start string) string {
				return fmt.Sprintf(`
  [[vrrp.resource]]
  name = "gate"
  start = %s
  stop = ["/bin/true"]
  start_timeout = "%s"
`, start, startTimeout)
			}
			stop := l.exclusive("db")
			l.start(d2, l.haConfig(d2, 100, l.dbResource(d2, "")+gate(`["/bin/true"]`)))
			l.serves(d2, storePort, 5*time.Second)
			l.write("k", 10)
			// d1 preempts, starts the store, then fails its gate.
			l.start(d1, l.haConfig(d1, 200, l.dbResource(d1, "")+gate(tt.gate)))
			var d1Master time.Time
			waitFor(t, scaled(5*time.Second), "d1 master", func() bool {
				if l.status(d1).instance("ha").State == "master" {
					d1Master = time.Now()
					return true
				}
				return false
			})
			mdi := 3*vrrpInterval() + vrrpInterval()*(256-100)/256
			bound := startTimeout + mdi + scaled(2*time.Second) // + the stops of db and gate, and this test's polling
			waitFor(t, bound, "d2 master again", func() bool {
				return l.status(d2).instance("ha").State == "master" && l.status(d1).instance("ha").State == "fault"
			})
			t.Logf("d1 master to d2 master again: %v (start_timeout %v, Master_Down_Interval %v)", time.Since(d1Master).Round(time.Millisecond), startTimeout, mdi)
			l.serves(d2, storePort, 5*time.Second)
			l.holds("k", 10)
			st := l.status(d1).instance("ha")
			want := "resource gate: start failed: exit 1: no disk"
			if tt.name == "hang" {
				want = "resource gate: start failed: timed out after"
			}
			if !strings.Contains(st.ResourceFailure, want) {
				t.Errorf("d1's resource_failure %q, want %q", st.ResourceFailure, want)
			}
			stop()
			if _, ok := rolePID(d1, "db"); ok {
				t.Error("d1 still runs the store")
			}
		})
	}
}

// TestHAMonitorRestartsOnceThenHandsOver: with restarts = 1, the store
// killed once is restarted in place; killed again it is handed over.
func TestHAMonitorRestartsOnceThenHandsOver(t *testing.T) {
	l := newHALab(t)
	d1, d2 := l.nodes[0], l.nodes[1]
	l.start(d1, l.haConfig(d1, 200, l.dbResource(d1, "  restarts = 1\n")))
	l.serves(d1, storePort, 5*time.Second)
	l.start(d2, l.haConfig(d2, 100, l.dbResource(d2, "  restarts = 1\n")))
	waitFor(t, scaled(3*time.Second), "d2 backup", func() bool { return l.status(d2).instance("ha").State == "backup" })
	l.write("k", 10)

	kill := func() int {
		pid, ok := rolePID(d1, "db")
		if !ok {
			t.Fatal("the store does not run on d1")
		}
		syscall.Kill(pid, syscall.SIGKILL)
		return pid
	}
	first := kill()
	waitFor(t, scaled(5*time.Second), "restarted in place on d1", func() bool {
		pid, ok := rolePID(d1, "db")
		st := l.status(d1).instance("ha")
		return ok && pid != first && st.Restarts["db"] == 1 && st.State == "master" && st.Resources["db"] == "running"
	})
	l.serves(d1, storePort, 5*time.Second)
	l.holds("k", 10)

	kill()
	l.serves(d2, storePort, 5*time.Second)
	l.holds("k", 10)
	if st := l.status(d1).instance("ha"); st.State != "fault" || !strings.Contains(st.ResourceFailure, "restarted 1 times") {
		t.Errorf("d1 after the second failure: %+v", st)
	}
}

// TestHAHeartbeatFailures: the OAR pair's failure tests on a group of
// three resources (data, store, web front): the cable pulled, the director
// crashed, a resource's process killed, and one killed while a client
// writes to it. No acknowledged write is lost.
func TestHAHeartbeatFailures(t *testing.T) {
	for _, failure := range []string{"cable", "crash", "process", "while-writing"} {
		t.Run(failure, func(t *testing.T) {
			l := newHALab(t)
			d1, d2 := l.nodes[0], l.nodes[1]
			l.start(d1, l.haConfig(d1, 200, l.groupResources(d1)))
			l.serves(d1, webPort, 5*time.Second)
			l.start(d2, l.haConfig(d2, 100, l.groupResources(d2)))
			waitFor(t, scaled(3*time.Second), "d2 backup", func() bool { return l.status(d2).instance("ha").State == "backup" })
			stop := l.exclusive("db")
			defer stop()
			l.write("k", 20)
			switch failure {
			case "cable":
				l.cable(d1, false)
				l.serves(d2, webPort, 5*time.Second)
				// d1 saw its link go: it stopped what it ran.
				waitFor(t, scaled(5*time.Second), "d1 stops the store", func() bool { _, ok := rolePID(d1, "db"); return !ok })
			case "crash":
				// The whole node dies at once: lvsd, what it started, the link.
				d1.lvsd.Signal(syscall.SIGKILL)
				for _, role := range []string{"db", "web"} {
					if pid, ok := rolePID(d1, role); ok {
						syscall.Kill(pid, syscall.SIGKILL)
					}
				}
				l.cable(d1, false)
				l.serves(d2, webPort, 5*time.Second)
			case "process":
				pid, _ := rolePID(d1, "db")
				syscall.Kill(pid, syscall.SIGKILL)
				// Restarted in place, with the web front that depends on it.
				waitFor(t, scaled(5*time.Second), "restart in place", func() bool {
					return l.status(d1).instance("ha").Restarts["db"] == 1
				})
				l.serves(d1, webPort, 5*time.Second)
			case "while-writing":
				acked := l.writeThroughKill(d1)
				l.serves(d1, webPort, 5*time.Second)
				for _, k := range acked {
					if r, err := l.ask(storePort, "GET "+k); err != nil || !strings.HasPrefix(r, "VAL ") {
						t.Fatalf("acknowledged write %s lost: %q %v", k, r, err)
					}
				}
				t.Logf("%d writes acknowledged across the kill", len(acked))
			}
			l.holds("k", 20)
		})
	}
}

// writeThroughKill writes keys through the VIP, kills n's store after the
// tenth, and retries each write until it is acknowledged; it returns the
// acknowledged keys.
func (l *haLab) writeThroughKill(n *haNode) []string {
	l.t.Helper()
	var acked []string
	deadline := time.Now().Add(scaled(10 * time.Second))
	for i := 0; i < 40; i++ {
		if i == 10 {
			pid, _ := rolePID(n, "db")
			syscall.Kill(pid, syscall.SIGKILL)
		}
		k := fmt.Sprintf("w%d", i)
		for {
			if r, err := l.ask(storePort, "SET "+k+" x"); err == nil && r == "OK" {
				acked = append(acked, k)
				break
			}
			if time.Now().After(deadline) {
				l.t.Fatalf("write %s not acknowledged by %v", k, deadline)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	return acked
}

// TestHAWeightedTracking: a tracked script's weight moves the advertised
// priority by exactly its weight, negative while it fails and positive
// while it passes, and the election follows.
func TestHAWeightedTracking(t *testing.T) {
	t.Run("negative", func(t *testing.T) {
		l := newHALab(t)
		d1, d2 := l.nodes[0], l.nodes[1]
		a, b := l.flag("a"), l.flag("b")
		l.start(d1, l.haConfig(d1, 200, l.trackScript("chk_a", a, -90)+l.trackScript("chk_b", b, -60)))
		l.start(d2, l.haConfig(d2, 100, ""))
		l.master(d1.ns, d2.ns, vrrpVIP, 5*time.Second)
		l.hears(d2, 200)
		// 200 - 90 = 110: still above d2, which hears exactly that.
		os.Remove(a)
		l.hears(d2, 110)
		l.stillMaster(d1.ns, d2.ns, vrrpVIP, time.Second)
		// 110 - 60 = 50: d2 preempts.
		os.Remove(b)
		l.master(d2.ns, d1.ns, vrrpVIP, 5*time.Second)
		l.priority(d1, 50)
		l.hears(d1, 100)
		os.WriteFile(a, nil, 0o644)
		os.WriteFile(b, nil, 0o644)
		l.master(d1.ns, d2.ns, vrrpVIP, 5*time.Second)
		l.hears(d2, 200)
	})
	t.Run("positive", func(t *testing.T) {
		l := newHALab(t)
		d1, d2 := l.nodes[0], l.nodes[1]
		up := l.flag("up")
		l.start(d1, l.haConfig(d1, 200, ""))
		l.start(d2, l.haConfig(d2, 100, l.trackScript("chk_up", up, 150)))
		// 100 + 150 = 250 while it passes: d2 wins, d1 hears exactly 250.
		l.master(d2.ns, d1.ns, vrrpVIP, 5*time.Second)
		l.hears(d1, 250)
		os.Remove(up)
		l.master(d1.ns, d2.ns, vrrpVIP, 5*time.Second)
		l.priority(d2, 100)
		l.hears(d2, 200)
		os.WriteFile(up, nil, 0o644)
		l.master(d2.ns, d1.ns, vrrpVIP, 5*time.Second)
		l.hears(d1, 250)
	})
}

// flag makes a file a tracked script tests for.
func (l *haLab) flag(name string) string {
	path := filepath.Join(l.dir, "flag-"+name)
	if err := os.WriteFile(path, nil, 0o644); err != nil {
		l.t.Fatal(err)
	}
	return path
}

// trackScript passes while file exists.
func (l *haLab) trackScript(name, file string, weight int) string {
	return fmt.Sprintf(`
  [[vrrp.track_script]]
  name = %q
  command = ["/usr/bin/test", "-e", %q]
  interval = "%s"
  weight = %d
`, name, file, scaled(100*time.Millisecond), weight)
}

// hears waits until n hears a master advertise exactly prio.
func (l *haLab) hears(n *haNode, prio int) {
	l.t.Helper()
	waitFor(l.t, scaled(3*time.Second), fmt.Sprintf("%s hears master priority %d", n.name, prio), func() bool {
		st := l.status(n).instance("ha")
		return st.State == "backup" && st.MasterPriority == prio
	})
}

// priority waits until n's effective priority is prio.
func (l *haLab) priority(n *haNode, prio int) {
	l.t.Helper()
	waitFor(l.t, scaled(3*time.Second), fmt.Sprintf("%s at priority %d", n.name, prio), func() bool {
		return l.status(n).instance("ha").Priority == prio
	})
}

// TestHASyncGroupMovesAsOne: two instances in a sync group move as one
// when either one's tracked interface goes down: uplink1 is tracked with
// weight 0 (fault) by vi1, uplink2 with weight -150 by vi2.
func TestHASyncGroupMovesAsOne(t *testing.T) {
	l := newHALab(t)
	const vip2 = "10.9.0.11"
	d1, d2 := l.nodes[0], l.nodes[1]
	for _, n := range []*haNode{d1, d2} {
		for _, up := range []string{"uplink1", "uplink2"} {
			n.ns.Link("add", up, "type", "veth", "peer", "name", up+"-far")
			n.ns.Link("set", up+"-far", "up")
			n.ns.Link("set", up, "up")
		}
	}
	config := func(n *haNode, prio int) string {
		return fmt.Sprintf(`[director]
interface = "eth0"
control_socket = %q
metrics_listen = ""

[[vrrp]]
name = "vi1"
vrid = 51
priority = %[2]d
advert_interval = "%[3]dms"
vips = ["%[4]s/24"]
track_interfaces = ["uplink1"]

[[vrrp]]
name = "vi2"
vrid = 52
priority = %[2]d
advert_interval = "%[3]dms"
vips = ["%[5]s/24"]

  [[vrrp.track_interface]]
  name = "uplink2"
  weight = -150

[[vrrp_sync_group]]
name = "nat"
instances = ["vi1", "vi2"]
`, l.socket(n.ns), prio, vrrpInterval().Milliseconds(), vrrpVIP, vip2)
	}
	l.start(d1, config(d1, 200))
	l.start(d2, config(d2, 100))
	both := func(want, other *haNode) {
		t.Helper()
		waitFor(t, scaled(5*time.Second), want.name+" holds both VIPs", func() bool {
			return holdsVIP(want.ns, vrrpVIP) && holdsVIP(want.ns, vip2) && !holdsVIP(other.ns, vrrpVIP) && !holdsVIP(other.ns, vip2)
		})
	}
	split := func() (stop func()) {
		done := make(chan struct{})
		failed := make(chan string, 1)
		go func() {
			for {
				select {
				case <-done:
					close(failed)
					return
				case <-time.After(20 * time.Millisecond):
				}
				for _, n := range []*haNode{d1, d2} {
					// A node holding one VIP of the group but not the other
					// for long would be the split the group exists to avoid;
					// a moment in between (one address added before the
					// other) is sampled only if it lasts.
					if holdsVIP(n.ns, vrrpVIP) != holdsVIP(n.ns, vip2) {
						time.Sleep(200 * time.Millisecond)
						if holdsVIP(n.ns, vrrpVIP) != holdsVIP(n.ns, vip2) {
							select {
							case failed <- n.name:
							default:
							}
						}
					}
				}
			}
		}()
		return func() {
			close(done)
			if n, ok := <-failed; ok && n != "" {
				t.Errorf("%s held one VIP of the group without the other", n)
			}
		}
	}
	both(d1, d2)
	stop := split()
	for _, up := range []string{"uplink1", "uplink2"} {
		d1.ns.Link("set", up, "down")
		both(d2, d1)
		d1.ns.Link("set", up, "up")
		both(d1, d2)
	}
	stop()
}

// TestHAPlannedSwitch: the operator moves the service for maintenance and
// back. giveup stops it on d1 before d1 resigns; takeover on d1 preempts a
// live master, so d1 starts it only once d2 has stopped it and released
// it. It never runs on both nodes, and no write is lost.
func TestHAPlannedSwitch(t *testing.T) {
	l := newHALab(t)
	d1, d2 := l.nodes[0], l.nodes[1]
	l.start(d1, l.haConfig(d1, 200, l.dbResource(d1, "")))
	l.serves(d1, storePort, 5*time.Second)
	l.start(d2, l.haConfig(d2, 100, l.dbResource(d2, "")))
	waitFor(t, scaled(3*time.Second), "d2 backup", func() bool { return l.status(d2).instance("ha").State == "backup" })
	stop := l.exclusive("db")
	defer stop()
	l.write("a", 10)
	l.ctl(d1.ns, "giveup", "ha")
	l.serves(d2, storePort, 5*time.Second)
	l.holds("a", 10)
	l.write("b", 10)
	l.ctl(d1.ns, "reset", "ha")
	l.ctl(d1.ns, "takeover", "ha")
	l.serves(d1, storePort, 5*time.Second)
	l.holds("a", 10)
	l.holds("b", 10)
}
