package web

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/csv"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/lvsd/lvsd/config"
	"github.com/lvsd/lvsd/internal/status"
)

// fakeDaemon is the Controller: a fixed report, and the verbs it was
// asked to run.
type fakeDaemon struct {
	mu     sync.Mutex
	report status.Report
	calls  []string
}

func (f *fakeDaemon) Status(context.Context) status.Report { return f.report }
func (f *fakeDaemon) Drain(service, rs string, on bool) error {
	f.record(fmt.Sprintf("drain %s %s %v", service, rs, on))
	return nil
}
func (f *fakeDaemon) Takeover(i string) error { f.record("takeover " + i); return nil }
func (f *fakeDaemon) Giveup(i string) error   { f.record("giveup " + i); return nil }
func (f *fakeDaemon) record(c string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, c)
}
func (f *fakeDaemon) called() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.calls)
}

func sampleReport() status.Report {
	now := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	return status.Report{
		Node: "dir-a", Config: "/etc/lvsd/lvsd.toml", Version: "v1.2.3", Time: now,
		LastReload: now.Add(-time.Hour), ReloadOK: true,
		Services: []status.Service{{
			Name: "web", Address: "tcp/192.0.2.10:80", VIP: "192.0.2.10", Port: 80, Protocol: "tcp", Scheduler: "wlc",
			Forwarding: "nat", QuorumUp: true, InKernel: true,
			Rates: &status.Rates{Interval: 1, Conns: 12.5, PacketsIn: 100, PacketsOut: 90, BytesIn: 2048, BytesOut: 1 << 20},
			RealServers: []status.RealServer{
				{Address: "10.0.0.1:80", Health: "up", Weight: 5, KernelWeight: 5, LastResult: "ok", Latency: 1500 * time.Microsecond,
					HealthSince: now.Add(-time.Hour), LastCheck: now.Add(-time.Second), Forwarding: "nat", ActiveConns: 3, InactConns: 7},
				{Address: "10.0.0.2:80", Health: "down", Weight: 3, KernelWeight: -1, LastResult: "failed", Reason: "HTTP 500",
					HealthSince: now.Add(-5 * time.Second), Forwarding: "nat", Failures: 3},
			},
		}},
		VRRP: []status.Instance{{Name: "vi1", VRID: 51, Interface: "eth0", State: "master", Priority: 150, MasterPriority: 150,
			Master: "192.0.2.2", VIPs: []string{"192.0.2.10/32"}, Since: now.Add(-time.Minute), Transitions: 2,
			AdvertsSent: 600, AdvertsReceived: 10, Drops: map[string]uint64{"ttl": 4}}},
		EvictionGuard: &status.Guard{On: false, Held: []status.HeldCheck{}},
	}
}

const testToken = "s3cret-token-0123456789"

func tokenWeb() config.Web {
	return config.Web{Actions: true, TokenFile: "/etc/lvsd/token", TokenSHA256: sha256.Sum256([]byte(testToken))}
}

type testServer struct {
	*httptest.Server
	d    *fakeDaemon
	logs *bytes.Buffer
}

func newServer(t *testing.T, w config.Web) *testServer {
	t.Helper()
	d := &fakeDaemon{report: sampleReport()}
	logs := &bytes.Buffer{}
	log := slog.New(slog.NewTextHandler(logs, nil))
	s := httptest.NewServer(Handler(d, func() config.Web { return w }, log))
	t.Cleanup(s.Close)
	return &testServer{Server: s, d: d, logs: logs}
}

