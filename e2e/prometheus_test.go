package e2e

// The dashboard and the alert rules in a real Prometheus: Debian's
// prometheus scrapes two lvsd directors of the active-active lab (which
// also run a VRRP pair) while a real server dies, a forged VRRP packet is
// dropped and the VRRP master fails over and comes back. Then every query
// of examples/grafana/lvsd.json, with its template variables filled in as
// Grafana would, must return data through Prometheus's HTTP API, and the
// shipped alert rules must load and fire on the dead real server.

import (
	"encoding/json"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/ipv4"

	"github.com/lvsd/lvsd/e2e/lab"
	"github.com/lvsd/lvsd/internal/status"
	"github.com/lvsd/lvsd/vrrp"
)

const (
	promAddr   = "10.40.0.1:9090" // on the router, which reaches every director
	promVRID   = 60
	promVIP    = "10.40.0.100"
	promMetric = 9910
	// scrapeInterval is long enough for a scrape (a dump of the kernel
	// table) to finish under the VM's emulated CPU on a loaded host: a
	// scrape that times out marks every series of the target stale.
	scrapeInterval = 5 * time.Second
	// rateInterval stands for Grafana's $__rate_interval, which is at
	// least four scrape intervals.
	rateInterval = "30s"
)

// promDirectorConfig is the ecmp lab's config of d with a metrics listener
// Prometheus can reach, reconcile passes every 2 s and a VRRP instance.
func (l *ecmpLab) promDirectorConfig(d *ecmpDirector, priority int) string {
	cfg := l.lvsdConfig(d)
	cfg = strings.Replace(cfg, `metrics_listen = ""`, fmt.Sprintf("metrics_listen = \"%s:%d\"\nreconcile_interval = \"2s\"", d.ip, promMetric), 1)
	return cfg + fmt.Sprintf(`
[[vrrp]]
name = "vi1"
vrid = %d
interface = "eth0"
priority = %d
advert_interval = "500ms"
vips = ["%s/32"]
`, promVRID, priority, promVIP)
}

func (l *ecmpLab) startPromDirector(d *ecmpDirector, priority int) {
	l.t.Helper()
	cfg := l.write(d.name+".toml", l.promDirectorConfig(d, priority))
	d.lvsd = d.ns.Start(lab.Bin(l.t, "lvsd"), "run", "-config", cfg)
}

// statusOf is `lvsd status -json` of d; ok is false while d does not answer.
func (l *ecmpLab) statusOf(d *ecmpDirector) (status.Report, bool) {
	var st status.Report
	out, err := exec.Command(lab.Bin(l.t, "lvsd"), "status", "-json", "-socket", l.path(d.name+".sock")).Output()
	return st, err == nil && json.Unmarshal(out, &st) == nil
}

// vrrpState is vi1's state on d.
func (l *ecmpLab) vrrpState(d *ecmpDirector) string {
	if st, ok := l.statusOf(d); ok && st.Instance("vi1") != nil {
		return st.Instance("vi1").State
	}
	return ""
}

// drops is how many VRRP packets vi1 on d dropped for reason.
func (l *ecmpLab) drops(d *ecmpDirector, reason string) uint64 {
	if st, ok := l.statusOf(d); ok && st.Instance("vi1") != nil {
		return st.Instance("vi1").Drops[reason]
	}
	return 0
}

// health is the health of real server rs of echo on d.
func (l *ecmpLab) health(d *ecmpDirector, rs string) string {
	if st, ok := l.statusOf(d); ok && st.RealServer("echo", rs) != nil {
		return st.RealServer("echo", rs).Health
	}
	return ""
}

// prometheus runs Debian's prometheus in the router's namespace.
type prometheus struct {
	t      *testing.T
	ns     *lab.NS
	proc   *lab.Proc
	client func(path string, q url.Values) (json.RawMessage, error)
}

