package importer

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"time"
)

// vsKey is one kernel virtual service a virtual_server (or one entry of
// its virtual_server_group) stands for.
type vsKey struct {
	vip    netip.Addr
	port   int
	fwmark uint32
	family string // for fwmark: inet or inet6; "" unless given
}

// inherited are the checker settings a virtual_server and a real_server
// pass down to their checkers, as keepalived resolves them.
type inherited struct {
	delayLoop, connectTimeout, delayBeforeRetry, warmup *timed
	retry                                               *counted
	alpha                                               *onOff
	virtualhost                                         string
}

type timed struct {
	pos Pos
	d   time.Duration
}
type counted struct {
	pos Pos
	n   int
}
type onOff struct {
	pos Pos
	on  bool
}

// over returns a copy of in with what b sets on top.
func (m *kmap) inherit(in inherited, n *node) (inherited, bool) {
	t := func() *timed {
		if d, ok := m.timerArg(n); ok {
			return &timed{pos: n.pos, d: d}
		}
		return nil
	}
	switch n.key() {
	case "delay_loop":
		in.delayLoop = t()
	case "connect_timeout":
		in.connectTimeout = t()
	case "delay_before_retry":
		in.delayBeforeRetry = t()
	case "warmup":
		in.warmup = t()
	case "retry", "nb_get_retry":
		if r, ok := m.intArg(n, 0, 1<<30); ok {
			in.retry = &counted{pos: n.pos, n: r}
		}
	case "alpha":
		if on, ok := m.boolArg(n); ok {
			in.alpha = &onOff{pos: n.pos, on: on}
		}
	case "virtualhost":
		if m.needArgs(n, 1, 1) {
			in.virtualhost = n.arg(0)
		}
	default:
		return in, false
	}
	return in, true
}

var serviceOrder = []string{"vip", "port", "protocol", "fwmark", "family", "scheduler", "sched_flags", "forwarding",
	"persistence", "persistence_netmask", "one_packet", "quorum", "hysteresis", "sorry_server", "on_failure", "alpha"}

func (m *kmap) virtualServer(b *node) {
	var keys []vsKey
	switch {
	case len(b.args()) == 2 && b.arg(0) == "group":
		g := m.groups[b.arg(1)]
		if g == nil {
			m.errorf(b, "no virtual_server_group %q", b.arg(1))
			return
		}
		keys = m.groupKeys(g)
	case len(b.args()) == 2 && b.arg(0) == "fwmark":
		mark, err := strconv.ParseUint(b.arg(1), 10, 32)
		if err != nil || mark == 0 {
			m.errorf(b, "invalid fwmark %q", b.arg(1))
			return
		}
		keys = []vsKey{{fwmark: uint32(mark)}}
	case len(b.args()) == 2 || len(b.args()) == 1:
		a, ok := m.addrArg(b, 0)
		if !ok {
			return
		}
		port := 0
		if len(b.args()) == 2 {
			p, err := strconv.Atoi(b.arg(1))
			if err != nil || p < 0 || p > 65535 {
				m.errorf(b, "invalid port %q", b.arg(1))
				return
			}
			port = p
		}
		keys = []vsKey{{vip: a, port: port}}
	default:
		m.errorf(b, "want IP PORT, fwmark N or group NAME")
		return
	}
	for _, k := range keys {
		if t := m.service(b, k); t != nil {
			m.services = append(m.services, t)
		}
	}
}

