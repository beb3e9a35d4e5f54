package daemon

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/lvsd/lvsd/director"
	"github.com/lvsd/lvsd/internal/status"
)

// addTraffic adds to the fake kernel's counters of the web service and of
// its real server rs, as traffic through the kernel would.
func (l *lab) addTraffic(rs string, conns, pkts, bytes uint64) {
	l.ipvs.Mutate(func(table map[director.ServiceKey]*director.KernelService) {
		for _, ks := range table {
			if ks.Key.Port != 80 {
				continue
			}
			ks.Stats.Conns += conns
			ks.Stats.PktsIn += pkts
			ks.Stats.BytesIn += bytes
			for i := range ks.Dests {
				if ks.Dests[i].Addr.String() == rs {
					ks.Dests[i].Stats.Conns += conns
					ks.Dests[i].Stats.PktsIn += pkts
					ks.Dests[i].Stats.BytesIn += bytes
					ks.Dests[i].ActiveConns = 7
				}
			}
		}
	})
}

// TestStatusForThePage checks what the status page shows, in the status
// document every reader gets: rates from the kernel's counters, health and
// since when, the last check's result, the service's parts, VRRP's master,
// transitions, adverts and drops, and connection sync's daemons as the
// kernel runs them (one stopped behind lvsd's back shows, and so does
// lvsd_sync_daemon_up).
func TestStatusForThePage(t *testing.T) {
	c := newLabConfig(t)
	c.Extra = labVRRP + "\n  [vrrp.sync]\n"
	kernel := &syncDaemons{running: map[director.SyncState]director.SyncDaemon{}}
	start := time.Now()
	l := startLab(t, c, WithSync(director.SyncOptions{Control: kernel, Sysctl: func(director.Sysctl) error { return nil }}))
	l.steady(c)
	l.waitVRRP("master", 2)

	st := l.status()
	svc := st.Service("web")
	if svc == nil || svc.Protocol != "tcp" || svc.VIP != "192.0.2.10" || svc.Port != 80 || svc.Forwarding != "nat" || !svc.QuorumUp {
		t.Fatalf("service web: %+v", svc)
	}
	if st.Time.Before(start) {
		t.Errorf("document time %v", st.Time)
	}
	good, bad := st.RealServer("web", c.Good), st.RealServer("web", c.Bad)
	if good.LastResult != "ok" || good.Forwarding != "nat" || good.HealthSince.Before(start) || good.HealthSince.After(st.Time) || good.Warming {
		t.Errorf("healthy server: %+v", good)
	}
	if bad.LastResult != "failed" || bad.Health != "down" || bad.HealthSince.Before(start) {
		t.Errorf("failing server: %+v", bad)
	}

	// Rates: the counters grow by 50 connections between two reads.
	l.eventually("rates after a first read", func() error {
		if st := l.status(); st.Service("web").Rates == nil {
			return errors.New("no rates yet")
		}
		return nil
	})
	l.addTraffic(c.Good, 50, 400, 30000)
	l.eventually("rates of the added traffic", func() error {
		st := l.status()
		r, rr := st.Service("web").Rates, st.RealServer("web", c.Good).Rates
		if r == nil || rr == nil || r.Conns == 0 {
			return fmt.Errorf("rates %+v / %+v", r, rr)
		}
		if r.Interval < 1 || math.Abs(r.Conns*r.Interval-50) > 1e-6 || math.Abs(rr.BytesIn*rr.Interval-30000) > 1e-6 || r.TotalConns != 50 {
			return fmt.Errorf("service rates %+v, real server %+v: want 50 connections and 30000 bytes over the interval", r, rr)
		}
		if a := st.RealServer("web", c.Good).ActiveConns; a != 7 {
			return fmt.Errorf("active connections %d, want the kernel's 7 of now", a)
		}
		return nil
	})

	v := st.Instance("vi1")
	if v.Master != "192.0.2.2" || v.Since.Before(start) || v.Transitions < 2 || v.AdvertsSent == 0 || v.Drops == nil {
		t.Errorf("vi1: %+v", v)
	}

	// Connection sync: both daemons run on the master.
	l.eventually("sync daemons in status", func() error {
		s := l.status().Sync
		if s == nil || s.Instance != "vi1" || !s.Master || len(s.Daemons) != 2 {
			return fmt.Errorf("sync %+v", s)
		}
		for _, d := range s.Daemons {
			if !d.Running || !d.Wanted || d.Interface != "lab0" || d.SyncID != 51 {
				return fmt.Errorf("daemon %+v", d)
			}
		}
		return nil
	})
	if v := l.scrape().value("lvsd_sync_daemon_up", "state", "backup"); v != 1 {
		t.Errorf("lvsd_sync_daemon_up{state=backup} = %v, want 1", v)
	}
	// Someone stops the backup daemon (ipvsadm --stop-daemon backup).
	if err := kernel.StopDaemon(context.Background(), director.SyncBackup); err != nil {
		t.Fatal(err)
	}
	var d status.SyncDaemon
	for _, x := range l.status().Sync.Daemons {
		if x.State == "backup" {
			d = x
		}
	}
	if d.Running || !d.Wanted {
		t.Errorf("backup daemon after it was stopped: %+v, want wanted and not running", d)
	}
	if v := l.scrape().value("lvsd_sync_daemon_up", "state", "backup"); v != 0 {
		t.Errorf("lvsd_sync_daemon_up{state=backup} = %v after it stopped, want 0", v)
	}
	if table := l.statusTable(); !strings.Contains(table, "vi1") {
		t.Errorf("lvsd status table:\n%s", table)
	}

	// The metrics listener serves the page and the CSV beside /metrics
	// and /status.
	for path, want := range map[string]string{"/": `<span class="word down">down</span>`, "/status.csv": c.Bad + ",down,"} {
		resp, err := http.Get("http://" + l.metrics + path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.Contains(string(body), want) {
			t.Errorf("GET %s: %s, want %q in:\n%s", path, resp.Status, want, body)
		}
	}
}