func (s *testServer) get(t *testing.T, path string) (int, string) {
	t.Helper()
	resp, err := http.Get(s.URL + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// post sends a form as a same-origin browser form would (Sec-Fetch-Site:
// same-origin), with extra headers.
func (s *testServer) post(t *testing.T, path string, form url.Values, hdr ...string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest("POST", s.URL+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Sec-Fetch-Site", "same-origin")
	req.Header.Set("Accept", "application/json")
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

var csrfRE = regexp.MustCompile(`name="csrf_token" value="([^"]+)"`)

func TestPageShowsEverything(t *testing.T) {
	s := newServer(t, config.Web{})
	code, body := s.get(t, "/")
	if code != 200 {
		t.Fatalf("GET / = %d", code)
	}
	for _, want := range []string{
		"dir-a", "v1.2.3", // header
		"192.0.2.10:80", "tcp", "wlc", "nat", ">up<", "12.5/s", "190/s", "2.0kB/s in, 1.0MB/s out", // service
		"10.0.0.1:80", "10.0.0.2:80", `<span class="word down">down</span>`, `<span class="word up">up</span>`,
		"HTTP 500", "1.5ms", "not in table", ">failed<", // servers
		"vi1", "VRID 51", "master", "192.0.2.2", "600 / 10", "ttl: 4", // VRRP
		`href="/status"`, `href="/status.csv"`, // the other formats
		"Eviction guard", // a section the page has no layout for
		"off: this page is read-only",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("page lacks %q", want)
		}
	}
	// The down server changed 5 s ago: marked; the up one an hour ago: not.
	if !regexp.MustCompile(`data-key="rs/web/10.0.0.2:80" data-state="down[^"]*" class="changed"`).MatchString(body) {
		t.Error("the server that went down 5 s ago is not marked changed")
	}
	if regexp.MustCompile(`data-key="rs/web/10.0.0.1:80" data-state="[^"]*" class="changed"`).MatchString(body) {
		t.Error("a server up for an hour is marked changed")
	}
}

func TestPageLoadsNothingFromElsewhere(t *testing.T) {
	s := newServer(t, tokenWeb())
	_, body := s.get(t, "/")
	refs := regexp.MustCompile(`(?:src|href)="([^"]*)"`).FindAllStringSubmatch(body, -1)
	if len(refs) == 0 {
		t.Fatal("no references found")
	}
	for _, m := range refs {
		ref := m[1]
		if !strings.HasPrefix(ref, "/") || strings.HasPrefix(ref, "//") {
			t.Errorf("page refers to %q, not a path of its own", ref)
			continue
		}
		if ref == "/status" || ref == "/metrics" {
			continue // served by the daemon's other handlers
		}
		if code, _ := s.get(t, ref); code != 200 {
			t.Errorf("GET %s = %d", ref, code)
		}
	}
	resp, err := http.Get(s.URL + "/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'self'") {
		t.Errorf("Content-Security-Policy = %q", csp)
	}
}

func TestReadOnlyByDefault(t *testing.T) {
	s := newServer(t, config.Web{})
	_, body := s.get(t, "/")
	if strings.Contains(body, "<button") || strings.Contains(body, "<form") {
		t.Error("a read-only page shows a form or a button")
	}
	for _, path := range []string{"/actions/drain", "/actions/takeover", "/", "/status.csv"} {
		code, _ := s.post(t, path, url.Values{"service": {"web"}, "realserver": {"10.0.0.1:80"}, "instance": {"vi1"}},
			"Authorization", "Bearer "+testToken)
		if code != http.StatusForbidden {
			t.Errorf("POST %s with actions off = %d, want 403", path, code)
		}
	}
	if c := s.d.called(); len(c) != 0 {
		t.Errorf("verbs ran with actions off: %v", c)
	}
}

func TestTokenActions(t *testing.T) {
	s := newServer(t, tokenWeb())
	_, body := s.get(t, "/")
	m := csrfRE.FindStringSubmatch(body)
	if m == nil || !strings.Contains(body, `action="/actions/drain"`) || !strings.Contains(body, `action="/actions/giveup"`) {
		t.Fatal("the page with actions on has no drain or give-up form")
	}
	csrf := m[1]
	drain := url.Values{"service": {"web"}, "realserver": {"10.0.0.1:80"}}
	withCSRF := url.Values{"service": {"web"}, "realserver": {"10.0.0.1:80"}, "csrf_token": {csrf}}
	for _, c := range []struct {
		name string
		form url.Values
		hdr  []string
		want int
	}{
		{"no CSRF token, token in the form", url.Values{"service": {"web"}, "realserver": {"10.0.0.1:80"}, "token": {testToken}}, nil, 403},
		{"wrong CSRF token", url.Values{"service": {"web"}, "realserver": {"10.0.0.1:80"}, "csrf_token": {"x" + csrf}, "token": {testToken}}, nil, 403},
		{"wrong bearer token, no CSRF token", drain, []string{"Authorization", "Bearer " + testToken + "x"}, 401},
		{"cross-site", withCSRF, []string{"Authorization", "Bearer " + testToken, "Sec-Fetch-Site", "cross-site"}, 403},
		{"other origin", withCSRF, []string{"Authorization", "Bearer " + testToken, "Sec-Fetch-Site", "", "Origin", "http://evil.example"}, 403},
		{"no token", withCSRF, nil, 401},
		{"wrong token", withCSRF, []string{"Authorization", "Bearer " + testToken + "x"}, 401},
		{"basic instead of token", withCSRF, []string{"Authorization", "Basic YWRtaW46cw=="}, 401},
	} {
		if code, _ := s.post(t, "/actions/drain", c.form, c.hdr...); code != c.want {
			t.Errorf("%s: %d, want %d", c.name, code, c.want)
		}
	}
	if calls := s.d.called(); len(calls) != 0 {
		t.Fatalf("refused requests ran verbs: %v", calls)
	}
	if code, body := s.post(t, "/actions/drain", withCSRF, "Authorization", "Bearer "+testToken); code != 200 {
		t.Fatalf("drain with token: %d %s", code, body)
	}
	// A script: the token in the Authorization header, no page token.
	if code, body := s.post(t, "/actions/undrain", drain, "Authorization", "Bearer "+testToken, "Sec-Fetch-Site", ""); code != 200 {
		t.Fatalf("undrain by a script with the token: %d %s", code, body)
	}
	// The form field, as the no-script confirmation page sends it.
	withToken := url.Values{"instance": {"vi1"}, "csrf_token": {csrf}, "token": {testToken}}
	if code, body := s.post(t, "/actions/giveup", withToken, "Accept", "text/html"); code != http.StatusSeeOther {
		t.Fatalf("give up with the token field: %d %s", code, body)
	}
	if got, want := s.d.called(), []string{"drain web 10.0.0.1:80 true", "drain web 10.0.0.1:80 false", "giveup vi1"}; !slices.Equal(got, want) {
		t.Errorf("verbs = %v, want %v", got, want)
	}
	if strings.Contains(s.logs.String(), testToken) {
		t.Error("the token is in the log")
	}
	if !strings.Contains(s.logs.String(), "status page action refused") || !strings.Contains(s.logs.String(), `msg="status page action" verb=drain`) {
		t.Errorf("actions are not logged:\n%s", s.logs)
	}
}

// A form post without the script and without the token gets a page that
// asks for it, carrying the same action.
func TestTokenConfirmationPage(t *testing.T) {
	s := newServer(t, tokenWeb())
	_, body := s.get(t, "/")
	csrf := csrfRE.FindStringSubmatch(body)[1]
	code, page := s.post(t, "/actions/drain", url.Values{"service": {"web"}, "realserver": {"10.0.0.2:80"}, "csrf_token": {csrf}}, "Accept", "text/html")
	if code != 401 {
		t.Fatalf("code %d", code)
	}
	for _, want := range []string{`action="/actions/drain"`, `name="token" type="password"`, `value="10.0.0.2:80"`, `value="` + csrf + `"`} {
		if !strings.Contains(page, want) {
			t.Errorf("confirmation page lacks %s", want)
		}
	}
}

func TestBasicAuthActions(t *testing.T) {
	hash, err := bcrypt.GenerateFromPassword([]byte("pa55word"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	s := newServer(t, config.Web{Actions: true, User: "ops", PasswordHash: string(hash)})
	_, body := s.get(t, "/")
	csrf := csrfRE.FindStringSubmatch(body)[1]
	form := url.Values{"instance": {"vi1"}, "csrf_token": {csrf}}
	req := func(user, pass string) int {
		r, _ := http.NewRequest("POST", s.URL+"/actions/takeover", strings.NewReader(form.Encode()))
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		r.Header.Set("Accept", "application/json")
		if user != "" {
			r.SetBasicAuth(user, pass)
		}
		resp, err := http.DefaultClient.Do(r)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode == 401 && !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Basic ") {
			t.Errorf("401 without a Basic challenge: %q", resp.Header.Get("WWW-Authenticate"))
		}
		return resp.StatusCode
	}
	if c := req("", ""); c != 401 {
		t.Errorf("no credential: %d", c)
	}
	if c := req("ops", "wrong"); c != 401 {
		t.Errorf("wrong password: %d", c)
	}
	if c := req("root", "pa55word"); c != 401 {
		t.Errorf("wrong user: %d", c)
	}
	if len(s.d.called()) != 0 {
		t.Fatal("a refused request ran a verb")
	}
	if c := req("ops", "pa55word"); c != 200 {
		t.Errorf("right credential: %d", c)
	}
	if got := s.d.called(); !slices.Equal(got, []string{"takeover vi1"}) {
		t.Errorf("verbs = %v", got)
	}
	if strings.Contains(s.logs.String(), "pa55word") {
		t.Error("the password is in the log")
	}
}

func TestCSV(t *testing.T) {
	s := newServer(t, config.Web{})
	code, body := s.get(t, "/status.csv")
	if code != 200 {
		t.Fatalf("GET /status.csv = %d", code)
	}
	rows, err := csv.NewReader(strings.NewReader(body)).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 3 || !slices.Equal(rows[0], csvHeader) {
		t.Fatalf("want a header and one row per real server:\n%s", body)
	}
	col := func(row []string, name string) string { return row[slices.Index(csvHeader, name)] }
	if col(rows[1], "realserver") != "10.0.0.1:80" || col(rows[1], "health") != "up" ||
		col(rows[2], "realserver") != "10.0.0.2:80" || col(rows[2], "health") != "down" || col(rows[2], "reason") != "HTTP 500" {
		t.Errorf("rows:\n%s", body)
	}
}

// A field or section the page has no layout for still shows.
func TestUnknownFieldsShow(t *testing.T) {
	type future struct {
		status.Instance
		TrackedWeight int `json:"tracked_weight"`
	}
	if got := extraFields(asJSONMap(future{Instance: sampleReport().VRRP[0], TrackedWeight: 7}), knownInstance...); !slices.Equal(got, []kv{{"Tracked weight", "7"}}) {
		t.Errorf("extra fields = %v", got)
	}
	doc := map[string]any{"node": "x", "resources": []map[string]any{{"name": "drbd0", "state": "primary"}}}
	secs := extraSections(asJSONMap(doc), knownTop...)
	if len(secs) != 1 || secs[0].Title != "Resources" || !strings.Contains(string(secs[0].Body), "<td data-label=\"State\">primary</td>") {
		t.Errorf("sections = %+v", secs)
	}
}
