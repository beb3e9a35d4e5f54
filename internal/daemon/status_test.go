package daemon

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/lvsd/lvsd/internal/status"
)

const labVRRP = `
[[vrrp]]
name = "vi1"
vrid = 51
interface = "lab0"
priority = 150
advert_interval = "50ms"
vips = ["192.0.2.10/32"]
source_address = "192.0.2.2"
`

// TestStatusAndVRRPControl reads the status document over the socket and
// over the metrics listener, renders the table, and steers VRRP with
// giveup and takeover: an instance alone on its segment becomes master,
// holds the VIP, and its state, adverts and master priority are exported.
func TestStatusAndVRRPControl(t *testing.T) {
	c := newLabConfig(t)
	c.Extra = labVRRP
	l := startLab(t, c)
	l.steady(c)
	l.waitVRRP("master", 2)

	st := l.status()
	if st.Node != "lab-node" || st.Config != l.path || st.Version != labVersion || !st.ReloadOK || st.LastReload.IsZero() {
		t.Errorf("status header: node %q config %q version %q reload ok %v at %v", st.Node, st.Config, st.Version, st.ReloadOK, st.LastReload)
	}
	if len(st.Services) != 1 {
		t.Fatalf("status services: %+v", st.Services)
	}
	svc := st.Services[0]
	if svc.Name != "web" || svc.Address != "tcp/192.0.2.10:80" || svc.Scheduler != "wlc" || !svc.InKernel || svc.SorryActive {
		t.Errorf("status of service web: %+v", svc)
	}
	byAddr := map[string]status.RealServer{}
	for _, r := range svc.RealServers {
		byAddr[r.Address] = r
	}
	if r := byAddr[c.Good]; r.Health != "up" || r.Weight != 5 || r.KernelWeight != 5 || r.Drained ||
		!strings.Contains(r.Reason, "200") || r.Latency <= 0 || time.Since(r.LastCheck) > 5*time.Second {
		t.Errorf("status of the healthy server: %+v", r)
	}
	if r := byAddr[c.Bad]; r.Health != "down" || r.Weight != 3 || r.KernelWeight != -1 || !strings.Contains(r.Reason, "500") {
		t.Errorf("status of the failing server: %+v", r)
	}
	if len(st.VRRP) != 1 {
		t.Fatalf("status vrrp: %+v", st.VRRP)
	}
	if v := st.VRRP[0]; v.Name != "vi1" || v.VRID != 51 || v.Interface != "lab0" || v.State != "master" ||
		v.Priority != 150 || v.MasterPriority != 150 || !slices.Equal(v.VIPs, []string{"192.0.2.10/32"}) {
		t.Errorf("status of vi1: %+v", v)
	}

	if fi, err := os.Stat(l.socket); err != nil || fi.Mode().Perm() != 0o600 || fi.Mode()&os.ModeSocket == 0 {
		t.Errorf("control socket: %v %v; want a socket with mode 0600", fi.Mode(), err)
	}

	// The metrics listener serves the same document, read-only.
	resp, err := http.Get("http://" + l.metrics + "/status")
	if err != nil {
		t.Fatal(err)
	}
	var viaHTTP status.Report
	err = json.NewDecoder(resp.Body).Decode(&viaHTTP)
	resp.Body.Close()
	if err != nil || resp.StatusCode != 200 || viaHTTP.Node != "lab-node" || len(viaHTTP.Services) != 1 || len(viaHTTP.VRRP) != 1 {
		t.Errorf("GET /status on the metrics listener: %d %v %+v", resp.StatusCode, err, viaHTTP)
	}
	for _, path := range []string{"/giveup/vi1", "/drain/web/" + c.Good, "/reload"} {
		resp, err := http.Post("http://"+l.metrics+path, "", nil)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode < 400 {
			t.Errorf("POST %s on the metrics listener: %s; only the 0600 socket may steer", path, resp.Status)
		}
	}

	if st.Checks.Checks != 2 || st.Checks.Behind < 0 || st.Checks.Behind > st.Checks.Checks {
		t.Errorf("status of the checks' schedule: %+v, want 2 checks", st.Checks)
	}
	table := l.statusTable()
	for _, want := range [][]string{
		{"checks", "behind", "schedule:"},
		{"VRRP"},
		{"INSTANCE", "VRID", "IFACE", "STATE", "PRIO", "MASTER-PRIO", "AUTH", "VIPS"},
		{"vi1", "51", "lab0", "master", "150", "150", "-", "192.0.2.10/32"},
		{"SERVICES"},
		{"SERVICE", "/", "REALSERVER", "HEALTH", "WEIGHT", "KERNEL", "ACTIVE", "INACT", "LATENCY", "REASON"},
		{"web", "tcp/192.0.2.10:80", "wlc"},
		{"->", c.Good, "up", "5", "5", "0", "0"},
		{"->", c.Bad, "down", "3", "-", "0", "0"},
	} {
		if !tableHasRow(table, want) {
			t.Errorf("the status table has no row starting %q:\n%s", want, table)
		}
	}

	// giveup: backup, VIP released; takeover: master again, VIP back.
	ctx := context.Background()
	if err := l.client().Giveup(ctx, "vi1"); err != nil {
		t.Fatalf("giveup: %v", err)
	}
	l.waitVRRP("backup", 1)
	l.waitHeld("lab0", "192.0.2.10/32", false)
	if err := l.client().Takeover(ctx, "vi1"); err != nil {
		t.Fatalf("takeover: %v", err)
	}
	l.waitVRRP("master", 2)
	l.waitHeld("lab0", "192.0.2.10/32", true)
	s := l.scrape()
	if v := s.count("lvsd_vrrp_transitions_total", "vrrp_instance", "vi1", "to", "master"); v != 2 {
		t.Errorf("lvsd_vrrp_transitions_total{to=master} = %v, want 2", v)
	}
	if v := s.count("lvsd_vrrp_transitions_total", "vrrp_instance", "vi1", "to", "backup"); v < 2 {
		t.Errorf("lvsd_vrrp_transitions_total{to=backup} = %v, want >= 2 (start, giveup)", v)
	}
	if v := s.count("lvsd_vrrp_adverts_sent_total", "vrrp_instance", "vi1"); v < 1 || v > float64(l.vrrp.sent.Load()) {
		t.Errorf("lvsd_vrrp_adverts_sent_total = %v, the segment saw %d", v, l.vrrp.sent.Load())
	}
	if v := s.value("lvsd_vrrp_master_priority", "vrrp_instance", "vi1"); v != 254 {
		t.Errorf("lvsd_vrrp_master_priority after takeover = %v, want 254", v)
	}
	if err := l.client().Giveup(ctx, "nosuch"); err == nil || !strings.Contains(err.Error(), "nosuch") {
		t.Errorf("giveup nosuch: %v", err)
	}
}

// waitVRRP waits for vi1 to be in state, in the status and in
// lvsd_vrrp_state.
func (l *lab) waitVRRP(state string, gauge float64) {
	l.t.Helper()
	l.eventually("vi1 "+state, func() error {
		if v := l.scrape().value("lvsd_vrrp_state", "vrrp_instance", "vi1"); v != gauge {
			return fmt.Errorf("lvsd_vrrp_state = %v", v)
		}
		if st := l.status(); len(st.VRRP) != 1 || st.VRRP[0].State != state {
			return fmt.Errorf("status %+v", st.VRRP)
		}
		return nil
	})
}

// tableHasRow says whether some line's fields start with want.
func tableHasRow(table string, want []string) bool {
	for _, line := range strings.Split(table, "\n") {
		f := strings.Fields(line)
		if len(f) >= len(want) && slices.Equal(f[:len(want)], want) {
			return true
		}
	}
	return false
}
