package importer

import (
	"encoding/hex"
	"fmt"
	"net/netip"
	"regexp"
	"strings"
	"time"
)

// keepalived's checker defaults (keepalived.conf(5), check/check_*.c).
const (
	kaDelayLoop      = 60 * time.Second
	kaConnectTimeout = 5 * time.Second
)

func kaDefaultRetry(checker string) int {
	switch checker {
	case "MISC_CHECK":
		return 0
	case "DNS_CHECK":
		return 3
	}
	return 1
}

func kaDefaultDelayBeforeRetry(checker string, delayLoop time.Duration) time.Duration {
	switch checker {
	case "HTTP_GET", "SSL_GET":
		return 3 * time.Second
	case "DNS_CHECK":
		return delayLoop
	}
	return time.Second
}

// checkerAlpha is the alpha a checker runs with: its own, else inherited.
func (m *kmap) checkerAlpha(c *node, in inherited) *onOff {
	for _, n := range c.kids {
		if n.key() == "alpha" {
			if on, ok := m.boolArg(n); ok {
				return &onOff{pos: n.pos, on: on}
			}
		}
	}
	return in.alpha
}

// checker maps one keepalived checker to lvsd checks (HTTP_GET gives one
// per url); checkPort, when not 0, is the port the checks must probe.
func (m *kmap) checker(c *node, in inherited, rsAddr string, checkPort int) []*table {
	kind := c.key()
	switch kind {
	case "FILE_CHECK":
		m.drop(c, "lvsd has no file checks: an exec check can test the file")
		return nil
	case "BFD_CHECK":
		m.drop(c, "lvsd has no BFD")
		return nil
	case "PING_CHECK":
		if !featPing.have {
			m.drop(c, "%s; the server is not checked at all", featPing.lacks())
			return nil
		}
	case "UDP_CHECK":
		if !featUDP.have {
			m.drop(c, "%s; the server is not checked at all", featUDP.lacks())
			return nil
		}
	}

	common := newTable("")
	var specific []*node
	port := checkPort
	misc := kind == "MISC_CHECK"
	for _, n := range c.kids {
		if next, ok := m.inherit(in, n); ok {
			in = next
			continue
		}
		switch k := n.key(); {
		case misc && (k == "misc_path" || k == "misc_timeout" || k == "misc_dynamic" || k == "user"):
			specific = append(specific, n)
		case k == "log_all_failures":
			m.ignore(n, "lvsd logs every health transition and shows the last failure in `lvsd status`")
		case misc:
			m.unknown(n, kind)
		case k == "connect_port":
			if p, ok := m.intArg(n, 1, 65535); ok {
				port = p
			}
		case k == "connect_ip":
			if m.needArgs(n, 1, 1) && !sameAddr(n.arg(0), rsAddr) {
				m.drop(n, "lvsd probes the real server's own address, not %s", n.arg(0))
			}
		case k == "bindto":
			if a, ok := m.addrArg(n, 0); ok {
				common.set("source_address", a.String(), "bindto")
			}
		case k == "bind_port":
			m.drop(n, "lvsd lets the kernel pick the source port of probes")
		case k == "bind_if":
			m.drop(n, "lvsd does not bind probes to an interface (a link-local real server cannot be checked)")
		case k == "fwmark":
			m.drop(n, "lvsd marks no probe packets")
		default:
			specific = append(specific, n)
		}
	}

	interval := kaDelayLoop
	if in.delayLoop != nil {
		interval = in.delayLoop.d
	}
	timeout := kaConnectTimeout
	if in.connectTimeout != nil {
		timeout = in.connectTimeout.d
	}
	if misc {
		timeout = interval // misc_timeout overrides below
		for _, n := range specific {
			if n.key() == "misc_timeout" {
				if s, ok := m.intArg(n, 1, 1<<30); ok {
					timeout = time.Duration(s) * time.Second
				}
			}
		}
	}
	if timeout >= interval {
		longer := interval + timeout
		m.changed(c, "interval %s: lvsd's timeout (%s) must be shorter than its check interval; keepalived waited delay_loop (%s) after each check, so this is its longest period",
			formatDuration(longer), formatDuration(timeout), formatDuration(interval))
		interval = longer
	}
	retry := kaDefaultRetry(kind)
	if in.retry != nil {
		retry = in.retry.n
	}
	dbr := kaDefaultDelayBeforeRetry(kind, interval)
	if in.delayBeforeRetry != nil {
		dbr = in.delayBeforeRetry.d
	}
	if retry > 0 && dbr != interval {
		m.changed(c, "fall = %d: lvsd probes every %s, also after a failure, so a dead server goes after up to %d × %s; keepalived retried after delay_before_retry %s",
			retry+1, formatDuration(interval), retry+1, formatDuration(interval), formatDuration(dbr))
	}

	base := func(typ string) *table {
		t := newTable("", fmt.Sprintf("%s %s", c.pos, kind))
		t.set("type", typ)
		t.set("interval", interval)
		t.set("timeout", timeout)
		t.set("rise", 1, "keepalived: up after one good check")
		t.set("fall", retry+1, fmt.Sprintf("retry %d", retry))
		if port != 0 {
			t.set("port", port)
		}
		t.kvs = append(t.kvs, common.kvs...)
		if in.warmup != nil && in.warmup.d > 0 {
			t.set("warmup", in.warmup.d)
		}
		return t
	}

	switch kind {
	case "TCP_CHECK":
		for _, n := range specific {
			m.unknown(n, kind)
		}
		return []*table{base("tcp")}
	case "HTTP_GET", "SSL_GET":
		return m.httpChecks(c, kind, specific, in, base)
	case "SMTP_CHECK":
		return m.smtpChecks(c, specific, rsAddr, base)
	case "DNS_CHECK":
		t := base("dns")
		qname, qtype := ".", "SOA"
		for _, n := range specific {
			switch n.key() {
			case "type":
				if m.needArgs(n, 1, 1) {
					qtype = strings.ToUpper(n.arg(0))
				}
			case "name":
				if m.needArgs(n, 1, 1) {
					qname = n.arg(0)
				}
			default:
				m.unknown(n, kind)
			}
		}
		t.set("query_name", qname)
		t.set("query_type", qtype)
		t.set("transport", "udp", "keepalived's DNS_CHECK always uses UDP")
		m.changed(c, "lvsd's dns check also wants a non-empty answer; keepalived only wanted rcode NOERROR")
		return []*table{t}
	case "MISC_CHECK":
		t := base("exec")
		var cmd []string
		for _, n := range specific {
			switch n.key() {
			case "misc_path":
				if m.needArgs(n, 1, -1) {
					argv, shell := splitCommand(strings.Join(n.args(), " "))
					if shell {
						m.changed(n, "run as /bin/sh -c: lvsd runs argv without a shell, and this command needs one")
					}
					cmd = argv
				}
			case "misc_dynamic":
				if on, ok := m.boolArg(n); ok && on {
					t.set("dynamic_weight", true, "misc_dynamic")
				}
			case "user":
				m.drop(n, "lvsd runs exec checks as its own user")
			}
		}
		if cmd == nil {
			m.errorf(c, "no misc_path")
			return nil
		}
		t.kvs = append(t.kvs[:1], append([]kv{{key: "command", val: tomlValue(cmd)}}, t.kvs[1:]...)...)
		return []*table{t}
	case "PING_CHECK":
		for _, n := range specific {
			m.unknown(n, kind)
		}
		return []*table{base("ping")}
	case "UDP_CHECK":
		return []*table{m.udpCheck(specific, base("udp"))}
	}
	return nil
}

