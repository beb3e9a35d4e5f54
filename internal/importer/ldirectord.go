package importer

import (
	"bufio"
	"bytes"
	"fmt"
	"net/netip"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// ldirectord's defaults (/usr/sbin/ldirectord, ld_read_config).
const (
	ldCheckInterval    = 10 * time.Second
	ldCheckTimeout     = 5 * time.Second
	ldNegotiateTimeout = 30 * time.Second
)

// ldLine is one "key=value" line of an ldirectord.cf.
type ldLine struct {
	pos      Pos
	key, val string
}

type ldVirtual struct {
	ldLine
	v6    bool
	lines []ldLine
}

// Ldirectord imports an ldirectord.cf: global "key=value" lines, and
// "virtual=" (or "virtual6=") sections whose lines are indented.
func Ldirectord(path string) (*Result, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, Errors{{Pos: Pos{File: path}, Msg: fmt.Sprintf("cannot read: %v", err)}}
	}
	l := &ldmap{rep: &report{}, path: path}
	l.rep.file(path)
	globals, virtuals := l.parse(data)
	if len(l.errs) > 0 {
		return nil, l.errs
	}
	l.run(globals, virtuals)
	if len(l.errs) > 0 {
		return nil, l.errs
	}
	root := newTable("")
	root.note(fmt.Sprintf("Imported by `lvsd import ldirectord` from %s.\n"+
		"Check it with `lvsd check -config FILE`. What could not be carried over was\n"+
		"listed on stderr (FILE:LINE: keyword: why).", path))
	if l.director != nil {
		root.add(l.director)
	}
	for _, s := range l.services {
		root.add(s)
	}
	return &Result{TOML: render(root), Notes: l.rep.sorted()}, nil
}

type ldmap struct {
	rep      *report
	errs     Errors
	path     string
	director *table
	services []*table

	// globals that virtuals inherit
	g map[string]ldLine
}

func (l *ldmap) errorf(ln ldLine, format string, args ...any) {
	l.errs = append(l.errs, &Error{Pos: ln.pos, Msg: ln.key + ": " + fmt.Sprintf(format, args...)})
}

func (l *ldmap) note(ln ldLine, kind Kind, format string, args ...any) {
	l.rep.add(ln.pos, ln.key, kind, format, args...)
}

func (l *ldmap) parse(data []byte) ([]ldLine, []*ldVirtual) {
	var globals []ldLine
	var virtuals []*ldVirtual
	var cur *ldVirtual
	sc := bufio.NewScanner(bytes.NewReader(data))
	n := 0
	for sc.Scan() {
		n++
		raw := sc.Text()
		text := strings.TrimRight(stripHash(raw), " \t\r")
		if strings.TrimSpace(text) == "" {
			continue
		}
		indented := text[0] == ' ' || text[0] == '\t'
		key, val, ok := strings.Cut(strings.TrimSpace(text), "=")
		pos := Pos{File: l.path, Line: n}
		if !ok {
			l.errs = append(l.errs, &Error{Pos: pos, Msg: fmt.Sprintf("want key=value, got %q", strings.TrimSpace(text))})
			continue
		}
		ln := ldLine{pos: pos, key: strings.TrimSpace(key), val: strings.TrimSpace(val)}
		switch {
		case !indented && (ln.key == "virtual" || ln.key == "virtual6"):
			cur = &ldVirtual{ldLine: ln, v6: ln.key == "virtual6"}
			virtuals = append(virtuals, cur)
		case indented && cur != nil:
			cur.lines = append(cur.lines, ln)
		case indented:
			l.errs = append(l.errs, &Error{Pos: pos, Msg: fmt.Sprintf("%s: an indented line outside a virtual= section", ln.key)})
		default:
			cur = nil
			globals = append(globals, ln)
		}
	}
	return globals, virtuals
}

// stripHash cuts a '#' comment that is not inside double quotes.
func stripHash(s string) string {
	q := false
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '"':
			q = !q
		case '#':
			if !q {
				return s[:i]
			}
		}
	}
	return s
}

