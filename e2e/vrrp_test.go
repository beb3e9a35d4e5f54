package e2e

import (
	"syscall"
	"testing"
	"time"
)

// These tests run `lvsd run` with VRRP-only configs in namespaces on the
// host (no IPVS needed). Timeouts are
// generous bounds for "it happened", never timing assertions; takeover
// times are measured by bench/failover.

const takeoverWithin = 3 * time.Second

func TestVRRPMasterDies(t *testing.T) {
	for _, tt := range []struct {
		name string
		sig  syscall.Signal
	}{{"SIGKILL", syscall.SIGKILL}, {"SIGTERM", syscall.SIGTERM}} {
		t.Run(tt.name, func(t *testing.T) {
			l := newVRRPLab(t)
			p1 := l.startLVSD(l.d1, lvsdVRRP{priority: 200, preempt: true})
			l.startLVSD(l.d2, lvsdVRRP{priority: 100, preempt: true})
			l.master(l.d1, l.d2, vrrpVIP, takeoverWithin)
			p1.Signal(tt.sig)
			if tt.sig == syscall.SIGTERM {
				if err := p1.Wait(5 * time.Second); err != nil {
					t.Fatalf("lvsd did not exit cleanly on SIGTERM: %v", err)
				}
				// A clean stop releases the VIP.
				l.master(l.d2, l.d1, vrrpVIP, takeoverWithin)
				return
			}
			// A killed master cannot remove its VIP; the backup's gratuitous
			// ARP must still win the client over.
			waitFor(t, scaled(takeoverWithin), "d2 takes over", func() bool {
				return holdsVIP(l.d2, vrrpVIP) && l.clientReaches(l.d2, vrrpVIP)
			})
		})
	}
}

// TestVRRPMasterReturns: the old master comes back after a SIGKILL. With
// preempt it takes over again (and the backup releases the VIP); without,
// the current master keeps it. A restarted node also drops the VIP its
// killed predecessor left behind.
func TestVRRPMasterReturns(t *testing.T) {
	for _, preempt := range []bool{true, false} {
		name := "preempt"
		if !preempt {
			name = "nopreempt"
		}
		t.Run(name, func(t *testing.T) {
			l := newVRRPLab(t)
			// d1 is master before d2 starts: without preempt, a d2 that
			// started first would rightly keep the VIP.
			p1 := l.startLVSD(l.d1, lvsdVRRP{priority: 200, preempt: preempt})
			l.master(l.d1, l.d2, vrrpVIP, takeoverWithin)
			l.startLVSD(l.d2, lvsdVRRP{priority: 100, preempt: preempt})
			l.stillMaster(l.d1, l.d2, vrrpVIP, time.Second)
			p1.Kill()
			waitFor(t, scaled(takeoverWithin), "d2 takes over", func() bool { return holdsVIP(l.d2, vrrpVIP) })
			l.startLVSD(l.d1, lvsdVRRP{priority: 200, preempt: preempt})
			if preempt {
				l.master(l.d1, l.d2, vrrpVIP, takeoverWithin)
				return
			}
			waitFor(t, scaled(takeoverWithin), "restarted d1 drops the stale VIP", func() bool { return !holdsVIP(l.d1, vrrpVIP) })
			l.stillMaster(l.d2, l.d1, vrrpVIP, time.Second)
			if !l.clientReaches(l.d2, vrrpVIP) {
				t.Fatal("client does not reach d2")
			}
		})
	}
}

// TestVRRPLinkDown: the master's interface, or an interface it lists in
// track_interfaces, goes down; it releases the VIP (fault) and the backup
// takes over; when the link returns, the higher priority preempts again.
func TestVRRPLinkDown(t *testing.T) {
	for _, link := range []string{"eth0", "uplink"} {
		t.Run(link, func(t *testing.T) {
			l := newVRRPLab(t)
			l.d1.Link("add", "uplink", "type", "veth", "peer", "name", "uplink-far") // no dummy module on the host
			l.d1.Link("set", "uplink-far", "up")
			l.d1.Link("set", "uplink", "up")
			l.startLVSD(l.d1, lvsdVRRP{priority: 200, preempt: true, track: []string{"uplink"}})
			l.startLVSD(l.d2, lvsdVRRP{priority: 100, preempt: true})
			l.master(l.d1, l.d2, vrrpVIP, takeoverWithin)
			l.d1.Link("set", link, "down")
			waitFor(t, scaled(takeoverWithin), "d2 takes over, d1 releases", func() bool {
				return holdsVIP(l.d2, vrrpVIP) && !holdsVIP(l.d1, vrrpVIP) && l.clientReaches(l.d2, vrrpVIP)
			})
			l.stillMaster(l.d2, l.d1, vrrpVIP, time.Second) // d1 stays out while faulty
			l.d1.Link("set", link, "up")
			l.master(l.d1, l.d2, vrrpVIP, 2*takeoverWithin)
		})
	}
}

