package e2e

import (
	"fmt"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/lvsd/lvsd/e2e/lab"
)

// keepalivedRejects are what keepalived 2.2.7 logs when it drops an advert
// (vrrp.c, vrrp_check_packet): none may appear while it pairs with lvsd.
var keepalivedRejects = []string{
	"wrong version", "auth, expecting", "invalid passwd", "vrrp packet too", "invalid TTL",
	"checksum", "Invalid packet type", "unexpected ip number count", "ip_tot_len mismatch",
}

func keepalivedRejected(out string) string {
	for _, r := range keepalivedRejects {
		if strings.Contains(out, r) {
			return r
		}
	}
	return ""
}

// v2Lab waits: VRRPv2 counts whole seconds, so at its 1 s floor a SIGKILL
// takes 3 s + Skew_Time to notice; the VM is slower still.
const v2Interval = time.Second

func v2Wait(d time.Duration) time.Duration {
	if lab.InVM() {
		return 3 * d
	}
	return d
}

// TestVRRPv2KeepalivedInterop pairs lvsd (version = 2) with Debian's
// keepalived 2.2.7 in its default mode, VRRPv2, without authentication
// and with auth_type PASS, in both roles: the backup stays backup while
// the master lives, neither drops the other's adverts (keepalived's log;
// lvsd's drops metric), and the backup takes over when the master is
// killed or stops.
func TestVRRPv2KeepalivedInterop(t *testing.T) {
	requireKeepalived(t)
	for _, pass := range []string{"", "secret12"} {
		for _, lvsdMaster := range []bool{true, false} {
			for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGKILL} {
				roles := "keepalived master, lvsd backup"
				if lvsdMaster {
					roles = "lvsd master, keepalived backup"
				}
				auth := "no auth"
				if pass != "" {
					auth = "auth_pass"
				}
				t.Run(fmt.Sprintf("%s, %s, %v", roles, auth, sig), func(t *testing.T) {
					t.Parallel()
					runV2Pair(t, pass, lvsdMaster, sig)
				})
			}
		}
	}
}

func runV2Pair(t *testing.T, pass string, lvsdMaster bool, sig syscall.Signal) {
	l := newVRRPLabNamed(t, "v2")
	master, backup := l.d1, l.d2
	high := lvsdVRRP{priority: 200, preempt: true, version: 2, interval: v2Interval, pass: pass, metrics: "127.0.0.1:9910"}
	low := high
	low.priority = 100
	var masterProc, kaProc *lab.Proc
	lvsdNS := backup
	if lvsdMaster {
		masterProc = l.startLVSD(master, high)
		kaProc = l.startKeepalived(backup, low)
		lvsdNS = master
	} else {
		masterProc = l.startKeepalived(master, high)
		kaProc = masterProc
		l.startLVSD(backup, low)
	}
	l.v2Master(master, backup, v2Wait(10*time.Second))
	// Three adverts' worth: a backup that drops them would take over.
	l.stillMaster(master, backup, vrrpVIP, 4*v2Interval)
	if r := keepalivedRejected(kaProc.Output()); r != "" {
		t.Fatalf("keepalived dropped lvsd's adverts (%q):\n%s", r, kaProc.Output())
	}
	m := scrape(t, lvsdNS)
	if d := metricSum(m, "lvsd_vrrp_drops_total"); d != 0 {
		t.Fatalf("lvsd dropped %v adverts:\n%s", d, grepLines(m, "lvsd_vrrp_drops_total"))
	}
	if !lvsdMaster && metricSum(m, "lvsd_vrrp_adverts_received_total") < 3 {
		t.Fatalf("lvsd, backup, received fewer than 3 of keepalived's adverts:\n%s", grepLines(m, "lvsd_vrrp_adverts"))
	}
	masterProc.Signal(sig)
	if sig == syscall.SIGKILL {
		// 3 s + Skew_Time. The killed one keeps the VIP on its
		// interface: the client must follow the new master's GARP.
		waitFor(t, v2Wait(6*time.Second), "backup takes over", func() bool {
			return holdsVIP(backup, vrrpVIP) && l.clientReaches(backup, vrrpVIP)
		})
	} else {
		l.v2Master(backup, master, v2Wait(2*time.Second)) // priority 0: Skew_Time, under 1 s
	}
	if r := keepalivedRejected(kaProc.Output()); r != "" {
		t.Fatalf("keepalived dropped lvsd's adverts (%q):\n%s", r, kaProc.Output())
	}
}