// groupKeys expands a virtual_server_group: "IP PORT", "IP-LAST PORT"
// (a range in the last byte, or the last 16 bits for IPv6), "fwmark N".
func (m *kmap) groupKeys(g *node) []vsKey {
	var keys []vsKey
	for _, n := range g.kids {
		if n.key() == "fwmark" {
			mark, err := strconv.ParseUint(n.arg(0), 10, 32)
			if err != nil || mark == 0 || len(n.args()) > 2 {
				m.errs = append(m.errs, &Error{Pos: n.pos, Msg: fmt.Sprintf("virtual_server_group: invalid fwmark %q", n.arg(0))})
				continue
			}
			keys = append(keys, vsKey{fwmark: uint32(mark)})
			continue
		}
		addr, last, isRange := strings.Cut(n.key(), "-")
		a, err := netip.ParseAddr(addr)
		port := 0
		if err == nil && len(n.args()) >= 1 {
			port, err = strconv.Atoi(n.arg(0))
		}
		if err != nil || len(n.args()) > 1 {
			m.errs = append(m.errs, &Error{Pos: n.pos, Msg: fmt.Sprintf("virtual_server_group: want IP[-LAST] PORT, got %q", strings.Join(n.words, " "))})
			continue
		}
		end := a
		if isRange {
			base := 10
			if a.Is6() {
				base = 16
			}
			lastVal, err := strconv.ParseUint(last, base, 16)
			b := a.AsSlice()
			if a.Is4() {
				if err != nil || lastVal > 255 || lastVal < uint64(b[3]) {
					m.errs = append(m.errs, &Error{Pos: n.pos, Msg: fmt.Sprintf("virtual_server_group: invalid range %q", n.key())})
					continue
				}
				b[3] = byte(lastVal)
			} else {
				cur := uint64(b[14])<<8 | uint64(b[15])
				if err != nil || lastVal < cur {
					m.errs = append(m.errs, &Error{Pos: n.pos, Msg: fmt.Sprintf("virtual_server_group: invalid range %q", n.key())})
					continue
				}
				b[14], b[15] = byte(lastVal>>8), byte(lastVal)
			}
			end, _ = netip.AddrFromSlice(b)
		}
		for ip := a; ; ip = ip.Next() {
			keys = append(keys, vsKey{vip: ip, port: port})
			if ip == end {
				break
			}
		}
	}
	return keys
}

func (m *kmap) groupDef(g *node) {
	if len(g.kids) == 0 {
		m.drop(g, "an empty group configures nothing")
	}
}