// TestVRRPPriorityTie: with equal priorities a running master keeps the
// VIP when a peer with a higher address starts (a backup never takes over
// on a tie); after a partition both are master, and when it heals the
// higher address (d2) wins.
func TestVRRPPriorityTie(t *testing.T) {
	l := newVRRPLab(t)
	l.startLVSD(l.d1, lvsdVRRP{priority: 100, preempt: true})
	l.master(l.d1, l.d2, vrrpVIP, takeoverWithin)
	l.startLVSD(l.d2, lvsdVRRP{priority: 100, preempt: true})
	l.stillMaster(l.d1, l.d2, vrrpVIP, 1500*time.Millisecond)

	l.sw.Run("ip", "link", "set", "p2", "nomaster")
	waitFor(t, scaled(takeoverWithin), "split brain", func() bool { return holdsVIP(l.d1, vrrpVIP) && holdsVIP(l.d2, vrrpVIP) })
	l.sw.Run("ip", "link", "set", "p2", "master", "br0")
	l.master(l.d2, l.d1, vrrpVIP, takeoverWithin)
}

// TestVRRPSplitBrainHeals: a partition that keeps both links up makes the
// backup master too; when it heals the lower priority steps down.
func TestVRRPSplitBrainHeals(t *testing.T) {
	l := newVRRPLab(t)
	l.startLVSD(l.d1, lvsdVRRP{priority: 200, preempt: false})
	l.startLVSD(l.d2, lvsdVRRP{priority: 100, preempt: false})
	l.master(l.d1, l.d2, vrrpVIP, takeoverWithin)
	l.sw.Run("ip", "link", "set", "p2", "nomaster")
	waitFor(t, scaled(takeoverWithin), "split brain", func() bool { return holdsVIP(l.d1, vrrpVIP) && holdsVIP(l.d2, vrrpVIP) })
	l.sw.Run("ip", "link", "set", "p2", "master", "br0")
	l.master(l.d1, l.d2, vrrpVIP, takeoverWithin)
}

// TestVRRPTakeoverGiveup: planned maintenance with `lvsd takeover` and
// `lvsd giveup` over the control socket.
func TestVRRPTakeoverGiveup(t *testing.T) {
	l := newVRRPLab(t)
	l.startLVSD(l.d1, lvsdVRRP{priority: 200, preempt: true})
	l.startLVSD(l.d2, lvsdVRRP{priority: 100, preempt: true})
	l.master(l.d1, l.d2, vrrpVIP, takeoverWithin)
	waitFor(t, scaled(takeoverWithin), "control socket", func() bool { return fileExists(l.socket(l.d2)) })
	l.ctl(l.d2, "takeover", "vi1")
	l.master(l.d2, l.d1, vrrpVIP, takeoverWithin)
	l.stillMaster(l.d2, l.d1, vrrpVIP, time.Second) // d1's preempt does not undo it
	l.ctl(l.d2, "giveup", "vi1")
	l.master(l.d1, l.d2, vrrpVIP, takeoverWithin)
	l.stillMaster(l.d1, l.d2, vrrpVIP, time.Second)
}

func TestVRRPIPv6(t *testing.T) {
	l := newVRRPLab(t)
	p1 := l.startLVSD(l.d1, lvsdVRRP{priority: 200, preempt: true, v6: true})
	l.startLVSD(l.d2, lvsdVRRP{priority: 100, preempt: true, v6: true})
	l.master(l.d1, l.d2, vrrpVIP6, takeoverWithin)
	p1.Signal(syscall.SIGTERM)
	l.master(l.d2, l.d1, vrrpVIP6, takeoverWithin)
}

// TestVRRPChecksumForms: a node sending RFC 9568 checksums (message only)
// and one sending RFC 5798 ones (with pseudo-header) understand each other.
func TestVRRPChecksumForms(t *testing.T) {
	l := newVRRPLab(t)
	p1 := l.startLVSD(l.d1, lvsdVRRP{priority: 200, preempt: true, checksum: "rfc9568"})
	l.startLVSD(l.d2, lvsdVRRP{priority: 100, preempt: true, checksum: "rfc5798"})
	l.master(l.d1, l.d2, vrrpVIP, takeoverWithin)
	l.stillMaster(l.d1, l.d2, vrrpVIP, time.Second)
	p1.Signal(syscall.SIGTERM)
	l.master(l.d2, l.d1, vrrpVIP, takeoverWithin)
}