// TestVRRPv2Mismatch proves what the interop test relies on: a pair that
// disagrees on the version or the password elects two masters, and each
// side says why, so the absence of those messages above means something.
// It is also the reason version = 2 exists: an lvsd speaking VRRPv3 beside
// an unchanged keepalived makes both master.
func TestVRRPv2Mismatch(t *testing.T) {
	requireKeepalived(t)
	for _, tt := range []struct {
		name             string
		lvsd, keepalived lvsdVRRP
		lvsdReason       string
		kaReject         string
	}{
		{"lvsd speaks VRRPv3", lvsdVRRP{priority: 100, preempt: true, interval: v2Interval},
			lvsdVRRP{priority: 200, preempt: true, version: 2, interval: v2Interval}, "version", "wrong version"},
		{"another password", lvsdVRRP{priority: 100, preempt: true, version: 2, interval: v2Interval, pass: "secret13"},
			lvsdVRRP{priority: 200, preempt: true, version: 2, interval: v2Interval, pass: "secret12"}, "password", "invalid passwd"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			l := newVRRPLabNamed(t, "v2m")
			tt.lvsd.metrics = "127.0.0.1:9910"
			ka := l.startKeepalived(l.d1, tt.keepalived)
			l.startLVSD(l.d2, tt.lvsd)
			waitFor(t, v2Wait(10*time.Second), "both masters", func() bool {
				return holdsVIP(l.d1, vrrpVIP) && holdsVIP(l.d2, vrrpVIP)
			})
			waitFor(t, v2Wait(5*time.Second), "each side reports the other's adverts", func() bool {
				m := scrape(t, l.d2)
				return strings.Contains(ka.Output(), tt.kaReject) &&
					strings.Contains(m, `lvsd_vrrp_drops_total{reason="`+tt.lvsdReason+`",vrrp_instance="vi1"}`)
			})
		})
	}
}

// v2Master is vrrpLab.master with a wait of its own (scaled() is for the
// lab's 100 ms interval).
func (l *vrrpLab) v2Master(want, other *lab.NS, timeout time.Duration) {
	l.t.Helper()
	waitFor(l.t, timeout, want.Name+" master", func() bool {
		return holdsVIP(want, vrrpVIP) && !holdsVIP(other, vrrpVIP) && l.clientReaches(want, vrrpVIP)
	})
}

// scrape reads lvsd's metrics in ns (metrics_listen 127.0.0.1:9910).
func scrape(t *testing.T, ns *lab.NS) string {
	t.Helper()
	out, err := ns.Try("busybox", "wget", "-q", "-O", "-", "http://127.0.0.1:9910/metrics")
	if err != nil {
		t.Fatalf("scraping lvsd in %s: %v: %s", ns.Name, err, out)
	}
	return out
}

// metricSum adds up every series of a metric in a scrape.
func metricSum(scrape, name string) float64 {
	var sum float64
	for _, line := range strings.Split(scrape, "\n") {
		if !strings.HasPrefix(line, name+"{") && !strings.HasPrefix(line, name+" ") {
			continue
		}
		f := strings.Fields(line)
		v, err := strconv.ParseFloat(f[len(f)-1], 64)
		if err == nil {
			sum += v
		}
	}
	return sum
}

func grepLines(s, substr string) string {
	var out []string
	for _, line := range strings.Split(s, "\n") {
		if strings.Contains(line, substr) {
			out = append(out, line)
		}
	}
	return strings.Join(out, "\n")
}