// udpCheck maps UDP_CHECK: payload and require_reply take hex, and without
// require_reply keepalived passes a server that stays silent (only an ICMP
// port unreachable fails it), which lvsd's require_reply = false does.
func (m *kmap) udpCheck(specific []*node, t *table) *table {
	reply := false
	for _, n := range specific {
		switch n.key() {
		case "payload":
			if m.needArgs(n, 1, -1) {
				if h, ok := m.hexArg(n); ok {
					t.set("payload_hex", h)
				}
			}
		case "require_reply":
			reply = true
			if len(n.args()) == 0 {
				continue
			}
			if h, ok := m.hexArg(n); ok {
				t.set("expect_hex", h)
				m.changed(n, "the reply must start with these bytes; keepalived also passed a shorter reply that matched as far as it went")
			}
		case "min_reply_length", "max_reply_length":
			m.drop(n, "lvsd's udp check has no reply length bounds (expect_hex fixes how the reply starts)")
		default:
			m.unknown(n, "UDP_CHECK")
		}
	}
	if !reply {
		t.set("require_reply", false, "no require_reply: silence passes")
	}
	return t
}

// hexArg reads keepalived's hex string (the words joined); a masked nibble
// (keepalived's reply mask) lvsd cannot match.
func (m *kmap) hexArg(n *node) (string, bool) {
	h := strings.Join(n.args(), "")
	if _, err := hex.DecodeString(h); err != nil || h == "" {
		m.drop(n, "%q is not plain hex bytes, which is all lvsd's udp check matches (no masks)", strings.Join(n.args(), " "))
		return "", false
	}
	return strings.ToLower(h), true
}