func startPrometheus(t *testing.T, l *ecmpLab, targets []string) *prometheus {
	t.Helper()
	bin, err := exec.LookPath("prometheus")
	if err != nil {
		t.Skip("prometheus is not installed (make deps installs it)")
	}
	rules := filepath.Join(lab.RepoRoot(t), "examples/prometheus/lvsd-alerts.yml")
	quoted := make([]string, len(targets))
	for i, tg := range targets {
		quoted[i] = fmt.Sprintf("%q", tg)
	}
	cfg := l.write("prometheus.yml", fmt.Sprintf(`global:
  scrape_interval: %[3]s
  scrape_timeout: %[3]s
  evaluation_interval: %[3]s
rule_files:
  - %[1]q
scrape_configs:
  - job_name: lvsd
    static_configs:
      - targets: [%[2]s]
`, rules, strings.Join(quoted, ", "), scrapeInterval))
	data := l.path("prometheus-data")
	if err := os.MkdirAll(data, 0o755); err != nil {
		t.Fatal(err)
	}
	p := &prometheus{t: t, ns: l.rt}
	p.proc = l.rt.Start(bin, "--config.file="+cfg, "--storage.tsdb.path="+data, "--web.listen-address="+promAddr)
	hc := l.rt.HTTPClient(30 * time.Second)
	p.client = func(path string, q url.Values) (json.RawMessage, error) {
		resp, err := hc.Get("http://" + promAddr + path + "?" + q.Encode())
		if err != nil {
			return nil, err
		}
		defer resp.Body.Close()
		var r struct {
			Status, Error string
			Data          json.RawMessage
		}
		if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
			return nil, fmt.Errorf("%s: %s: %w", path, resp.Status, err)
		}
		if r.Status != "success" {
			return nil, fmt.Errorf("%s: %s: %s", path, r.Status, r.Error)
		}
		return r.Data, nil
	}
	waitFor(t, 3*time.Minute, "prometheus ready", func() bool {
		resp, err := hc.Get("http://" + promAddr + "/-/ready")
		if err == nil {
			resp.Body.Close()
		}
		return err == nil && resp.StatusCode == 200
	})
	return p
}

// query evaluates expr now and returns how many series it gave.
func (p *prometheus) query(expr string) (int, error) {
	data, err := p.client("/api/v1/query", url.Values{"query": {expr}})
	if err != nil {
		return 0, err
	}
	var r struct {
		ResultType string          `json:"resultType"`
		Result     json.RawMessage `json:"result"`
	}
	if err := json.Unmarshal(data, &r); err != nil {
		return 0, err
	}
	if r.ResultType == "scalar" {
		return 1, nil
	}
	var vec []json.RawMessage
	if err := json.Unmarshal(r.Result, &vec); err != nil {
		return 0, err
	}
	return len(vec), nil
}

// queryRange evaluates expr over [start, end] as Grafana draws a panel
// (a range query) and returns how many series have at least one point.
func (p *prometheus) queryRange(expr string, start, end time.Time) (int, error) {
	data, err := p.client("/api/v1/query_range", url.Values{"query": {expr},
		"start": {fmt.Sprint(start.Unix())}, "end": {fmt.Sprint(end.Unix())}, "step": {fmt.Sprint(int(scrapeInterval.Seconds()))}})
	if err != nil {
		return 0, err
	}
	var r struct {
		Result []struct {
			Values []json.RawMessage `json:"values"`
		} `json:"result"`
	}
	if err := json.Unmarshal(data, &r); err != nil {
		return 0, err
	}
	n := 0
	for _, s := range r.Result {
		if len(s.Values) > 0 {
			n++
		}
	}
	return n, nil
}

