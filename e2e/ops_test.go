package e2e

// lvsd as operators run it: the real binary in a director namespace, real
// HTTP traffic from a client namespace through the kernel's IPVS, and then
// what /metrics, `lvsd status` and reloads say about it.

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/lvsd/lvsd/e2e/lab"
	"github.com/lvsd/lvsd/internal/status"
)

const opsConfig = `
[director]
name = "e2e-director"
interface = "eth0"
metrics_listen = "127.0.0.1:9910"
control_socket = "%[1]s/lvsd.sock"
reconcile_interval = "2s"

[[service]]
name = "web"
vip = "10.0.1.100"
port = 80
scheduler = "rr"
forwarding = "nat"

  [[service.check]]
  type = "http"
  path = "/healthz"
  interval = "2s"
  timeout = "1500ms"  # the VM's emulated CPU makes a probe take 100-900 ms
  rise = 1
  fall = 3

  [[service.realserver]]
  address = "%[2]s"
  weight = %[4]d

  [[service.realserver]]
  address = "%[3]s"
  weight = 1
`

type opsLab struct {
	*dirLab
	t      *testing.T
	lvsd   string
	dirTmp string
	path   string
	socket string
	proc   *lab.Proc
}

func (o *opsLab) writeConfig(weight1 int) {
	o.t.Helper()
	text := fmt.Sprintf(opsConfig, o.dirTmp, o.reals["rs1"], o.reals["rs2"], weight1)
	if err := os.WriteFile(o.path, []byte(text), 0o644); err != nil {
		o.t.Fatal(err)
	}
}

// metrics scrapes lvsd's /metrics inside the director namespace.
func (o *opsLab) metrics() opsScrape {
	o.t.Helper()
	resp, err := o.dir.HTTPClient(5 * time.Second).Get("http://127.0.0.1:9910/metrics")
	if err != nil {
		o.t.Fatalf("scrape: %v", err)
	}
	defer resp.Body.Close()
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		o.t.Fatalf("parse /metrics: %v", err)
	}
	return fams
}

type opsScrape map[string]*dto.MetricFamily

// get returns the value of the series of name with labels kv (pairs), or
// -1 when there is no such series.
func (s opsScrape) get(name string, kv ...string) float64 {
	f := s[name]
	if f == nil {
		return -1
	}
next:
	for _, m := range f.GetMetric() {
		have := map[string]string{}
		for _, lp := range m.GetLabel() {
			have[lp.GetName()] = lp.GetValue()
		}
		for i := 0; i+1 < len(kv); i += 2 {
			if have[kv[i]] != kv[i+1] {
				continue next
			}
		}
		switch {
		case m.Counter != nil:
			return m.GetCounter().GetValue()
		case m.Gauge != nil:
			return m.GetGauge().GetValue()
		}
		return m.GetUntyped().GetValue()
	}
	return -1
}

