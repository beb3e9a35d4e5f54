package checks

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strings"
	"time"

	"github.com/go-ldap/ldap/v3"
	"github.com/lvsd/lvsd/config"
)

// LDAPSettings are the keys of an ldap check: bind and search,
// BDII-style with base o=grid and expect_entries >= 1.
type LDAPSettings struct {
	BindDN           string `toml:"bind_dn"`
	BindPasswordFile string `toml:"bind_password_file"`
	Base             string `toml:"base"`
	Scope            string `toml:"scope"`          // base | one | sub; default base
	Filter           string `toml:"filter"`         // default (objectClass=*)
	ExpectEntries    int    `toml:"expect_entries"` // minimum; default 1
	SizeLimit        int    `toml:"size_limit"`     // default max(expect_entries, 1)
	StartTLS         bool   `toml:"starttls"`
	LDAPS            bool   `toml:"ldaps"`
	TLSServerName    string `toml:"tls_server_name"`
	CAFile           string `toml:"ca_file"`
	TLSSkipVerify    bool   `toml:"tls_skip_verify"`
}

func (l *LDAPSettings) Defaults(d config.CheckDefaults) {
	if !d.Given("scope") {
		l.Scope = "base"
	}
	if !d.Given("filter") {
		l.Filter = "(objectClass=*)"
	}
	if !d.Given("expect_entries") {
		l.ExpectEntries = 1
	}
	if !d.Given("size_limit") {
		l.SizeLimit = max(l.ExpectEntries, 1)
	}
}

// Validate refuses DNs and filters go-ldap cannot parse and settings that
// could never pass or would silently be ignored.
func (l *LDAPSettings) Validate(p *config.Problems) {
	if l.Base == "" {
		p.Add("base", `required (e.g. "o=grid")`)
	} else if _, err := ldap.ParseDN(l.Base); err != nil {
		p.Add("base", "invalid DN %q: %v", l.Base, err)
	}
	if l.BindDN != "" {
		if _, err := ldap.ParseDN(l.BindDN); err != nil {
			p.Add("bind_dn", "invalid DN %q: %v", l.BindDN, err)
		}
	}
	if l.BindPasswordFile != "" && l.BindDN == "" {
		p.Add("bind_password_file", "needs bind_dn")
	}
	if _, ok := ldapScopes[l.Scope]; !ok {
		p.Add("scope", "invalid value %q (want base, one or sub)", l.Scope)
	}
	if _, err := ldap.CompileFilter(l.Filter); err != nil {
		p.Add("filter", "invalid filter %q: %v", l.Filter, ldapErrorText(err))
	}
	if l.ExpectEntries < 0 {
		p.Add("expect_entries", "must not be negative")
	}
	switch {
	case l.SizeLimit < 0:
		p.Add("size_limit", "must not be negative")
	case l.SizeLimit > 0 && l.SizeLimit < l.ExpectEntries:
		p.Add("size_limit", "%d is below expect_entries %d, so the check could never pass", l.SizeLimit, l.ExpectEntries)
	}
	if l.StartTLS && l.LDAPS {
		p.Add("starttls", "cannot be combined with ldaps")
	}
	if !l.StartTLS && !l.LDAPS {
		switch {
		case l.TLSServerName != "":
			p.Add("tls_server_name", "only with starttls or ldaps")
		case l.CAFile != "":
			p.Add("ca_file", "only with starttls or ldaps")
		case l.TLSSkipVerify:
			p.Add("tls_skip_verify", "only with starttls or ldaps")
		}
	}
}

// ldapErrorText drops the "LDAP Result Code 201 ..." prefix go-ldap puts
// on filter errors; only its explanation helps an operator.
func ldapErrorText(err error) string {
	if le, ok := err.(*ldap.Error); ok && le.Err != nil {
		return le.Err.Error()
	}
	return err.Error()
}

func (l *LDAPSettings) Port() config.PortUse { return config.PortRequired }

func (l *LDAPSettings) Describe() string {
	what := fmt.Sprintf("search %q scope %s filter %s, expect at least %s", l.Base, l.Scope, l.Filter, plural(l.ExpectEntries, "entry", "entries"))
	if l.StartTLS {
		what += ", starttls"
	}
	if l.LDAPS {
		what += ", ldaps"
	}
	return what
}

func (l *LDAPSettings) DedupKey() string { return dedupKey(l) }

var ldapScopes = map[string]int{"base": ldap.ScopeBaseObject, "one": ldap.ScopeSingleLevel, "sub": ldap.ScopeWholeSubtree}

// ldapChecker binds and searches, all under the deadline of one context, so
// a stopped slapd is a timeout and never a hang.
type ldapChecker struct {
	addr   string
	cfg    *LDAPSettings
	scope  int
	tls    *tls.Config
	dialer *net.Dialer
}