func unquote(s string) string {
	if len(s) >= 2 && s[0] == '"' && s[len(s)-1] == '"' {
		return s[1 : len(s)-1]
	}
	return s
}

func (l *ldmap) dir() *table {
	if l.director == nil {
		l.director = newTable("[director]")
	}
	return l.director
}

func (l *ldmap) run(globals []ldLine, virtuals []*ldVirtual) {
	l.g = map[string]ldLine{}
	for _, ln := range globals {
		switch ln.key {
		case "checktimeout", "negotiatetimeout", "checkinterval", "failurecount", "fallback", "fallback6",
			"quiescent", "checktype", "service", "checkport", "request", "receive", "scheduler", "protocol",
			"persistent", "netmask", "virtualhost", "httpmethod":
			l.g[ln.key] = ln // applied in each virtual that does not set its own
		case "autoreload":
			l.note(ln, Ignored, "lvsd reloads on `lvsd reload`, SIGHUP or `systemctl reload lvsd`")
		case "logfile":
			l.note(ln, Ignored, "lvsd logs to stderr (the journal under systemd)")
		case "callback":
			l.note(ln, Dropped, "lvsd runs no callback on reload")
		case "execute":
			l.note(ln, Dropped, "one lvsd runs one config: import the other file separately")
		case "fork", "supervised":
			l.note(ln, Ignored, "lvsd is one process under systemd")
		case "cleanstop":
			if ln.val == "no" {
				l.dir().set("on_exit", "keep", "cleanstop=no")
			} else {
				l.dir().set("on_exit", "flush", "cleanstop=yes")
			}
		case "readdquiescent":
			l.note(ln, Dropped, "lvsd keeps a drained server's weight at 0 until it passes its checks again")
		case "maintenancedir":
			l.note(ln, Dropped, "use `lvsd drain SERVICE REALSERVER` and `lvsd undrain` for maintenance")
		case "fallbackcommand":
			l.note(ln, Dropped, "lvsd runs no fallback command: alert on lvsd_realserver_up")
		case "emailalert", "emailalertfreq", "emailalertstatus", "emailalertfrom", "smtp":
			l.note(ln, Dropped, "%s", whyNoEmail)
		case "connecttimeout":
			l.errorf(ln, "ldirectord no longer accepts connecttimeout (use checktimeout and negotiatetimeout)")
		case "checkcount":
			l.note(ln, Dropped, "deprecated in ldirectord; failurecount is lvsd's fall")
		default:
			l.errs = append(l.errs, &Error{Pos: ln.pos, Msg: fmt.Sprintf("unknown keyword %q", ln.key)})
		}
	}
	for _, v := range virtuals {
		if t := l.virtual(v); t != nil {
			l.services = append(l.services, t)
		}
	}
}

var ldPorts = map[string]int{"ftp": 21, "smtp": 25, "domain": 53, "dns": 53, "http": 80, "www": 80, "pop3": 110,
	"pop": 110, "nntp": 119, "imap": 143, "imap2": 143, "ldap": 389, "https": 443, "submission": 587, "ldaps": 636,
	"imaps": 993, "pop3s": 995, "pops": 995, "oracle": 1521, "radius": 1812, "http_proxy": 3128, "mysql": 3306,
	"sip": 5060, "postgresql": 5432, "pgsql": 5432}

var ldServiceOfPort = map[int]string{21: "ftp", 25: "smtp", 53: "dns", 80: "http", 110: "pop", 119: "nntp",
	143: "imap", 389: "ldap", 443: "https", 587: "submission", 636: "ldaps", 995: "pops", 993: "imaps",
	1521: "oracle", 1812: "radius", 3128: "http_proxy", 3306: "mysql", 5060: "sip", 5432: "pgsql"}

func ldPort(s string) (int, bool) {
	if p, err := strconv.Atoi(s); err == nil && p >= 0 && p <= 65535 {
		return p, true
	}
	p, ok := ldPorts[s]
	return p, ok
}

