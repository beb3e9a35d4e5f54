package checks

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/lvsd/lvsd/config"
)

// HTTPSettings are the keys of http and https checks: one request, whose
// status and body are judged.
type HTTPSettings struct {
	Method string `toml:"method"` // default GET
	Path   string `toml:"path"`   // default "/"
	Host   string `toml:"host"`   // Host header
	// ExpectStatus entries are codes or ranges: "200", "200-399". Default "200-399".
	ExpectStatus  []string `toml:"expect_status"`
	ExpectBody    string   `toml:"expect_body"` // regexp
	TLSServerName string   `toml:"tls_server_name"`
	CAFile        string   `toml:"ca_file"`
	TLSSkipVerify bool     `toml:"tls_skip_verify"`
	MaxBody       int64    `toml:"max_body"` // bytes read at most; default 64 KiB

	https  bool          // set by the registry: which of the two types this is
	status []StatusRange // ExpectStatus, parsed by Validate
}

// StatusRange is an inclusive range of HTTP status codes.
type StatusRange struct{ Lo, Hi int }

func (h *HTTPSettings) Defaults(d config.CheckDefaults) {
	if !d.Given("method") {
		h.Method = "GET"
	}
	if !d.Given("path") {
		h.Path = "/"
	}
	if !d.Given("expect_status") {
		h.ExpectStatus = []string{"200-399"}
	}
	if !d.Given("max_body") {
		h.MaxBody = 64 << 10
	}
}

var httpMethod = regexp.MustCompile(`^[A-Z]+$`)

// Validate also parses ExpectStatus, for the prober.
func (h *HTTPSettings) Validate(p *config.Problems) {
	if !httpMethod.MatchString(h.Method) {
		p.Add("method", "invalid method %q (want an upper-case method such as GET or HEAD)", h.Method)
	}
	if !strings.HasPrefix(h.Path, "/") {
		p.Add("path", "%q must start with /", h.Path)
	}
	h.status = nil
	if len(h.ExpectStatus) == 0 {
		p.Add("expect_status", "must list at least one status code or range")
	}
	for _, s := range h.ExpectStatus {
		r, ok := parseStatusRange(s)
		if !ok {
			p.Add("expect_status", "invalid status %q (want a code 100..599 or a range such as \"200-399\")", s)
			break
		}
		h.status = append(h.status, r)
	}
	if h.ExpectBody != "" {
		if _, err := regexp.Compile(h.ExpectBody); err != nil {
			p.Add("expect_body", "%s", regexpError(err))
		}
	}
	if h.MaxBody <= 0 {
		p.Add("max_body", "must be positive")
	}
	// TLS settings on a plain http check would silently do nothing.
	switch {
	case h.https:
	case h.TLSServerName != "":
		p.Add("tls_server_name", "only for https checks")
	case h.CAFile != "":
		p.Add("ca_file", "only for https checks")
	case h.TLSSkipVerify:
		p.Add("tls_skip_verify", "only for https checks")
	}
}

func parseStatusRange(s string) (StatusRange, bool) {
	lo, hi, isRange := strings.Cut(s, "-")
	if !isRange {
		hi = lo
	}
	l, err1 := strconv.Atoi(strings.TrimSpace(lo))
	h, err2 := strconv.Atoi(strings.TrimSpace(hi))
	if err1 != nil || err2 != nil || l < 100 || h > 599 || l > h {
		return StatusRange{}, false
	}
	return StatusRange{Lo: l, Hi: h}, true
}

func (h *HTTPSettings) Port() config.PortUse { return config.PortRequired }

func (h *HTTPSettings) Describe() string {
	what := fmt.Sprintf("%s %s, expect status %s", h.Method, h.Path, strings.Join(h.ExpectStatus, ","))
	if h.ExpectBody != "" {
		what += fmt.Sprintf(", body matching %q", h.ExpectBody)
	}
	return what
}

func (h *HTTPSettings) DedupKey() string { return dedupKey(h) }

// httpChecker issues one request per probe over a fresh connection.
type httpChecker struct {
	client  *http.Client
	url     string
	method  string
	host    string
	status  []StatusRange
	want    string // expect_status as written, for reasons
	body    *regexp.Regexp
	maxBody int64
}

