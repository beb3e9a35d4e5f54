package importer

import (
	"fmt"
	"net/netip"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// ldCheckSpec is what decides the check of one ldirectord virtual (or of
// one real= line with its own request and receive).
type ldCheckSpec struct {
	v                  *ldVirtual
	service, checktype string
	protocol           string
	fwmark             uint32
	vip                netip.Addr
	vport              int
	req, rcv           string
	realLine           ldLine // set when req/rcv come from a real= line
}

const bdiiHint = "ldirectord's LDAP check is a base-scope search that an empty (restarting) BDII passes.\n" +
	"For a BDII, check the data instead: base = \"o=grid\", scope = \"sub\",\n" +
	"filter = \"(|(objectClass=GlueService)(objectClass=GLUE2Service))\", expect_entries = 1."

// vtimer reads a whole-seconds setting of the virtual, else the global one.
func (l *ldmap) seconds(v *ldVirtual, key string) (time.Duration, bool) {
	for _, ln := range v.lines {
		if ln.key == key {
			return l.parseSecs(ln)
		}
	}
	return 0, false
}

func (l *ldmap) globalSeconds(key string) (time.Duration, bool) {
	if ln, ok := l.g[key]; ok {
		return l.parseSecs(ln)
	}
	return 0, false
}

func (l *ldmap) parseSecs(ln ldLine) (time.Duration, bool) {
	n, err := strconv.Atoi(ln.val)
	if err != nil || n <= 0 {
		l.errorf(ln, "invalid value %q (want whole seconds)", ln.val)
		return 0, false
	}
	return time.Duration(n) * time.Second, true
}

// timeouts resolve checktimeout and negotiatetimeout as ldirectord does:
// each is the other's default, then the globals, then 5 s and 30 s.
func (l *ldmap) timeouts(v *ldVirtual) (check, negotiate time.Duration) {
	first := func(keys ...[2]string) (time.Duration, bool) {
		for _, k := range keys {
			var d time.Duration
			var ok bool
			if k[0] == "v" {
				d, ok = l.seconds(v, k[1])
			} else {
				d, ok = l.globalSeconds(k[1])
			}
			if ok {
				return d, true
			}
		}
		return 0, false
	}
	var ok bool
	if check, ok = first([2]string{"v", "checktimeout"}, [2]string{"v", "negotiatetimeout"}, [2]string{"g", "checktimeout"}, [2]string{"g", "negotiatetimeout"}); !ok {
		check = ldCheckTimeout
	}
	if negotiate, ok = first([2]string{"v", "negotiatetimeout"}, [2]string{"v", "checktimeout"}, [2]string{"g", "negotiatetimeout"}, [2]string{"g", "checktimeout"}); !ok {
		negotiate = ldNegotiateTimeout
	}
	return check, negotiate
}

func (l *ldmap) check(c ldCheckSpec, get func(string) (ldLine, bool)) []*table {
	v := c.v
	at := v.ldLine
	if c.realLine.key != "" {
		at = c.realLine
	}
	interval := ldCheckInterval
	if d, ok := l.seconds(v, "checkinterval"); ok {
		interval = d
	} else if d, ok := l.globalSeconds("checkinterval"); ok {
		interval = d
	}
	fall := 1
	if ln, ok := get("failurecount"); ok {
		if n, err := strconv.Atoi(ln.val); err == nil && n > 0 {
			fall = n
		} else {
			l.errorf(ln, "invalid value %q", ln.val)
		}
	}
	checkTO, negTO := l.timeouts(v)
	port := 0
	if ln, ok := get("checkport"); ok {
		if p, err := strconv.Atoi(ln.val); err == nil && p > 0 && p < 65536 {
			port = p
		} else {
			l.errorf(ln, "invalid port %q", ln.val)
		}
	}
	req, rcv := c.req, c.rcv
	if c.realLine.key == "" {
		if ln, ok := get("request"); ok {
			req = unquote(ln.val)
		}
		if ln, ok := get("receive"); ok {
			rcv = unquote(ln.val)
		}
	}
	base := func(typ string, timeout time.Duration) *table {
		t := newTable("", fmt.Sprintf("%s checktype=%s service=%s", at.pos, c.checktype, orNone(c.service)))
		iv := interval
		if timeout >= iv {
			iv = interval + timeout
			l.note(at, Changed, "interval %s: lvsd's timeout (%s) must be shorter than its check interval; ldirectord waited checkinterval (%s) after each check, so this is its longest period",
				formatDuration(iv), formatDuration(timeout), formatDuration(interval))
		}
		t.set("type", typ)
		t.set("interval", iv)
		t.set("timeout", timeout)
		t.set("rise", 1, "ldirectord: up after one good check")
		t.set("fall", fall, "failurecount")
		if port != 0 {
			t.set("port", port, "checkport")
		}
		return t
	}
	used := func(keys ...string) {
		for _, k := range keys {
			if ln, ok := get(k); ok && ln.val != "" {
				l.note(ln, Dropped, "not used by lvsd's %s check", c.service)
			}
		}
	}

	switch ct := c.checktype; {
	case ct == "on":
		return nil
	case ct == "off":
		l.note(at, Changed, "checktype=off: the real servers get weight 0 (in the table, no new connections)")
		return nil
	case ct == "ping":
		if featPing.have {
			return []*table{base("ping", checkTO)}
		}
		l.note(at, Dropped, "checktype=ping: %s; the servers are not checked at all", featPing.lacks())
		return nil
	case ct == "external" || ct == "external-perl":
		ln, ok := get("checkcommand")
		if !ok || ct == "external-perl" {
			l.note(at, Dropped, "checktype=%s: lvsd runs programs, not Perl in-process; the servers are not checked at all", ct)
			return nil
		}
		cmd := unquote(ln.val)
		vaddr, vport := c.vip.String(), strconv.Itoa(c.vport)
		if c.fwmark != 0 {
			vaddr, vport = strconv.FormatUint(uint64(c.fwmark), 10), "0"
		}
		script := fmt.Sprintf(`exec %s %s %s "$LVSD_REALSERVER_IP" "$LVSD_REALSERVER_PORT"`, cmd, shellQuote(vaddr), shellQuote(vport))
		t := base("exec", checkTO)
		t.set("command", []string{"/bin/sh", "-c", script})
		l.note(ln, Changed, "run through /bin/sh with ldirectord's arguments (virtual ip, virtual port, real ip, real port)")
		return []*table{t}
	case ct == "connect":
		if c.protocol == "udp" {
			t := base("udp", checkTO)
			t.set("require_reply", false, "silence passes")
			l.note(at, Changed, "checktype=connect on a UDP service: lvsd sends an empty datagram and fails a server that answers ICMP port unreachable (ldirectord's UDP connect sent nothing and always passed)")
			return []*table{t}
		}
		return []*table{base("tcp", checkTO)}
	case ct == "negotiate" || isDigits(ct):
		if isDigits(ct) {
			l.note(at, Changed, "checktype=%s (connect checks between negotiate checks): lvsd runs the negotiate check every time", ct)
		}
	default:
		l.errorf(at, "invalid checktype %q", ct)
		return nil
	}

	path := req
	if path == "" {
		path = "/"
	} else if !strings.HasPrefix(path, "/") {
		path = "/" + path
	}
	tcpExpect := func(expect, what string) []*table {
		t := base("tcp", negTO)
		if expect != "" {
			t.set("expect", expect, what)
		}
		used("login", "passwd")
		return []*table{t}
	}
	switch c.service {
	case "http", "https":
		t := base(c.service, negTO)
		if ln, ok := get("httpmethod"); ok {
			t.set("method", strings.ToUpper(ln.val))
		}
		t.set("path", path, "request")
		if ln, ok := get("virtualhost"); ok {
			t.set("host", unquote(ln.val), "virtualhost")
		}
		if rcv != "" {
			if _, err := regexp.Compile(rcv); err != nil {
				l.note(at, Dropped, "receive %q is not a Go (RE2) regular expression: %v", rcv, err)
			} else {
				t.set("expect_body", rcv, "receive")
			}
		}
		if c.service == "https" {
			t.set("tls_skip_verify", true, "as ldirectord: set ca_file and remove this to verify the certificate")
		}
		l.note(at, Changed, "lvsd counts a 3xx answer as up without following it; ldirectord followed redirects")
		return []*table{t}
	case "ldap", "ldaps":
		t := base("ldap", negTO)
		t.comments = append(t.comments, bdiiHint)
		t.set("base", strings.TrimPrefix(req, "/"), "request")
		t.set("scope", "base", "ldirectord's search")
		t.set("filter", "(objectClass=*)")
		t.set("expect_entries", 1)
		if c.service == "ldaps" {
			t.set("ldaps", true)
			t.set("tls_skip_verify", true, "as ldirectord")
		}
		if rcv != "" {
			l.note(at, Dropped, "receive %q: lvsd does not match the entry's DN; the search must return an entry", rcv)
		}
		used("login", "passwd")
		l.note(at, Changed, "imported as a base-scope LDAP check, as ldirectord's; an empty BDII passes it (see the comment in the output for a BDII subtree check)")
		return []*table{t}
	case "dns":
		t := base("dns", negTO)
		q := strings.TrimPrefix(req, "/")
		if q == "" {
			q = "."
			l.note(at, Changed, "no request: querying \".\"")
		}
		t.set("query_name", q, "request")
		t.set("query_type", "A")
		if rcv != "" {
			t.set("expect_answer", rcv, "receive")
		}
		l.note(at, Changed, "lvsd's dns check also wants rcode NOERROR and a non-empty answer")
		return []*table{t}
	case "smtp", "submission":
		l.note(at, Changed, "checked as a tcp check that wants the 220 greeting; lvsd sends no HELO")
		return tcpExpect("220", "the SMTP greeting")
	case "ftp":
		used("request", "receive")
		l.note(at, Changed, "checked as a tcp check that wants the 220 greeting; no login, no file fetched")
		return tcpExpect("220", "the FTP greeting")
	case "pop":
		return tcpExpect("+OK", "the POP3 greeting")
	case "imap":
		return tcpExpect("* OK", "the IMAP greeting")
	case "nntp":
		return tcpExpect("20", "the NNTP greeting (200 or 201)")
	case "pops", "imaps":
		l.note(at, Changed, "checked by TCP connect only: lvsd's tcp check speaks no TLS")
		return tcpExpect("", "")
	case "simpletcp":
		t := base("tcp", negTO)
		if req != "" {
			t.set("send", strings.TrimPrefix(req, "/"), "request")
		}
		if rcv != "" {
			t.set("expect", rcv, "receive")
			l.note(at, Changed, "receive %q must be how the reply starts (ldirectord matched it anywhere as a regular expression)", rcv)
		}
		return []*table{t}
	case "mysql", "pgsql", "oracle":
		used("login", "passwd", "database", "request")
		l.note(at, Dropped, "service=%s: lvsd has no SQL check; checked by TCP connect only (an exec check can run a query)", c.service)
		return []*table{base("tcp", negTO)}
	case "radius", "sip":
		used("login", "passwd", "secret")
		l.note(at, Dropped, "service=%s: lvsd has no %s check; checked by a udp probe that fails only on ICMP port unreachable (an exec check can send a real request)", c.service, strings.ToUpper(c.service))
		t := base("udp", negTO)
		t.set("require_reply", false, "silence passes")
		return []*table{t}
	case "http_proxy":
		l.note(at, Dropped, "lvsd has no proxy check; checked by TCP connect only")
		return []*table{base("tcp", negTO)}
	case "none", "":
		return nil // ldirectord's negotiate check of "none" always passes
	}
	l.errorf(at, "invalid service %q", c.service)
	return nil
}

func isDigits(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		if r < '0' || r > '9' {
			return false
		}
	}
	return true
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}