// dashboardQueries reads every PromQL expression of the shipped dashboard:
// panel targets (rows included), annotations and query variables.
func dashboardQueries(t *testing.T) map[string]string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(lab.RepoRoot(t), "examples/grafana/lvsd.json"))
	if err != nil {
		t.Fatal(err)
	}
	type panel struct {
		Title   string
		Panels  []json.RawMessage
		Targets []struct{ RefID, Expr string }
	}
	var d struct {
		Panels      []json.RawMessage
		Annotations struct{ List []struct{ Name, Expr string } }
		Templating  struct {
			List []struct {
				Name, Type string
				Query      json.RawMessage
			}
		}
	}
	if err := json.Unmarshal(data, &d); err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	var walk func([]json.RawMessage)
	walk = func(ps []json.RawMessage) {
		for _, raw := range ps {
			var p panel
			if err := json.Unmarshal(raw, &p); err != nil {
				t.Fatal(err)
			}
			for _, tg := range p.Targets {
				out["panel "+p.Title+" "+tg.RefID] = tg.Expr
			}
			walk(p.Panels)
		}
	}
	walk(d.Panels)
	for _, a := range d.Annotations.List {
		if a.Expr != "" {
			out["annotation "+a.Name] = a.Expr
		}
	}
	for _, v := range d.Templating.List {
		if v.Type != "query" {
			continue
		}
		var q struct{ Query string }
		if json.Unmarshal(v.Query, &q) != nil {
			_ = json.Unmarshal(v.Query, &q.Query)
		}
		// label_values(SELECTOR, label): Grafana asks for the selector's
		// series; the label is not part of the query.
		sel := strings.TrimSuffix(strings.TrimPrefix(q.Query, "label_values("), ")")
		if i := strings.LastIndex(sel, ","); i >= 0 {
			sel = sel[:i]
		}
		out["variable "+v.Name] = sel
	}
	return out
}

// grafanaExpr fills the template variables as Grafana does with "All"
// selected: $node and $service match every value.
func grafanaExpr(expr string) string {
	return strings.NewReplacer(`$__rate_interval`, rateInterval, `$__interval`, "5s",
		`"$node"`, `".+"`, `"$service"`, `".*"`, `${node}`, `.+`, `${service}`, `.*`).Replace(expr)
}