func (h *HTTPSettings) newChecker(c *config.Check, target netip.AddrPort) (Checker, error) {
	scheme := "http"
	if h.https {
		scheme = "https"
	}
	addr := target.String()
	d := dialer(c, "tcp")
	transport := &http.Transport{
		Proxy: nil, // a health check must reach the real server itself
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return d.DialContext(ctx, network, addr)
		},
		// A probe that reused a connection would not notice a server that
		// stopped accepting new ones.
		DisableKeepAlives:  true,
		DisableCompression: true,
		ForceAttemptHTTP2:  false,
	}
	if h.https {
		cfg, err := tlsConfig(h.TLSServerName, hostOnly(h.Host), h.CAFile, h.TLSSkipVerify)
		if err != nil {
			return nil, err
		}
		transport.TLSClientConfig = cfg
	}
	client := &http.Client{
		Transport: transport,
		// A redirect is judged by its own status, as keepalived does.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	var body *regexp.Regexp
	if h.ExpectBody != "" {
		var err error
		if body, err = regexp.Compile(h.ExpectBody); err != nil {
			return nil, fmt.Errorf("expect_body: %w", err) // config refuses it first
		}
	}
	return &httpChecker{
		client:  client,
		url:     scheme + "://" + addr + h.Path,
		method:  h.Method,
		host:    h.Host,
		status:  h.status,
		want:    formatStatus(h.status),
		body:    body,
		maxBody: h.MaxBody,
	}, nil
}

// tlsConfig builds the client TLS settings shared by https and ldaps checks.
func tlsConfig(serverName, fallbackName, caFile string, skipVerify bool) (*tls.Config, error) {
	cfg := &tls.Config{ServerName: serverName, InsecureSkipVerify: skipVerify}
	if cfg.ServerName == "" {
		cfg.ServerName = fallbackName
	}
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return nil, fmt.Errorf("ca_file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("ca_file %s: no PEM certificates", caFile)
		}
		cfg.RootCAs = pool
	}
	return cfg, nil
}

func hostOnly(hostport string) string {
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		return h
	}
	return hostport
}

func (h *httpChecker) Check(ctx context.Context) Result {
	start := time.Now()
	req, err := http.NewRequestWithContext(ctx, h.method, h.url, nil)
	if err != nil {
		return timed(start, failf("config", "%v", err))
	}
	if h.host != "" {
		req.Host = h.host
	}
	req.Header.Set("User-Agent", "lvsd-healthcheck")
	resp, err := h.client.Do(req)
	if err != nil {
		return timed(start, httpFail(ctx, h.method+" "+h.url, err))
	}
	defer resp.Body.Close()
	if !statusIn(resp.StatusCode, h.status) {
		return timed(start, failf("status", "%s %s: got %s, want %s", h.method, h.url, resp.Status, h.want))
	}
	if h.body == nil {
		return timed(start, okf("%s %s: %s", h.method, h.url, resp.Status))
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, h.maxBody))
	if err != nil {
		return timed(start, netFail(ctx, "read body of "+h.url, err))
	}
	if !h.body.Match(data) {
		return timed(start, failf("body", "%s %s: %s, but the first %d bytes of the body do not match %q",
			h.method, h.url, resp.Status, len(data), h.body.String()))
	}
	return timed(start, okf("%s %s: %s, body matches", h.method, h.url, resp.Status))
}

func formatStatus(ranges []StatusRange) string {
	parts := make([]string, len(ranges))
	for i, r := range ranges {
		parts[i] = strconv.Itoa(r.Lo)
		if r.Hi != r.Lo {
			parts[i] += "-" + strconv.Itoa(r.Hi)
		}
	}
	return strings.Join(parts, ",")
}

func statusIn(code int, ranges []StatusRange) bool {
	for _, r := range ranges {
		if code >= r.Lo && code <= r.Hi {
			return true
		}
	}
	return false
}

func httpFail(ctx context.Context, what string, err error) Result {
	var (
		verifyErr *tls.CertificateVerificationError
		hostErr   x509.HostnameError
		authErr   x509.UnknownAuthorityError
		recordErr tls.RecordHeaderError
		alertErr  tls.AlertError
	)
	if errors.As(err, &verifyErr) || errors.As(err, &hostErr) || errors.As(err, &authErr) ||
		errors.As(err, &recordErr) || errors.As(err, &alertErr) {
		return failf("tls", "%s: %v", what, err)
	}
	return netFail(ctx, what, err)
}