// splitHostPort reads "IP:PORT" or "[IPv6]:PORT"; the port is optional.
func splitHostPort(s string) (host, port string) {
	if strings.HasPrefix(s, "[") {
		if i := strings.Index(s, "]"); i > 0 {
			return s[1:i], strings.TrimPrefix(s[i+1:], ":")
		}
	}
	if i := strings.LastIndex(s, ":"); i >= 0 && strings.Count(s, ":") == 1 {
		return s[:i], s[i+1:]
	}
	return s, ""
}

var ldForwarding = map[string]string{"gate": "dr", "masq": "nat", "ipip": "tun"}

func (l *ldmap) virtual(v *ldVirtual) *table {
	set := map[string]ldLine{}
	for k, ln := range l.g {
		set[k] = ln
	}
	var reals []ldLine
	for _, ln := range v.lines {
		if ln.key == "real" || ln.key == "real6" {
			if (ln.key == "real6") != v.v6 {
				l.errorf(ln, "a %s line in a %s section", ln.key, v.key)
				continue
			}
			reals = append(reals, ln)
			continue
		}
		set[ln.key] = ln
	}
	t := newTable("[[service]]", fmt.Sprintf("%s %s=%s", v.pos, v.key, v.val))
	f := map[string]kv{}
	put := func(k string, val any, comment ...string) {
		f[k] = kv{key: k, val: tomlValue(val), comment: strings.Join(comment, " ")}
	}

	fwmark := uint32(0)
	var vip netip.Addr
	vport := 0
	if mark, err := strconv.ParseUint(v.val, 10, 32); err == nil && !v.v6 {
		fwmark = uint32(mark)
		put("fwmark", fwmark)
	} else {
		host, port := splitHostPort(v.val)
		a, err := netip.ParseAddr(host)
		if err != nil {
			l.note(v.ldLine, Dropped, "%q is not an address: lvsd needs the virtual address itself", host)
			return nil
		}
		p, ok := ldPort(port)
		if !ok {
			l.errorf(v.ldLine, "invalid port %q", port)
			return nil
		}
		vip, vport = a, p
		put("vip", vip.String())
		put("port", vport)
	}
	protocol := "tcp"
	if vport == 53 {
		protocol = "udp" // ldirectord's default for port 53
	}
	service := ""
	if vport != 0 {
		service = ldServiceOfPort[vport]
	}
	checktype := "negotiate"
	type parsedReal struct {
		ln       ldLine
		servers  []netip.AddrPort
		fwd      string
		weight   int
		req, rcv string
	}
	var preals []parsedReal
	for _, ln := range reals {
		servers, rsFwd, weight, req, rcv, ok := l.real(ln, v.v6)
		if ok {
			preals = append(preals, parsedReal{ln, servers, rsFwd, weight, req, rcv})
		}
	}
	fwd := "nat"
	if len(preals) > 0 {
		fwd = preals[0].fwd // ldirectord sets it per real server; the first one's is the service's
	}
	var comments []string
	get := func(k string) (ldLine, bool) { ln, ok := set[k]; return ln, ok }
	for _, k := range sortedKeys(set) {
		ln := set[k]
		switch k {
		case "protocol":
			switch ln.val {
			case "tcp", "udp", "sctp":
				protocol = ln.val
			case "fwm":
				if fwmark == 0 {
					l.errorf(ln, "fwm is for a fwmark virtual")
				}
			default:
				l.errorf(ln, "invalid protocol %q (want tcp, udp, sctp or fwm)", ln.val)
			}
		case "service":
			service = ln.val
		case "checktype":
			checktype = ln.val
		case "scheduler":
			put("scheduler", ln.val)
		case "schedflags":
			put("sched_flags", strings.FieldsFunc(ln.val, func(r rune) bool { return r == '|' || r == ',' || r == ' ' }))
		case "persistent":
			if s, err := strconv.Atoi(ln.val); err == nil && s > 0 {
				put("persistence", time.Duration(s)*time.Second)
			} else {
				l.errorf(ln, "invalid value %q", ln.val)
			}
		case "netmask":
			put("persistence_netmask", ln.val)
		case "quiescent":
			if ln.val == "yes" {
				put("on_failure", "drain", "quiescent=yes")
			} else {
				put("on_failure", "remove", "quiescent=no")
			}
		case "fallback", "fallback6":
			if (k == "fallback6") != v.v6 {
				if ln.pos.Line == 0 || l.g[k].pos == ln.pos {
					continue // the other family's global fallback
				}
			}
			fields := strings.Fields(ln.val)
			host, port := splitHostPort(fields[0])
			a, err := netip.ParseAddr(host)
			if err != nil {
				l.note(ln, Dropped, "%q is not an address", host)
				continue
			}
			s := a.String()
			if port != "" {
				if p, ok := ldPort(port); ok {
					s = netip.AddrPortFrom(a, uint16(p)).String()
				}
			}
			put("sorry_server", s, k)
			if len(fields) > 1 {
				if fw := ldForwarding[fields[1]]; fw != "" && fw != fwd {
					l.note(ln, Dropped, "lvsd forwards to the sorry server with the service's forwarding method, not %s", fields[1])
				}
			}
		case "servicename":
			if lvsdName.MatchString(ln.val) {
				put("name", ln.val)
			} else {
				clean := regexp.MustCompile(`[^A-Za-z0-9._:/@-]+`).ReplaceAllString(ln.val, "-")
				put("name", clean, fmt.Sprintf("servicename=%s", ln.val))
			}
		case "comment":
			comments = append(comments, ln.val)
		case "emailalert", "emailalertfreq", "emailalertstatus", "smtp":
			l.note(ln, Dropped, "%s", whyNoEmail)
		case "monitorfile":
			l.note(ln, Dropped, "lvsd writes no monitor file: `lvsd status -json` and the metrics show every check")
		case "cleanstop":
			l.note(ln, Dropped, "on_exit is set for the whole director in lvsd")
		case "checkcount":
			l.note(ln, Dropped, "deprecated in ldirectord; failurecount is lvsd's fall")
		case "load":
			l.note(ln, Dropped, "lvsd has no load-based weights: misc_dynamic-style exec checks (dynamic_weight) can set them")
		case "checkcommand", "checktimeout", "negotiatetimeout", "checkinterval", "failurecount", "checkport",
			"request", "receive", "httpmethod", "virtualhost", "login", "passwd", "database", "secret":
			// used by the checks below
		case "connecttimeout":
			l.errorf(ln, "ldirectord no longer accepts connecttimeout (use checktimeout and negotiatetimeout)")
		default:
			l.errs = append(l.errs, &Error{Pos: ln.pos, Msg: fmt.Sprintf("unknown keyword %q in virtual", ln.key)})
		}
	}
	if fwmark == 0 {
		put("protocol", protocol)
	} else if v.v6 {
		put("family", "inet6")
	}
	if _, ok := f["scheduler"]; !ok {
		put("scheduler", "wrr", "ldirectord's default")
	}
	if _, ok := f["on_failure"]; !ok {
		put("on_failure", "remove", "ldirectord's default (quiescent=no)")
	}
	put("alpha", false, "ldirectord adds real servers before their first check")
	for _, c := range comments {
		t.note(c)
	}

	// the check every real server gets, unless its real= line has its own request/receive
	ck := ldCheckSpec{v: v, service: service, checktype: checktype, protocol: protocol, fwmark: fwmark, vip: vip, vport: vport}
	svcCheck := l.check(ck, get)
	var rss []*table
	var rsChecks [][]*table
	for _, pr := range preals {
		ln, rsFwd, weight, req, rcv := pr.ln, pr.fwd, pr.weight, pr.req, pr.rcv
		if checktype == "off" {
			weight = 0
		}
		for _, ap := range pr.servers {
			rt := newTable("[[service.realserver]]")
			addr := ap.Addr().String()
			port := int(ap.Port())
			checkPort := 0
			if port != 0 && fwmark == 0 && port != vport {
				if rsFwd == "dr" || rsFwd == "tun" {
					checkPort = port
					l.note(ln, Changed, "%s forwarding cannot change the port: the kernel sends to port %d; checks probe %d", strings.ToUpper(rsFwd), vport, port)
				} else {
					addr = ap.String()
				}
			} else if port != 0 && fwmark != 0 {
				addr = ap.String()
			}
			rt.set("address", addr)
			if weight != 1 {
				rt.set("weight", weight)
			}
			if rsFwd != "" && rsFwd != fwd {
				rt.set("forwarding", rsFwd)
			}
			cs := svcCheck
			if req != "" || rcv != "" {
				own := ck
				own.req, own.rcv, own.realLine = req, rcv, ln
				cs = l.check(own, get)
			}
			var own []*table
			for _, c := range cs {
				cp := *c
				cp.kvs = append([]kv(nil), c.kvs...)
				if checkPort != 0 && !cp.has("port") {
					cp.set("port", checkPort)
				}
				own = append(own, &cp)
			}
			rss = append(rss, rt)
			rsChecks = append(rsChecks, own)
		}
	}
	put("forwarding", fwd)
	for _, k := range append([]string{"name"}, serviceOrder...) {
		if e, ok := f[k]; ok {
			t.kvs = append(t.kvs, e)
		}
	}
	(&kmap{}).placeChecks(t, rss, rsChecks)
	for _, rt := range rss {
		t.add(rt)
	}
	return t
}