// service builds one [[service]] for key from the virtual_server block b.
func (m *kmap) service(b *node, key vsKey) *table {
	t := newTable("[[service]]", fmt.Sprintf("%s %s", b.pos, strings.Join(b.words, " ")))
	f := map[string]kv{}
	put := func(k string, v any, comment ...string) {
		f[k] = kv{key: k, val: tomlValue(v), comment: strings.Join(comment, " ")}
	}
	if key.fwmark != 0 {
		put("fwmark", key.fwmark)
	} else {
		put("vip", key.vip.String())
		put("port", key.port)
	}
	if len(b.args()) == 2 && b.arg(0) == "group" {
		t.comments[0] += fmt.Sprintf(" (entry %s)", describeKey(key))
	}
	in := inherited{}
	protocol, scheduler, forwarding := "tcp", "", ""
	var flags []*node
	persistence := time.Duration(0)
	inhibit := false
	var reals []*node
	var opsNode *node
	for _, n := range b.kids {
		if next, ok := m.inherit(in, n); ok {
			in = next
			continue
		}
		switch k := n.key(); k {
		case "protocol":
			if m.needArgs(n, 1, 1) {
				protocol = strings.ToLower(n.arg(0))
				if protocol != "tcp" && protocol != "udp" && protocol != "sctp" {
					m.errorf(n, "invalid protocol %q (want TCP, UDP or SCTP)", n.arg(0))
				}
			}
		case "ip_family":
			if m.needArgs(n, 1, 1) {
				key.family = n.arg(0)
			}
		case "lb_algo", "lvs_sched":
			if m.needArgs(n, 1, 1) {
				scheduler = strings.ToLower(n.arg(0))
				if scheduler == "twos" {
					m.drop(n, "lvsd has no twos scheduler (Linux 6.x); using wlc")
					scheduler = "wlc"
				}
			}
		case "lb_kind", "lvs_method":
			forwarding = m.forwarding(n)
		case "hashed":
			m.ignore(n, "an IPVS-internal onOff")
		case "ops":
			opsNode = n
		case "flag-1", "flag-2", "flag-3", "sh-port", "sh-fallback", "mh-port", "mh-fallback":
			flags = append(flags, n)
		case "persistence_timeout":
			if len(n.args()) == 0 {
				persistence = 360 * time.Second
			} else if s, ok := m.intArg(n, 1, 1<<31); ok {
				persistence = time.Duration(s) * time.Second
			}
		case "persistence_granularity":
			if m.needArgs(n, 1, 1) {
				put("persistence_netmask", n.arg(0))
				if persistence == 0 {
					persistence = 360 * time.Second
				}
			}
		case "persistence_engine":
			m.drop(n, "lvsd sets no IPVS persistence engine")
		case "ha_suspend":
			m.changed(n, "lvsd checks real servers on the backup director too, so a takeover starts with their health known")
		case "inhibit_on_failure":
			if on, ok := m.boolArg(n); ok {
				inhibit = on
			}
		case "quorum":
			if q, ok := m.intArg(n, 0, 1<<30); ok {
				put("quorum", q)
			}
		case "hysteresis":
			if h, ok := m.intArg(n, 0, 1<<30); ok {
				put("hysteresis", h)
			}
		case "quorum_up", "quorum_down":
			m.drop(n, "lvsd runs no quorum scripts: alert on lvsd_realserver_up, or track the service from a VRRP instance (track_services)")
		case "omega":
			m.drop(n, "lvsd runs no quorum scripts, so none at shutdown either")
		case "sorry_server":
			if m.needArgs(n, 1, 2) {
				if a, ok := m.addrArg(n, 0); ok {
					s := a.String()
					if len(n.args()) == 2 {
						p, err := strconv.Atoi(n.arg(1))
						if err != nil || p < 1 || p > 65535 {
							m.errorf(n, "invalid port %q", n.arg(1))
						}
						s = netip.AddrPortFrom(a, uint16(p)).String()
					}
					put("sorry_server", s)
				}
			}
		case "sorry_server_inhibit":
			m.drop(n, "lvsd removes the sorry server once the pool is back, rather than keeping it at weight 0")
		case "sorry_server_lvs_method":
			m.drop(n, "lvsd forwards to the sorry server with the service's forwarding method")
		case "smtp_alert":
			m.drop(n, whyNoEmail)
		case "snmp_name":
			m.ignore(n, "lvsd names services in its metrics by their config name")
		case "weight":
			m.drop(n, "a virtual server weight only applies to keepalived's virtual_server_group fwmark tracking")
		case "real_server":
			reals = append(reals, n)
		default:
			m.unknown(n, "virtual_server")
		}
	}
	if key.fwmark == 0 {
		put("protocol", protocol)
		if key.family != "" && key.family != familyOf(key.vip) {
			m.errorf(b, "ip_family %s does not match %s", key.family, key.vip)
		}
	} else if key.family == "inet6" {
		put("family", "inet6")
	}
	if scheduler == "" {
		scheduler = "wlc" // keepalived's default too, said explicitly
	}
	put("scheduler", scheduler)
	if sf := m.schedFlags(flags, scheduler); len(sf) > 0 {
		put("sched_flags", sf)
	}
	if forwarding == "" {
		forwarding = "nat"
	}
	put("forwarding", forwarding)
	if persistence > 0 {
		put("persistence", persistence)
	}
	if opsNode != nil {
		if protocol == "udp" && key.fwmark == 0 {
			put("one_packet", true, "ops")
		} else {
			m.drop(opsNode, "one-packet scheduling is for UDP services only")
		}
	}
	if key.fwmark == 0 && key.port == 0 && persistence == 0 {
		put("persistence", 360*time.Second, "keepalived makes a port-0 service persistent")
	}

	var rss []*table
	var checks [][]*table
	alphas := map[bool][]Pos{}
	drained := 0
	weights := false
	for _, rn := range reals {
		rt, cs, rsInhibit, alpha, weight := m.realServer(rn, key, forwarding, in)
		if rt == nil {
			continue
		}
		if rsInhibit {
			drained++
		}
		if weight != 1 {
			weights = true
		}
		for _, a := range alpha {
			alphas[a.on] = append(alphas[a.on], a.pos)
		}
		rss = append(rss, rt)
		checks = append(checks, cs)
	}
	if inhibit || drained > 0 {
		put("on_failure", "drain", "inhibit_on_failure")
		if !inhibit && drained < len(rss) {
			m.changed(b, "inhibit_on_failure on some real servers only: lvsd drains every failed server of the service")
		}
	}
	if q, ok := f["quorum"]; ok && weights {
		m.changed(b, "quorum %s counts healthy real servers in lvsd; keepalived summed their weights", q.val)
	}
	switch {
	case len(alphas[true]) > 0 && len(alphas[false]) > 0:
		m.rep.add(alphas[true][0], "alpha", Changed, "alpha is per service in lvsd and some checkers of this service have it off: every server of the service starts down")
	case len(alphas[true]) == 0:
		put("alpha", false, "keepalived's default: servers start up, before their first check")
	}
	for _, k := range serviceOrder {
		if e, ok := f[k]; ok {
			t.kvs = append(t.kvs, e)
		}
	}
	m.placeChecks(t, rss, checks)
	for _, rt := range rss {
		t.add(rt)
	}
	return t
}