// forgeAdvert sends, from the router's namespace, a VRRP advert for the
// pair's VRID with TTL 1: every director must drop it (RFC 5798 7.1).
func forgeAdvert(t *testing.T, from *lab.NS, src string) {
	t.Helper()
	ad := vrrp.Advert{VRID: promVRID, Priority: 254, Interval: 500 * time.Millisecond, Addrs: []netip.Addr{netip.MustParseAddr(promVIP)}}
	dst := netip.MustParseAddr("224.0.0.18")
	payload, err := ad.Encode(netip.MustParseAddr(src), dst, vrrp.ChecksumRFC5798)
	if err != nil {
		t.Fatal(err)
	}
	err = from.Do(func() error {
		c, err := net.ListenPacket("ip4:112", src)
		if err != nil {
			return err
		}
		defer c.Close()
		ifi, err := net.InterfaceByName("eth0")
		if err != nil {
			return err
		}
		pc := ipv4.NewPacketConn(c)
		if err := pc.SetMulticastInterface(ifi); err != nil {
			return err
		}
		if err := pc.SetMulticastTTL(1); err != nil {
			return err
		}
		for range 3 {
			if _, err := c.WriteTo(payload, &net.IPAddr{IP: dst.AsSlice()}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("forged advert: %v", err)
	}
}

func TestPrometheusDashboardAndAlerts(t *testing.T) {
	l := newECMPLab(t)
	d1, d2 := l.dirs[0], l.dirs[1]
	for i, d := range []*ecmpDirector{d1, d2} {
		d.bird = l.startBIRD(d.ns, d.name, l.directorBIRDConfig(d))
		l.startPromDirector(d, 150-50*i)
	}
	l.waitNexthops(2*time.Minute, "d1", "d2")
	waitFor(t, time.Minute, "d1 VRRP master, d2 backup", func() bool { return l.vrrpState(d1) == "master" && l.vrrpState(d2) == "backup" })

	targets := []string{fmt.Sprintf("%s:%d", d1.ip, promMetric), fmt.Sprintf("%s:%d", d2.ip, promMetric)}
	prom := startPrometheus(t, l, targets)
	promStart := time.Now()
	waitFor(t, time.Minute, "prometheus scrapes both directors", func() bool {
		n, err := prom.query(`up{job="lvsd"} == 1`)
		return err == nil && n == 2
	})

	// Traffic through the VIP, spread over both directors by the router.
	for i := range 40 {
		c, err := l.client.Dial("tcp", net.JoinHostPort(ecmpVIP, fmt.Sprint(ecmpPort)), 3*time.Second)
		if err != nil {
			t.Fatalf("connection %d to the VIP: %v", i, err)
		}
		fmt.Fprintf(c, "hello %d\n", i)
		buf := make([]byte, 64)
		_ = c.SetReadDeadline(time.Now().Add(3 * time.Second))
		if _, err := c.Read(buf); err != nil {
			t.Fatalf("connection %d to the VIP: no echo: %v", i, err)
		}
		c.Close()
	}

	// A real server dies; a forged advert is dropped; the VRRP master
	// fails over (SIGTERM: it resigns) and comes back (preempts).
	dead := "10.40.0.23:80"
	l.rsProc[2].Stop()
	waitFor(t, time.Minute, "both directors drop a forged advert for its TTL (status drops)", func() bool {
		forgeAdvert(t, l.rt, "10.40.0.1")
		return l.drops(d1, "ttl") > 0 && l.drops(d2, "ttl") > 0
	})
	// A reload, for the dashboard's reload annotation.
	if out, err := exec.Command(lab.Bin(t, "lvsd"), "reload", "-socket", l.path(d2.name+".sock")).CombinedOutput(); err != nil {
		t.Fatalf("lvsd reload on d2: %v: %s", err, out)
	}
	d1.lvsd.Stop()
	waitFor(t, time.Minute, "d2 takes over", func() bool { return l.vrrpState(d2) == "master" })
	waitFor(t, time.Minute, "prometheus saw d2 master", func() bool {
		n, err := prom.query(fmt.Sprintf(`lvsd_vrrp_state{instance="%s", vrrp_instance="vi1"} == 2`, targets[1]))
		return err == nil && n == 1
	})
	l.startPromDirector(d1, 150)
	waitFor(t, time.Minute, "d1 master again", func() bool { return l.vrrpState(d1) == "master" && l.vrrpState(d2) == "backup" })
	waitFor(t, time.Minute, "prometheus saw d1 master again", func() bool {
		n, err := prom.query(fmt.Sprintf(`lvsd_vrrp_state{instance="%s", vrrp_instance="vi1"} == 2`, targets[0]))
		return err == nil && n == 1
	})

	// The status page of both directors against the real table, over
	// HTTP, and once in Chromium.
	want := map[string]string{"10.40.0.21:80": "up", "10.40.0.22:80": "up", dead: "down"}
	waitFor(t, time.Minute, "d1 judged every real server again", func() bool {
		return l.health(d1, dead) == "down" && l.health(d1, "10.40.0.21:80") == "up" && l.health(d1, "10.40.0.22:80") == "up"
	})
	for _, tg := range targets {
		checkStatusPage(t, l.rt, tg, want)
	}
	// Every dashboard query returns data; they are retried while the rate
	// windows fill after the failover.
	queries := dashboardQueries(t)
	if len(queries) < 40 {
		t.Fatalf("only %d queries read from the dashboard", len(queries))
	}
	var where []string
	for w := range queries {
		where = append(where, w)
	}
	slices.Sort(where)
	empty := map[string]string{}
	deadline := time.Now().Add(2 * time.Minute)
	for {
		clear(empty)
		for _, w := range where {
			expr := grafanaExpr(queries[w])
			if n, err := prom.queryRange(expr, promStart, time.Now()); err != nil || n == 0 {
				empty[w] = fmt.Sprintf("%s: %d series, %v", expr, n, err)
			}
		}
		if len(empty) == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(scrapeInterval) // the next scrape; the loop waits on the queries themselves
	}
	for _, w := range where {
		if e, ok := empty[w]; ok {
			t.Errorf("dashboard %s returns no data: %s", w, e)
		}
	}
	t.Logf("%d dashboard queries evaluated in Prometheus over the test's %v, %d without data", len(queries), time.Since(promStart).Round(time.Second), len(empty))

	// What the events left in Prometheus: the failover and the drop.
	for _, c := range []struct{ what, expr string }{
		{"d2 was master during the failover", fmt.Sprintf(`max_over_time(lvsd_vrrp_state{instance="%s"}[10m]) == 2`, targets[1])},
		{"d1 is master again", fmt.Sprintf(`lvsd_vrrp_state{instance="%s"} == 2`, targets[0])},
		{"the forged advert was dropped for its TTL", `max_over_time(lvsd_vrrp_drops_total{reason="ttl"}[10m]) > 0`},
		{"the dead real server is down", fmt.Sprintf(`lvsd_realserver_up{realserver=%q} == 0`, dead)},
		{"the last failure names it", fmt.Sprintf(`lvsd_check_last_failure_info{realserver=%q} == 1`, dead)},
	} {
		// A scrape that timed out under the loaded VM stales a target's
		// series until the next one: wait for the answer.
		var n int
		var err error
		deadline := time.Now().Add(time.Minute)
		for n, err = prom.query(c.expr); (err != nil || n == 0) && time.Now().Before(deadline); n, err = prom.query(c.expr) {
			time.Sleep(scrapeInterval)
		}
		if err != nil || n == 0 {
			t.Errorf("%s: %s gave %d series (%v)", c.what, c.expr, n, err)
		}
	}

	// The shipped rules load, and the dead server's alert is pending or
	// firing on both directors while no VRRP alert is.
	data, err := prom.client("/api/v1/rules", nil)
	if err != nil {
		t.Fatal(err)
	}
	var rules struct {
		Groups []struct {
			Rules []struct{ Name, Health, LastError string }
		}
	}
	if err := json.Unmarshal(data, &rules); err != nil {
		t.Fatal(err)
	}
	loaded := 0
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			loaded++
			if r.Health != "ok" {
				t.Errorf("rule %s: health %s: %s", r.Name, r.Health, r.LastError)
			}
		}
	}
	if loaded < 10 {
		t.Errorf("prometheus loaded %d rules from lvsd-alerts.yml", loaded)
	}
	waitFor(t, time.Minute, "LvsdRealServerDown firing for the dead server on both directors", func() bool {
		data, err := prom.client("/api/v1/alerts", nil)
		if err != nil {
			return false
		}
		var a struct {
			Alerts []struct {
				Labels map[string]string
				State  string
			}
		}
		if json.Unmarshal(data, &a) != nil {
			return false
		}
		on := map[string]bool{}
		for _, al := range a.Alerts {
			if strings.HasPrefix(al.Labels["alertname"], "LvsdVRRP") && al.State == "firing" {
				t.Errorf("%s fires: %v", al.Labels["alertname"], al.Labels)
			}
			if al.Labels["alertname"] == "LvsdRealServerDown" && al.Labels["realserver"] == dead && al.State == "firing" {
				on[al.Labels["instance"]] = true
			}
		}
		return on[targets[0]] && on[targets[1]]
	})

	// Last, as it loads the VM more than anything else: the page in
	// Debian's Chromium against the real table, when asked for.
	if os.Getenv("LVSD_E2E_CHROMIUM") == "" {
		t.Log("the status page was checked over HTTP; LVSD_E2E_CHROMIUM=1 also renders it in Chromium in this VM (minutes under TCG)")
		return
	}
	start := time.Now()
	dom, err := chromiumDOM(t, l.rt, l.dir, "http://"+targets[1]+"/", chromiumTimeout)
	if err != nil {
		t.Fatalf("the status page in Chromium: %v", err)
	}
	t.Logf("Chromium rendered the status page of d2 against the real IPVS table in %v", time.Since(start).Round(time.Second))
	for rs, health := range want {
		if err := rowReads(dom, rs, health); err != nil {
			t.Errorf("the status page in Chromium: %v", err)
		}
	}
	if !strings.Contains(dom, `id="live" class="live">`) {
		t.Errorf("in Chromium the page's script did not run (no live marker):\n%s", tailLines(dom, 40))
	}
}