func (o *opsLab) eventually(what string, timeout time.Duration, cond func() error) {
	o.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			o.t.Fatalf("%s: %v\n%s", what, err, o.dir.Run("ipvsadm", "-Ln", "--stats"))
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// cli runs bin/lvsd with the lab's control socket (from the test's own
// namespace: the socket is a file, reachable from any namespace).
func (o *opsLab) cli(args ...string) (string, error) {
	args = append(args[:1:1], append([]string{"-socket", o.socket}, args[1:]...)...)
	out, err := exec.Command(o.lvsd, args...).CombinedOutput()
	return string(out), err
}

func TestOpsMetricsStatusReload(t *testing.T) {
	l := natLab(t)
	o := &opsLab{dirLab: l, t: t, lvsd: lab.Bin(t, "lvsd"), dirTmp: t.TempDir()}
	o.path, o.socket = filepath.Join(o.dirTmp, "lvsd.toml"), filepath.Join(o.dirTmp, "lvsd.sock")
	rs1, rs2 := l.rs("rs1"), l.rs("rs2")
	o.writeConfig(1)
	o.proc = l.dir.Start(o.lvsd, "run", "-config", o.path)
	step := func(name string) { t.Logf("--- %s (%s)", name, time.Now().Format("15:04:05")) }

	step("lvsd up: both real servers healthy and in the kernel table")
	o.eventually("both real servers up and in the kernel", 60*time.Second, func() error {
		if o.proc.Exited() {
			t.Fatalf("lvsd exited:\n%s", o.proc.Output())
		}
		s, err := o.tryMetrics()
		if err != nil {
			return err
		}
		for _, rs := range []string{rs1, rs2} {
			if v := s.get("lvsd_realserver_up", "service", "web", "realserver", rs); v != 1 {
				return fmt.Errorf("lvsd_realserver_up{%s} = %v", rs, v)
			}
			if v := s.get("lvsd_backend_weight", "service", "web", "realserver", rs); v != 1 {
				return fmt.Errorf("lvsd_backend_weight{%s} = %v", rs, v)
			}
		}
		return nil
	})
	s := o.metrics()
	for _, tc := range []struct {
		name string
		kv   []string
		want float64
	}{
		{"lvsd_service_connections_total", []string{"service", "web"}, 0},
		{"lvsd_ipvs_ops_total", []string{"op", "new_service"}, 1},
		{"lvsd_ipvs_ops_total", []string{"op", "new_dest"}, 2},
		{"lvsd_config_last_reload_successful", nil, 1},
		{"lvsd_check_transitions_total", []string{"realserver", rs1, "to", "up"}, 1},
		{"lvsd_check_transitions_total", []string{"realserver", rs2, "to", "up"}, 1},
	} {
		if got := s.get(tc.name, tc.kv...); got != tc.want {
			t.Errorf("%s%v = %v, want %v", tc.name, tc.kv, got, tc.want)
		}
	}

	step("real traffic: the kernel's counters reach /metrics")
	const requests = 20
	landed := l.landing(requests)
	if landed["rs1"]+landed["rs2"] != requests {
		t.Fatalf("answers %v", landed)
	}
	// The kernel folds its per-CPU counters into the totals every 2 s.
	o.eventually("connection counters", 30*time.Second, func() error {
		s := o.metrics()
		if v := s.get("lvsd_service_connections_total", "service", "web"); v != requests {
			return fmt.Errorf("lvsd_service_connections_total = %v, want %d", v, requests)
		}
		for name, rs := range map[string]string{"rs1": rs1, "rs2": rs2} {
			if v := s.get("lvsd_backend_connections_total", "service", "web", "realserver", rs); v != float64(landed[name]) {
				return fmt.Errorf("lvsd_backend_connections_total{%s} = %v, %d requests landed there", rs, v, landed[name])
			}
		}
		return nil
	})
	s = o.metrics()
	for _, name := range []string{"lvsd_service_incoming_packets_total", "lvsd_service_outgoing_packets_total",
		"lvsd_service_incoming_bytes_total", "lvsd_service_outgoing_bytes_total"} {
		// Each HTTP exchange is at least a handshake, a request and a reply.
		if v := s.get(name, "service", "web"); v < 2*requests {
			t.Errorf("%s = %v after %d NAT requests", name, v, requests)
		}
	}
	for _, rs := range []string{rs1, rs2} {
		for _, name := range []string{"lvsd_backend_incoming_bytes_total", "lvsd_backend_outgoing_bytes_total",
			"lvsd_backend_incoming_packets_total", "lvsd_backend_outgoing_packets_total"} {
			if v := s.get(name, "service", "web", "realserver", rs); v <= 0 {
				t.Errorf("%s{%s} = %v after traffic", name, rs, v)
			}
		}
	}
	resp, err := l.dir.HTTPClient(5 * time.Second).Get("http://127.0.0.1:9910/status")
	if err == nil {
		resp.Body.Close()
	}
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Errorf("GET /status on the metrics listener: %v %v", resp, err)
	}

	step("lvsd status over the control socket")
	out, err := o.cli("status")
	if err != nil {
		t.Fatalf("lvsd status: %v\n%s", err, out)
	}
	t.Logf("lvsd status:\n%s", out)
	for _, rs := range []string{rs1, rs2} {
		if !hasRow(out, "->", rs, "up", "1", "1") {
			t.Errorf("lvsd status does not show %s up with weight 1 in the kernel", rs)
		}
	}
	out, err = o.cli("status", "-json")
	var st status.Report
	if err != nil || json.Unmarshal([]byte(out), &st) != nil || len(st.Services) != 1 || len(st.Services[0].RealServers) != 2 {
		t.Fatalf("lvsd status -json: %v\n%s", err, out)
	}

	step("SIGHUP with one weight changed: one update_dest, no check restarts")
	before := o.metrics()
	o.writeConfig(3)
	if err := o.proc.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	o.eventually("weight 3 in the kernel", 30*time.Second, func() error {
		if v := o.metrics().get("lvsd_backend_weight", "service", "web", "realserver", rs1); v != 3 {
			return fmt.Errorf("lvsd_backend_weight{%s} = %v", rs1, v)
		}
		return nil
	})
	// Two more passes: anything else the reload changed would show now.
	passes := o.metrics().get("lvsd_reconcile_passes_total", "result", "ok")
	o.eventually("two more reconcile passes", 30*time.Second, func() error {
		if v := o.metrics().get("lvsd_reconcile_passes_total", "result", "ok"); v < passes+2 {
			return fmt.Errorf("lvsd_reconcile_passes_total{result=ok} = %v, want %v", v, passes+2)
		}
		return nil
	})
	after := o.metrics()
	for _, op := range []string{"new_service", "new_dest", "update_service", "update_dest", "del_dest", "del_service"} {
		want := max(before.get("lvsd_ipvs_ops_total", "op", op), 0)
		if op == "update_dest" {
			want++
		}
		if got := max(after.get("lvsd_ipvs_ops_total", "op", op), 0); got != want {
			t.Errorf("lvsd_ipvs_ops_total{op=%s}: %v -> %v after a one-weight reload, want %v", op, before.get("lvsd_ipvs_ops_total", "op", op), got, want)
		}
	}
	for _, rs := range []string{rs1, rs2} {
		for _, to := range []string{"up", "down"} {
			if b, a := before.get("lvsd_check_transitions_total", "realserver", rs, "to", to), after.get("lvsd_check_transitions_total", "realserver", rs, "to", to); a != b {
				t.Errorf("%s transitions to %s: %v -> %v across a reload", rs, to, b, a)
			}
		}
	}
	if v := after.get("lvsd_config_last_reload_successful"); v != 1 {
		t.Errorf("lvsd_config_last_reload_successful = %v after a good reload", v)
	}
	if table := l.dir.Run("ipvsadm", "-Ln"); !hasRow(table, "->", rs1, "Masq", "3") {
		t.Errorf("ipvsadm does not show weight 3 for %s:\n%s", rs1, table)
	}

	step("a bad reload keeps the old config serving")
	if err := os.WriteFile(o.path, []byte("[director]\nname = 7\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := o.cli("reload"); err == nil || !strings.Contains(out, "lvsd.toml:2") {
		t.Errorf("lvsd reload of a bad file: %v\n%s", err, out)
	}
	if v := o.metrics().get("lvsd_config_last_reload_successful"); v != 0 {
		t.Errorf("lvsd_config_last_reload_successful = %v after a rejected reload", v)
	}
	l.expectOnly(6, "rs1", "rs2")
	if out, _ := o.cli("status"); !strings.Contains(out, "FAILED") {
		t.Errorf("lvsd status does not show the rejected reload:\n%s", out)
	}

	step("ipvsadm behind lvsd's back is repaired and counted")
	l.dir.Run("ipvsadm", "-e", "-t", l.vip+":80", "-r", rs2, "-m", "-w", "9")
	o.eventually("drift repaired", 30*time.Second, func() error {
		s := o.metrics()
		if v := s.get("lvsd_drift_repairs_total"); v != 1 {
			return fmt.Errorf("lvsd_drift_repairs_total = %v", v)
		}
		if v := s.get("lvsd_backend_weight", "service", "web", "realserver", rs2); v != 1 {
			return fmt.Errorf("lvsd_backend_weight{%s} = %v", rs2, v)
		}
		return nil
	})

	step("a real server that stops answering is evicted by its checks, and comes back")
	l.dir.Link("set", "rs2", "down") // its bridge port: probes to it time out
	o.eventually("rs2 evicted", 30*time.Second, func() error {
		s := o.metrics()
		if v := s.get("lvsd_realserver_up", "service", "web", "realserver", rs2); v != 0 {
			return fmt.Errorf("lvsd_realserver_up{%s} = %v", rs2, v)
		}
		if v := s.get("lvsd_backend_weight", "service", "web", "realserver", rs2); v != -1 {
			return fmt.Errorf("%s still in the kernel table with weight %v", rs2, v)
		}
		return nil
	})
	s = o.metrics()
	if v := s.get("lvsd_check_transitions_total", "realserver", rs2, "to", "down"); v != 1 {
		t.Errorf("lvsd_check_transitions_total{%s,to=down} = %v, want 1", rs2, v)
	}
	if v := s.get("lvsd_check_last_failure_info", "realserver", rs2, "reason", "timeout"); v != 1 {
		t.Errorf("lvsd_check_last_failure_info{%s,reason=timeout} = %v, want 1", rs2, v)
	}
	l.expectOnly(6, "rs1")
	if out, _ := o.cli("status"); !hasRow(out, "->", rs2, "down", "1", "-") {
		t.Errorf("lvsd status does not show %s down and out of the kernel:\n%s", rs2, out)
	}
	l.dir.Link("set", "rs2", "up")
	o.eventually("rs2 back", 30*time.Second, func() error {
		if v := o.metrics().get("lvsd_backend_weight", "service", "web", "realserver", rs2); v != 1 {
			return fmt.Errorf("lvsd_backend_weight{%s} = %v", rs2, v)
		}
		return nil
	})
	l.expectOnly(6, "rs1", "rs2")

	step("SIGTERM: lvsd exits 0")
	if err := o.proc.Stop(); err != nil {
		t.Errorf("lvsd exit: %v\n%s", err, o.proc.Output())
	}
}

func (o *opsLab) tryMetrics() (opsScrape, error) {
	resp, err := o.dir.HTTPClient(5 * time.Second).Get("http://127.0.0.1:9910/metrics")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	p := expfmt.NewTextParser(model.UTF8Validation)
	return p.TextToMetricFamilies(resp.Body)
}

// hasRow says whether some line of a table starts with the fields want.
func hasRow(table string, want ...string) bool {
	for _, line := range strings.Split(table, "\n") {
		f := strings.Fields(line)
		if len(f) < len(want) {
			continue
		}
		match := true
		for i := range want {
			if f[i] != want[i] {
				match = false
			}
		}
		if match {
			return true
		}
	}
	return false
}