func describeKey(k vsKey) string {
	if k.fwmark != 0 {
		return fmt.Sprintf("fwmark %d", k.fwmark)
	}
	return fmt.Sprintf("%s %d", k.vip, k.port)
}

func familyOf(a netip.Addr) string {
	if a.Is4() {
		return "inet"
	}
	return "inet6"
}

func (m *kmap) forwarding(n *node) string {
	if !m.needArgs(n, 1, -1) {
		return ""
	}
	switch strings.ToUpper(n.arg(0)) {
	case "NAT":
		return "nat"
	case "DR":
		return "dr"
	case "TUN":
		if len(n.args()) > 1 && !(len(n.args()) == 3 && n.arg(1) == "type" && n.arg(2) == "ipip") {
			m.drop(n, "lvsd tunnels with IP-in-IP only (%s)", strings.Join(n.args()[1:], " "))
		}
		return "tun"
	}
	m.errorf(n, "invalid method %q (want NAT, DR or TUN)", n.arg(0))
	return ""
}

func (m *kmap) schedFlags(flags []*node, sched string) []string {
	var out []string
	add := func(f string) {
		for _, o := range out {
			if o == f {
				return
			}
		}
		out = append(out, f)
	}
	for _, n := range flags {
		name := n.key()
		switch name {
		case "flag-1":
			name = sched + "-fallback"
		case "flag-2":
			name = sched + "-port"
		case "flag-3":
			m.drop(n, "IPVS defines no meaning for flag-3 with the %s scheduler", sched)
			continue
		}
		if !strings.HasPrefix(name, sched+"-") {
			m.drop(n, "only for the %s scheduler, and this service uses %s", strings.Split(name, "-")[0], sched)
			continue
		}
		add(name)
	}
	return out
}

