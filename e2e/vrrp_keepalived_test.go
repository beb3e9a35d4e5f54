package e2e

import (
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/lvsd/lvsd/e2e/lab"
)

const keepalivedBin = "/usr/sbin/keepalived"

func requireKeepalived(t *testing.T) {
	t.Helper()
	if _, err := os.Stat(keepalivedBin); err != nil {
		t.Skip("keepalived is not installed (make deps installs it)")
	}
}

// TestVRRPKeepalivedInterop pairs lvsd with keepalived 2.2 (VRRPv3) in both
// roles. Each side must accept the other's adverts: the backup stays
// backup while the master lives (no split brain), and takes over when the
// master stops with priority 0 or is killed.
//
// keepalived 2.2.7 only sends and accepts the RFC 5798 IPv4 checksum
// (with pseudo-header; v3_checksum_as_v2 came in 2.2.8), so lvsd talks to
// it with the default checksum; lvsd's acceptance of both forms on receive
// is what the rfc9568 case shows: an lvsd that sends RFC 9568 checksums
// still follows a keepalived master.
func TestVRRPKeepalivedInterop(t *testing.T) {
	requireKeepalived(t)
	for _, tt := range []struct {
		name           string
		lvsdMaster     bool
		lvsdChecksum   string
		stop           syscall.Signal
		v6             bool
		wantKAReceives bool // keepalived must accept lvsd's adverts
	}{
		{"lvsd master, keepalived backup, SIGTERM", true, "", syscall.SIGTERM, false, true},
		{"lvsd master, keepalived backup, SIGKILL", true, "rfc5798", syscall.SIGKILL, false, true},
		{"keepalived master, lvsd backup, SIGTERM", false, "", syscall.SIGTERM, false, true},
		{"keepalived master, lvsd backup sending rfc9568, SIGKILL", false, "rfc9568", syscall.SIGKILL, false, false},
		{"IPv6 lvsd master, keepalived backup", true, "", syscall.SIGTERM, true, true},
		{"IPv6 keepalived master, lvsd backup", false, "", syscall.SIGTERM, true, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			l := newVRRPLab(t)
			vip := vrrpVIP
			if tt.v6 {
				vip = vrrpVIP6
			}
			master, backup := l.d1, l.d2
			high := lvsdVRRP{priority: 200, preempt: true, v6: tt.v6}
			low := lvsdVRRP{priority: 100, preempt: true, v6: tt.v6, checksum: tt.lvsdChecksum}
			var masterProc, kaProc *lab.Proc
			if tt.lvsdMaster {
				high.checksum = tt.lvsdChecksum
				low.checksum = ""
				masterProc = l.startLVSD(master, high)
				kaProc = l.startKeepalived(backup, low)
			} else {
				masterProc = l.startKeepalived(master, high)
				kaProc = masterProc
				l.startLVSD(backup, low)
			}
			l.master(master, backup, vip, 2*takeoverWithin)
			l.stillMaster(master, backup, vip, 1500*time.Millisecond)
			if tt.wantKAReceives && strings.Contains(kaProc.Output(), "checksum") {
				t.Errorf("keepalived complained about checksums:\n%s", kaProc.Output())
			}
			masterProc.Signal(tt.stop)
			if tt.stop == syscall.SIGTERM {
				masterProc.Wait(5 * time.Second)
				l.master(backup, master, vip, takeoverWithin)
				return
			}
			waitFor(t, scaled(takeoverWithin), "backup takes over", func() bool {
				return holdsVIP(backup, vip) && l.clientReaches(backup, vip)
			})
		})
	}
}

// TestVRRPUnicast: unicast_peers instead of multicast, between two lvsd and
// with keepalived (whose RFC 5798 checksum then covers the real unicast
// destination, not the group).
func TestVRRPUnicast(t *testing.T) {
	for _, peer := range []string{"lvsd", "keepalived"} {
		t.Run(peer, func(t *testing.T) {
			if peer == "keepalived" {
				requireKeepalived(t)
			}
			l := newVRRPLab(t)
			p1 := l.startLVSD(l.d1, lvsdVRRP{priority: 200, preempt: true, peer: "10.9.0.2"})
			low := lvsdVRRP{priority: 100, preempt: true, peer: "10.9.0.1"}
			if peer == "lvsd" {
				l.startLVSD(l.d2, low)
			} else {
				l.startKeepalived(l.d2, low)
			}
			l.master(l.d1, l.d2, vrrpVIP, 2*takeoverWithin)
			l.stillMaster(l.d1, l.d2, vrrpVIP, 1500*time.Millisecond)
			p1.Signal(syscall.SIGTERM)
			p1.Wait(5 * time.Second)
			l.master(l.d2, l.d1, vrrpVIP, takeoverWithin)
			// The old master returns and preempts over unicast too.
			l.startLVSD(l.d1, lvsdVRRP{priority: 200, preempt: true, peer: "10.9.0.2"})
			l.master(l.d1, l.d2, vrrpVIP, 2*takeoverWithin)
		})
	}
}