func (l *LDAPSettings) newChecker(c *config.Check, target netip.AddrPort) (Checker, error) {
	var tlsCfg *tls.Config
	if l.StartTLS || l.LDAPS {
		var err error
		// Without tls_server_name the certificate must name the address.
		if tlsCfg, err = tlsConfig(l.TLSServerName, target.Addr().String(), l.CAFile, l.TLSSkipVerify); err != nil {
			return nil, err
		}
	}
	return &ldapChecker{addr: target.String(), cfg: l, scope: ldapScopes[l.Scope], tls: tlsCfg, dialer: dialer(c, "tcp")}, nil
}

func (c *ldapChecker) Check(ctx context.Context) Result {
	start := time.Now()
	raw, err := c.dialer.DialContext(ctx, "tcp", c.addr)
	if err != nil {
		return timed(start, netFail(ctx, "connect "+c.addr, err))
	}
	// The deadline on the socket bounds every read and write go-ldap does,
	// including its background reader; cancellation closes it early.
	stop := watch(ctx, raw)
	defer stop()
	conn := raw
	if c.cfg.LDAPS {
		tc := tls.Client(raw, c.tls)
		if err := tc.HandshakeContext(ctx); err != nil {
			raw.Close()
			return timed(start, failf(tlsOrNet(ctx, err), "ldaps handshake with %s: %v", c.addr, err))
		}
		conn = tc
	}
	l := ldap.NewConn(conn, c.cfg.LDAPS)
	l.Start()
	if d, ok := ctx.Deadline(); ok {
		l.SetTimeout(time.Until(d))
	}
	defer l.Close()
	return timed(start, c.session(ctx, l))
}

func (c *ldapChecker) session(ctx context.Context, l *ldap.Conn) Result {
	if c.cfg.StartTLS {
		if err := l.StartTLS(c.tls); err != nil {
			return failf(tlsOrNet(ctx, err), "starttls with %s: %v", c.addr, err)
		}
	}
	if err := c.bind(l); err != nil {
		return ldapFail(ctx, "bind", "bind to "+c.addr, err)
	}
	req := &ldap.SearchRequest{
		BaseDN:       c.cfg.Base,
		Scope:        c.scope,
		DerefAliases: ldap.NeverDerefAliases,
		SizeLimit:    c.cfg.SizeLimit,
		TypesOnly:    true,
		Filter:       c.cfg.Filter,
		Attributes:   []string{"1.1"}, // no attributes: only count entries
	}
	if d, ok := ctx.Deadline(); ok {
		req.TimeLimit = max(1, int(time.Until(d).Round(time.Second)/time.Second))
	}
	res, err := l.Search(req)
	entries := 0
	if res != nil {
		entries = len(res.Entries)
	}
	what := fmt.Sprintf("search %s base %q scope %s filter %s", c.addr, c.cfg.Base, c.cfg.Scope, c.cfg.Filter)
	switch {
	case err == nil:
	case ldap.IsErrorWithCode(err, ldap.LDAPResultSizeLimitExceeded):
		// The server stopped at size_limit: there are at least that many.
	case ldap.IsErrorWithCode(err, ldap.LDAPResultNoSuchObject):
		return failf("entries", "%s: 0 entries, the base does not exist (an empty or restarting BDII?)", what)
	default:
		return ldapFail(ctx, "search", what, err)
	}
	if entries < c.cfg.ExpectEntries {
		return failf("entries", "%s: %d entries, want at least %d (an empty or restarting BDII?)", what, entries, c.cfg.ExpectEntries)
	}
	return okf("%s: %d entries", what, entries)
}

func (c *ldapChecker) bind(l *ldap.Conn) error {
	if c.cfg.BindDN == "" {
		// An explicit anonymous bind proves the server answers binds.
		return l.UnauthenticatedBind("")
	}
	pw, err := os.ReadFile(c.cfg.BindPasswordFile)
	if err != nil {
		return fmt.Errorf("reading bind_password_file: %w", err)
	}
	return l.Bind(c.cfg.BindDN, strings.TrimRight(string(pw), "\r\n"))
}

// ldapFail names a timeout as such: when the deadline passes, go-ldap
// reports a closed connection or a read error that has lost its type, not
// the context's error, and the socket's deadline can fire a moment before
// the context's.
func ldapFail(ctx context.Context, class, what string, err error) Result {
	if ctx.Err() != nil || deadlinePassed(ctx) || errors.Is(err, os.ErrDeadlineExceeded) ||
		strings.Contains(err.Error(), "i/o timeout") {
		return failf("timeout", "%s: %v", what, err)
	}
	var le *ldap.Error
	if errors.As(err, &le) && le.ResultCode == ldap.ErrorNetwork {
		return failf(netClass(ctx, le.Err), "%s: %v", what, err)
	}
	return failf(class, "%s: %v", what, err)
}

func deadlinePassed(ctx context.Context) bool {
	d, ok := ctx.Deadline()
	return ok && time.Until(d) <= time.Millisecond
}

func tlsOrNet(ctx context.Context, err error) string {
	if c := netClass(ctx, err); c != "io" {
		return c
	}
	return "tls"
}