func (m *kmap) httpChecks(c *node, kind string, specific []*node, in inherited, base func(string) *table) []*table {
	typ := "http"
	if kind == "SSL_GET" {
		typ = "https"
	}
	host := in.virtualhost
	sni, sniOn := "", false
	var urls []*node
	for _, n := range specific {
		switch n.key() {
		case "url":
			urls = append(urls, n)
		case "http_protocol":
			if m.needArgs(n, 1, 1) && n.arg(0) != "1.1" {
				m.changed(n, "lvsd speaks HTTP/1.1 and closes the connection after each probe")
			}
		case "enable_sni":
			if on, ok := m.boolArg(n); ok {
				sniOn = on
			}
		case "sni_name":
			if m.needArgs(n, 1, 1) {
				sni, sniOn = n.arg(0), true
			}
		case "fast_recovery":
			m.ignore(n, "lvsd checks every url of a server at once, so recovery is always fast")
		case "tls_compliant":
			m.ignore(n, "lvsd closes TLS connections with close_notify")
		default:
			m.unknown(n, kind)
		}
	}
	if len(urls) == 0 {
		m.changed(c, "no url: checking path /")
		urls = []*node{{pos: c.pos, words: []string{"url"}}}
	}
	var out []*table
	for _, u := range urls {
		t := base(typ)
		path, status, uhost := "/", []string(nil), host
		body := ""
		for _, n := range u.kids {
			switch n.key() {
			case "path":
				if m.needArgs(n, 1, 1) {
					path = n.arg(0)
					if !strings.HasPrefix(path, "/") {
						path = "/" + path
					}
				}
			case "digest":
				m.drop(n, "lvsd cannot compare a digest of the page: set expect_body to a regular expression the page must match")
			case "status_code":
				if m.needArgs(n, 1, -1) {
					status = append(status, n.args()...)
				}
			case "virtualhost":
				if m.needArgs(n, 1, 1) {
					uhost = n.arg(0)
				}
			case "regex":
				if m.needArgs(n, 1, 1) {
					if _, err := regexp.Compile(n.arg(0)); err != nil {
						m.drop(n, "not a Go (RE2) regular expression: %v", err)
					} else {
						body = n.arg(0)
						m.changed(n, "matched as a Go (RE2) regular expression against the first 64 KiB of the body (keepalived uses PCRE2)")
					}
				}
			case "regex_no_match":
				m.drop(n, "lvsd has no negated body match")
			case "regex_options", "regex_stack", "regex_min_offset", "regex_max_offset":
				m.drop(n, "lvsd has no PCRE2 options: write flags into the expression, e.g. (?i)")
			case "tls_compliant":
				m.ignore(n, "lvsd closes TLS connections with close_notify")
			default:
				m.unknown(n, "url")
			}
		}
		t.set("path", path)
		if uhost != "" {
			t.set("host", uhost, "virtualhost")
		}
		if status == nil {
			status = []string{"200-299"}
			t.set("expect_status", status, "keepalived's default")
		} else {
			t.set("expect_status", status)
		}
		if body != "" {
			t.set("expect_body", body, "regex")
		}
		if typ == "https" {
			if sniOn {
				name := sni
				if name == "" {
					name = uhost
				}
				if name != "" {
					t.set("tls_server_name", name)
				}
			}
			t.set("tls_skip_verify", true, "as keepalived's SSL_GET: set ca_file and remove this to verify the certificate")
		}
		out = append(out, t)
	}
	return out
}

func (m *kmap) smtpChecks(c *node, specific []*node, rsAddr string, base func(string) *table) []*table {
	var hosts []*node
	for _, n := range specific {
		switch n.key() {
		case "helo_name":
		case "host":
			hosts = append(hosts, n)
		default:
			m.unknown(n, "SMTP_CHECK")
		}
	}
	m.changed(c, "checked as a tcp check that wants the 220 greeting; lvsd sends no HELO and QUIT")
	mk := func() *table {
		t := base("tcp")
		t.set("expect", "220", "the SMTP greeting")
		return t
	}
	if len(hosts) == 0 {
		return []*table{mk()}
	}
	var out []*table
	for _, h := range hosts {
		t := mk()
		other := false
		for _, n := range h.kids {
			switch n.key() {
			case "connect_ip":
				if sameAddr(n.arg(0), rsAddr) {
					continue
				}
				m.drop(h, "a host block for another address (%s): lvsd probes the real server's own address", n.arg(0))
				other = true
			case "connect_port":
				if p, ok := m.intArg(n, 1, 65535); ok {
					t.remove("port")
					t.set("port", p)
				}
			case "bindto":
				if a, ok := m.addrArg(n, 0); ok {
					t.remove("source_address")
					t.set("source_address", a.String(), "bindto")
				}
			case "connect_timeout", "retry", "delay_before_retry", "warmup", "alpha", "bind_port", "bind_if", "fwmark":
				m.drop(n, "lvsd has one setting per check, not per SMTP host")
			default:
				m.unknown(n, "host")
			}
		}
		if !other {
			out = append(out, t)
		}
	}
	return out
}

func sameAddr(a, b string) bool {
	x, err1 := netip.ParseAddr(a)
	y, err2 := netip.ParseAddr(b)
	return err1 == nil && err2 == nil && x == y
}
