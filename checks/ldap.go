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

func init() { register("ldap", newLDAP) }

var ldapScopes = map[string]int{"base": ldap.ScopeBaseObject, "one": ldap.ScopeSingleLevel, "sub": ldap.ScopeWholeSubtree}

// ldapChecker binds and searches, all under the deadline of one context, so
// a stopped slapd is a timeout and never a hang.
type ldapChecker struct {
	addr   string
	cfg    *config.LDAPCheck
	scope  int
	tls    *tls.Config
	dialer *net.Dialer
}

func newLDAP(c *config.Check, target netip.AddrPort) (Checker, error) {
	l := c.LDAP
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
