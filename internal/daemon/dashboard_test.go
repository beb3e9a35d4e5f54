package daemon

import (
	"encoding/json"
	"log/slog"
	"net/netip"
	"os"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/lvsd/lvsd/config"
	"github.com/lvsd/lvsd/director"
	"github.com/lvsd/lvsd/vrrp"
)

const dashboardPath = "../../examples/grafana/lvsd.json"

// grafanaDashboard is the part of Grafana's dashboard model the test reads.
type grafanaDashboard struct {
	SchemaVersion int            `json:"schemaVersion"`
	UID           string         `json:"uid"`
	Title         string         `json:"title"`
	Panels        []grafanaPanel `json:"panels"`
	Templating    struct {
		List []struct {
			Name       string          `json:"name"`
			Type       string          `json:"type"`
			Query      json.RawMessage `json:"query"`
			Datasource *grafanaDS      `json:"datasource"`
		} `json:"list"`
	} `json:"templating"`
	Annotations struct {
		List []struct {
			Name string `json:"name"`
			Expr string `json:"expr"`
		} `json:"list"`
	} `json:"annotations"`
}

type grafanaDS struct {
	Type string `json:"type"`
	UID  string `json:"uid"`
}

type grafanaPanel struct {
	ID         int        `json:"id"`
	Type       string     `json:"type"`
	Title      string     `json:"title"`
	Datasource *grafanaDS `json:"datasource"`
	GridPos    struct{ H, W, X, Y int }
	Panels     []grafanaPanel `json:"panels"` // of a collapsed row
	Targets    []struct {
		RefID      string     `json:"refId"`
		Expr       string     `json:"expr"`
		Datasource *grafanaDS `json:"datasource"`
	} `json:"targets"`
}

func loadDashboard(t *testing.T) grafanaDashboard {
	t.Helper()
	data, err := os.ReadFile(dashboardPath)
	if err != nil {
		t.Fatal(err)
	}
	var d grafanaDashboard
	dec := json.NewDecoder(strings.NewReader(string(data)))
	if err := dec.Decode(&d); err != nil {
		t.Fatalf("%s: %v", dashboardPath, err)
	}
	return d
}

// dashboardQuery is one PromQL expression and where it sits.
type dashboardQuery struct{ where, expr string }

func (d grafanaDashboard) queries(t *testing.T) []dashboardQuery {
	var out []dashboardQuery
	var walk func([]grafanaPanel)
	walk = func(ps []grafanaPanel) {
		for _, p := range ps {
			for _, tg := range p.Targets {
				out = append(out, dashboardQuery{"panel " + p.Title + " " + tg.RefID, tg.Expr})
			}
			walk(p.Panels)
		}
	}
	walk(d.Panels)
	for _, a := range d.Annotations.List {
		if a.Expr != "" {
			out = append(out, dashboardQuery{"annotation " + a.Name, a.Expr})
		}
	}
	for _, v := range d.Templating.List {
		if v.Type != "query" {
			continue
		}
		var q struct{ Query string }
		if err := json.Unmarshal(v.Query, &q); err != nil {
			if err := json.Unmarshal(v.Query, &q.Query); err != nil {
				t.Fatalf("variable %s: query is neither a string nor an object: %s", v.Name, v.Query)
			}
		}
		out = append(out, dashboardQuery{"variable " + v.Name, variableSelector(q.Query)})
	}
	return out
}

// variableSelector returns the series selector of a Grafana variable
// query: label_values(SELECTOR, label) or query_result(EXPR); the label
// names after it are not metrics.
func variableSelector(q string) string {
	q = strings.TrimSpace(q)
	for _, fn := range []string{"label_values(", "query_result("} {
		if !strings.HasPrefix(q, fn) || !strings.HasSuffix(q, ")") {
			continue
		}
		inner := q[len(fn) : len(q)-1]
		if fn == "query_result(" {
			return inner
		}
		// The selector ends at the last comma outside braces; a lone
		// argument is a label name, which is no metric.
		depth, cut := 0, -1
		for i, r := range inner {
			switch r {
			case '{':
				depth++
			case '}':
				depth--
			case ',':
				if depth == 0 {
					cut = i
				}
			}
		}
		if cut < 0 {
			return ""
		}
		return inner[:cut]
	}
	return q
}