func sortedKeys(m map[string]ldLine) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	// by source line, so notes and comments keep the file's order
	for i := 1; i < len(keys); i++ {
		for j := i; j > 0 && m[keys[j]].pos.Line < m[keys[j-1]].pos.Line; j-- {
			keys[j], keys[j-1] = keys[j-1], keys[j]
		}
	}
	return keys
}

var realRE = regexp.MustCompile(`^(\[[0-9A-Fa-f:.]+\]|[^\s:>\[]+)(?:->(\[[0-9A-Fa-f:.]+\]|[^\s:>\[]+))?(?::([0-9A-Za-z_-]+))?\s+(gate|masq|ipip)(?:\s+(\d+))?(?:\s+"([^"]*)"\s*,\s*"([^"]*)")?\s*$`)

// real reads "real=IP[->IP2][:PORT] gate|masq|ipip [WEIGHT] ["request", "receive"]"
// (IPv6 addresses in brackets).
func (l *ldmap) real(ln ldLine, v6 bool) (servers []netip.AddrPort, fwd string, weight int, req, rcv string, ok bool) {
	m := realRE.FindStringSubmatch(ln.val)
	if m == nil {
		l.errorf(ln, "want IP[->IP2][:PORT] gate|masq|ipip [WEIGHT] [\"request\", \"receive\"], got %q", ln.val)
		return nil, "", 0, "", "", false
	}
	first, last, port := strings.Trim(m[1], "[]"), strings.Trim(m[2], "[]"), m[3]
	a, err := netip.ParseAddr(first)
	if err != nil {
		l.note(ln, Dropped, "%q is not an address: lvsd needs the real server's address (resolve it and list it)", first)
		return nil, "", 0, "", "", false
	}
	p := 0
	if port != "" {
		var okp bool
		if p, okp = ldPort(port); !okp {
			l.errorf(ln, "invalid port %q", port)
			return nil, "", 0, "", "", false
		}
	}
	end := a
	if last != "" {
		if end, err = netip.ParseAddr(last); err != nil || end.Less(a) || end.Is4() != a.Is4() {
			l.note(ln, Dropped, "range end %q is not an address after %s", last, a)
			return nil, "", 0, "", "", false
		}
	}
	for ip := a; ; ip = ip.Next() {
		servers = append(servers, netip.AddrPortFrom(ip, uint16(p)))
		if ip == end || len(servers) > 65536 {
			break
		}
	}
	weight = 1
	if m[5] != "" {
		weight, _ = strconv.Atoi(m[5])
	}
	req, rcv = m[6], m[7]
	return servers, ldForwarding[m[4]], weight, req, rcv, true
}
