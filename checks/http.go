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

func init() {
	register("http", newHTTP)
	register("https", newHTTP)
}

// httpChecker issues one request per probe over a fresh connection.
type httpChecker struct {
	client  *http.Client
	url     string
	method  string
	host    string
	status  []config.StatusRange
	want    string // expect_status as written, for reasons
	body    *regexp.Regexp
	maxBody int64
}

func newHTTP(c *config.Check, target netip.AddrPort) (Checker, error) {
	h := c.HTTP
	scheme := c.Type
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
	if scheme == "https" {
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
		body = regexp.MustCompile(h.ExpectBody) // validated by Prepare
	}
	return &httpChecker{
		client:  client,
		url:     scheme + "://" + addr + h.Path,
		method:  h.Method,
		host:    h.Host,
		status:  h.Status,
		want:    formatStatus(h.Status),
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

func formatStatus(ranges []config.StatusRange) string {
	parts := make([]string, len(ranges))
	for i, r := range ranges {
		parts[i] = strconv.Itoa(r.Lo)
		if r.Hi != r.Lo {
			parts[i] += "-" + strconv.Itoa(r.Hi)
		}
	}
	return strings.Join(parts, ",")
}

func statusIn(code int, ranges []config.StatusRange) bool {
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