var (
	promStrings    = regexp.MustCompile("\"(?:[^\"\\\\]|\\\\.)*\"|'(?:[^'\\\\]|\\\\.)*'|`[^`]*`")
	promMatchers   = regexp.MustCompile(`\{[^{}]*\}`)
	promRanges     = regexp.MustCompile(`\[[^\[\]]*\]`)
	promLabelLists = regexp.MustCompile(`\b(by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)`)
	promVariables  = regexp.MustCompile(`\$\{[^}]*\}|\$\w+`)
	promTokens     = regexp.MustCompile(`[0-9][0-9a-zA-Z_.]*|[a-zA-Z_:][a-zA-Z0-9_:]*`)
	promKeywords   = []string{"and", "or", "unless", "bool", "offset", "by", "without", "on", "ignoring",
		"group_left", "group_right", "inf", "nan", "atan2", "start", "end"}
)

// metricNames returns the metric names a PromQL expression selects. It is
// a lexer, not a parser: it drops strings, label matchers, ranges and
// label lists, then takes every identifier that is not a keyword, a number
// or a function (an identifier followed by "(").
func metricNames(expr string) []string {
	s := promStrings.ReplaceAllString(expr, `""`)
	s = promVariables.ReplaceAllString(s, " ")
	s = promMatchers.ReplaceAllString(s, " ")
	s = promRanges.ReplaceAllString(s, " ")
	s = promLabelLists.ReplaceAllString(s, " ")
	var out []string
	for _, loc := range promTokens.FindAllStringIndex(s, -1) {
		tok := s[loc[0]:loc[1]]
		rest := strings.TrimLeft(s[loc[1]:], " \t\n")
		switch {
		case tok[0] >= '0' && tok[0] <= '9':
		case strings.HasPrefix(rest, "("):
		case slices.Contains(promKeywords, strings.ToLower(tok)):
		default:
			if !slices.Contains(out, tok) {
				out = append(out, tok)
			}
		}
	}
	return out
}

func TestMetricNamesFromPromQL(t *testing.T) {
	for _, tc := range []struct {
		expr string
		want []string
	}{
		{`up`, []string{"up"}},
		{`lvsd_realserver_up{instance=~"$node", service=~"$service"}`, []string{"lvsd_realserver_up"}},
		{`sum by (instance, service) (rate(lvsd_service_connections_total{instance=~"$node"}[$__rate_interval]))`, []string{"lvsd_service_connections_total"}},
		{`histogram_quantile(0.99, sum by (le) (rate(a_bucket[5m]))) / on(instance) group_left(version) b_info`, []string{"a_bucket", "b_info"}},
		{`sum(rate(x_sum[1m])) by (le) / sum(rate(x_count[1m])) without (job) > bool 0.5`, []string{"x_sum", "x_count"}},
		{`m1 * 1e3 + m2 offset 1h unless m3 and on() vector(1)`, []string{"m1", "m2", "m3"}},
		{`process_resident_memory_bytes / 2^20`, []string{"process_resident_memory_bytes"}},
		{`count(m{label="a(b) or c {d}"})`, []string{"m"}},
		{`label_replace(metric_a, "dst", "$1", "src", "(.*)")`, []string{"metric_a"}},
		{`sum(lvsd:recorded:rate5m)`, []string{"lvsd:recorded:rate5m"}},
	} {
		if got := metricNames(tc.expr); !slices.Equal(got, tc.want) {
			t.Errorf("metricNames(%q) = %q, want %q", tc.expr, got, tc.want)
		}
	}
	for q, want := range map[string]string{
		`label_values(lvsd_build_info, instance)`:               "lvsd_build_info",
		`label_values(m{a=~"$x", b="1,2"}, service)`:            `m{a=~"$x", b="1,2"}`,
		`label_values(instance)`:                                "",
		`query_result(topk(3, lvsd_service_connections_total))`: "topk(3, lvsd_service_connections_total)",
		`lvsd_service_connections_total{instance="a"}`:          `lvsd_service_connections_total{instance="a"}`,
	} {
		if got := variableSelector(q); got != want {
			t.Errorf("variableSelector(%q) = %q, want %q", q, got, want)
		}
	}
}