// realServer builds one [[service.realserver]] and its checks (placed by
// placeChecks). It reports whether the server had inhibit_on_failure, the
// alpha of each checker and the weight.
func (m *kmap) realServer(b *node, key vsKey, svcFwd string, in inherited) (*table, []*table, bool, []onOff, int) {
	if !m.needArgs(b, 1, 2) {
		return nil, nil, false, nil, 0
	}
	a, ok := m.addrArg(b, 0)
	if !ok {
		return nil, nil, false, nil, 0
	}
	port := 0
	if len(b.args()) == 2 {
		p, err := strconv.Atoi(b.arg(1))
		if err != nil || p < 0 || p > 65535 {
			m.errorf(b, "invalid port %q", b.arg(1))
			return nil, nil, false, nil, 0
		}
		port = p
	}
	t := newTable("[[service.realserver]]")
	weight := 1
	fwd := svcFwd
	inhibit := false
	var thresholds []kv
	var checkers []*node
	for _, n := range b.kids {
		if next, ok := m.inherit(in, n); ok {
			in = next
			continue
		}
		switch n.key() {
		case "weight":
			if w, ok := m.intArg(n, 0, 65535); ok {
				weight = w
			}
		case "lvs_method", "lb_kind":
			if f := m.forwarding(n); f != "" {
				fwd = f
			}
		case "uthreshold":
			if v, ok := m.intArg(n, 0, 1<<31-1); ok {
				thresholds = append(thresholds, kv{key: "upper_threshold", val: strconv.Itoa(v)})
			}
		case "lthreshold":
			if v, ok := m.intArg(n, 0, 1<<31-1); ok {
				thresholds = append(thresholds, kv{key: "lower_threshold", val: strconv.Itoa(v)})
			}
		case "inhibit_on_failure":
			if on, ok := m.boolArg(n); ok {
				inhibit = on
			}
		case "notify_up", "notify_down":
			m.drop(n, "lvsd runs no per-server scripts: alert on lvsd_realserver_up or lvsd_check_transitions_total")
		case "smtp_alert":
			m.drop(n, whyNoEmail)
		case "snmp_name":
			m.ignore(n, "lvsd names real servers in its metrics by ip:port")
		case "HTTP_GET", "SSL_GET", "TCP_CHECK", "SMTP_CHECK", "DNS_CHECK", "MISC_CHECK", "PING_CHECK", "UDP_CHECK",
			"FILE_CHECK", "BFD_CHECK":
			checkers = append(checkers, n)
		default:
			m.unknown(n, "real_server")
		}
	}
	checkPort := 0
	addr := a.String()
	switch {
	case port != 0 && key.fwmark == 0 && (fwd == "dr" || fwd == "tun") && port != key.port:
		m.changed(b, "%s forwarding cannot change the port: the kernel sends to port %d whatever the config says; the checks still probe %d", strings.ToUpper(fwd), key.port, port)
		checkPort = port
	case port != 0 && port != key.port:
		addr = netip.AddrPortFrom(a, uint16(port)).String()
	}
	t.set("address", addr)
	if weight != 1 {
		t.set("weight", weight)
	}
	if fwd != svcFwd {
		t.set("forwarding", fwd)
	}
	t.kvs = append(t.kvs, thresholds...)

	var checks []*table
	var alphas []onOff
	for _, c := range checkers {
		cs := m.checker(c, in, a.String(), checkPort)
		checks = append(checks, cs...)
		al := onOff{pos: c.pos}
		if eff := m.checkerAlpha(c, in); eff != nil {
			al = *eff
		}
		alphas = append(alphas, al)
	}
	return t, checks, inhibit, alphas, weight
}

// placeChecks puts checks that every real server of the service shares on
// the service ([[service.check]]) and the rest on their servers.
func (m *kmap) placeChecks(svc *table, rss []*table, checks [][]*table) {
	shared := len(rss) > 1
	for i := range checks {
		if len(checks[i]) == 0 || len(checks[i]) != len(checks[0]) {
			shared = false
			break
		}
		for j := range checks[i] {
			if tableText(checks[i][j]) != tableText(checks[0][j]) {
				shared = false
			}
		}
	}
	if shared {
		for _, c := range checks[0] {
			c.header = "[[service.check]]"
			svc.add(c)
		}
		return
	}
	for i, rt := range rss {
		for _, c := range checks[i] {
			c.header = "[[service.realserver.check]]"
			rt.add(c)
		}
	}
}