// recordingRegisterer registers on a real registry and keeps every
// collector, so the test can ask each one what it describes.
type recordingRegisterer struct {
	prometheus.Registerer
	seen *[]prometheus.Collector
}

func (r recordingRegisterer) Register(c prometheus.Collector) error {
	if err := r.Registerer.Register(c); err != nil {
		return err
	}
	*r.seen = append(*r.seen, c)
	return nil
}

func (r recordingRegisterer) MustRegister(cs ...prometheus.Collector) {
	for _, c := range cs {
		if err := r.Register(c); err != nil {
			panic(err)
		}
	}
}

var descName = regexp.MustCompile(`fqName: "([^"]+)"`)

// exportedMetricNames builds a daemon with services, checks and VRRP and
// lists every series name its collectors describe, with the _bucket, _sum
// and _count series of histograms and summaries.
func exportedMetricNames(t *testing.T) map[string]bool {
	t.Helper()
	c := newLabConfig(t)
	c.Extra = labVRRP
	path := c.Dir + "/lvsd.toml"
	if err := os.WriteFile(path, []byte(c.render(t)), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	var collectors []prometheus.Collector
	seg := &loneSegment{}
	_, err = New(cfg, WithLogger(slog.New(slog.DiscardHandler)), WithIPVS(director.NewFake()), WithoutHostSetup(),
		WithAddresses(&fakeAddrs{held: map[string][]netip.Prefix{}}),
		WithVRRP(vrrp.Options{Transport: seg, Links: upLinks{}, Announcer: seg}),
		WithMetrics(func(r prometheus.Registerer) prometheus.Registerer {
			return recordingRegisterer{r, &collectors}
		}))
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, col := range collectors {
		kind := ""
		switch col.(type) {
		case *prometheus.HistogramVec:
			kind = "histogram"
		case *prometheus.SummaryVec:
			kind = "summary"
		}
		// Collectors that already hold series say their type themselves.
		ch := make(chan prometheus.Metric, 1000)
		col.Collect(ch)
		close(ch)
		kinds := map[string]string{}
		for m := range ch {
			var pb dto.Metric
			if err := m.Write(&pb); err != nil {
				t.Fatal(err)
			}
			name := descName.FindStringSubmatch(m.Desc().String())[1]
			switch {
			case pb.Histogram != nil:
				kinds[name] = "histogram"
			case pb.Summary != nil:
				kinds[name] = "summary"
			}
		}
		dch := make(chan *prometheus.Desc, 1000)
		col.Describe(dch)
		close(dch)
		for d := range dch {
			m := descName.FindStringSubmatch(d.String())
			if m == nil {
				t.Fatalf("cannot read the name of %s", d)
			}
			name := m[1]
			names[name] = true
			k := kind
			if kinds[name] != "" {
				k = kinds[name]
			}
			switch k {
			case "histogram":
				names[name+"_bucket"], names[name+"_sum"], names[name+"_count"] = true, true, true
			case "summary":
				names[name+"_sum"], names[name+"_count"] = true, true
			}
		}
	}
	return names
}

// TestDashboardQueriesOnlyExportedMetrics is the promise that the shipped
// dashboard has no panel that stays empty because it asks for a metric
// lvsd does not export (a rename, a typo).
func TestDashboardQueriesOnlyExportedMetrics(t *testing.T) {
	d := loadDashboard(t)
	exported := exportedMetricNames(t)
	for _, must := range []string{"lvsd_realserver_up", "lvsd_check_duration_seconds_bucket", "lvsd_vrrp_state",
		"lvsd_service_connections_total", "lvsd_backend_connections_active", "lvsd_build_info"} {
		if !exported[must] {
			t.Fatalf("the collectors do not describe %s; the enumeration is broken (have %d names)", must, len(exported))
		}
	}

	used := map[string]bool{}
	qs := d.queries(t)
	if len(qs) < 20 {
		t.Fatalf("only %d queries found in the dashboard", len(qs))
	}
	for _, q := range qs {
		names := metricNames(q.expr)
		if len(names) == 0 {
			t.Errorf("%s: no metric in %q", q.where, q.expr)
		}
		for _, n := range names {
			used[n] = true
			if !exported[n] {
				t.Errorf("%s queries %s, which lvsd does not export (expr %q)", q.where, n, q.expr)
			}
		}
	}

	// What the issue asks the dashboard to show.
	for _, n := range []string{
		"lvsd_service_connections_total", "lvsd_service_incoming_bytes_total", "lvsd_service_outgoing_bytes_total",
		"lvsd_backend_connections_active", "lvsd_realserver_up", "lvsd_backend_weight", "lvsd_vrrp_state",
		"lvsd_check_duration_seconds_bucket", "lvsd_reconcile_passes_total", "lvsd_ipvs_ops_total",
		"lvsd_drift_repairs_total", "lvsd_ipvs_op_errors_total", "lvsd_config_last_reload_successful",
	} {
		if !used[n] {
			t.Errorf("the dashboard does not show %s", n)
		}
	}
	var unused []string
	for n := range exported {
		if strings.HasPrefix(n, "lvsd_") && !used[n] && !used[n+"_bucket"] && !used[n+"_sum"] &&
			!strings.HasSuffix(n, "_sum") && !strings.HasSuffix(n, "_count") && !strings.HasSuffix(n, "_bucket") {
			unused = append(unused, n)
		}
	}
	sort.Strings(unused)
	if len(unused) > 0 {
		t.Logf("lvsd metrics without a panel: %v", unused)
	}
}

// TestDashboardIsImportable checks what Grafana needs to import the file
// and what makes it work on any Prometheus: a datasource variable every
// panel uses, and a node variable every query filters on.
func TestDashboardIsImportable(t *testing.T) {
	d := loadDashboard(t)
	if d.SchemaVersion < 36 || d.UID == "" || d.Title == "" {
		t.Errorf("schemaVersion %d, uid %q, title %q", d.SchemaVersion, d.UID, d.Title)
	}
	vars := map[string]string{}
	for _, v := range d.Templating.List {
		vars[v.Name] = v.Type
		if v.Type == "query" && (v.Datasource == nil || v.Datasource.UID != "${datasource}") {
			t.Errorf("variable %s does not use the datasource variable", v.Name)
		}
	}
	if vars["datasource"] != "datasource" || vars["node"] != "query" {
		t.Errorf("variables %v: want datasource (type datasource) and node (type query)", vars)
	}
	ids := map[int]bool{}
	types := map[string]int{}
	var walk func([]grafanaPanel)
	walk = func(ps []grafanaPanel) {
		for _, p := range ps {
			if ids[p.ID] {
				t.Errorf("panel id %d used twice", p.ID)
			}
			ids[p.ID] = true
			types[p.Type]++
			if p.GridPos.W < 1 || p.GridPos.X+p.GridPos.W > 24 || p.GridPos.H < 1 {
				t.Errorf("panel %q: gridPos %+v outside the 24-column grid", p.Title, p.GridPos)
			}
			if p.Type == "row" {
				walk(p.Panels)
				continue
			}
			if p.Datasource == nil || p.Datasource.UID != "${datasource}" || len(p.Targets) == 0 {
				t.Errorf("panel %q: datasource %+v, %d targets", p.Title, p.Datasource, len(p.Targets))
			}
			for _, tg := range p.Targets {
				if !strings.Contains(tg.Expr, `instance=~"$node"`) {
					t.Errorf("panel %q %s: query does not filter on $node: %s", p.Title, tg.RefID, tg.Expr)
				}
			}
		}
	}
	walk(d.Panels)
	if types["state-timeline"] == 0 || types["row"] < 5 {
		t.Errorf("panel types %v: want state-timeline panels and a row per section", types)
	}
	vrrpTimeline := false
	for _, p := range d.Panels {
		for _, tg := range p.Targets {
			if p.Type == "state-timeline" && slices.Contains(metricNames(tg.Expr), "lvsd_vrrp_state") {
				vrrpTimeline = true
			}
		}
	}
	if !vrrpTimeline {
		t.Error("no state-timeline panel on lvsd_vrrp_state")
	}
}
