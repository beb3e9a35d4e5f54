package importer

import (
	"fmt"
	"net/netip"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// vrrpInst is one vrrp_instance on its way to a [[vrrp]] table.
type vrrpInst struct {
	pos     Pos
	name    string
	iface   string
	family  string // of the first VIP
	version int
	fields  map[string]kv
	notify  map[string]*notifyCmd // master, backup, fault, "" (generic)
	sync    *table
	auth    *table // [vrrp.auth], from auth_hmac (kauth.go)
	// tracking (ktrack.go): [[vrrp.track_script]] and
	// [[vrrp.track_interface]] tables, the weighted ones among them, the
	// track_interface entries read before interface was known, and the
	// sync group the instance joined.
	tracks   []*table
	weighted []weightedTrack
	trackIfs []*node
	group    string
	// VRRPv2 (kvrrp_v2.go): advert_int as read, and the authentication
	// block's PASS password.
	advert   time.Duration
	advertAt *node
	pass     string
	passAt   *node
	// advertised is how many addresses keepalived's adverts carry.
	advertised int
}

type notifyCmd struct {
	pos   Pos
	key   string
	cmd   string
	argv  []string
	shell bool
}

// vrrpOrder is the order keys are printed in, the README's.
var vrrpOrder = []string{"name", "vrid", "interface", "priority", "advert_interval", "preempt", "preempt_delay",
	"vips", "unicast_peers", "source_address", "track_interfaces", "notify", "checksum",
	"garp_repeat", "garp_interval", "garp_refresh", "unicast_ttl", "min_ttl", "version", "auth_pass"}

func (v *vrrpInst) set(key string, val any, comment ...string) {
	v.fields[key] = kv{key: key, val: tomlValue(val), comment: strings.Join(comment, " ")}
}

func (v *vrrpInst) table() *table {
	t := newTable("[[vrrp]]", fmt.Sprintf("%s vrrp_instance %s", v.pos, v.name))
	for _, k := range vrrpOrder {
		if e, ok := v.fields[k]; ok {
			t.kvs = append(t.kvs, e)
		}
	}
	if v.sync != nil {
		t.add(v.sync)
	}
	if v.auth != nil {
		t.add(v.auth)
	}
	for _, tr := range v.tracks {
		t.add(tr)
	}
	return t
}

var lvsdName = regexp.MustCompile(`^[A-Za-z0-9._:/@-]+$`)

func (m *kmap) vrrpInstance(b *node) {
	if !m.needArgs(b, 1, 1) {
		return
	}
	v := &vrrpInst{pos: b.pos, name: b.arg(0), version: m.version, fields: map[string]kv{}, notify: map[string]*notifyCmd{}}
	if !lvsdName.MatchString(v.name) {
		clean := regexp.MustCompile(`[^A-Za-z0-9._:/@-]`).ReplaceAllString(v.name, "_")
		m.changed(b, "renamed %q to %q: lvsd names use letters, digits and . _ - : / @", v.name, clean)
		v.name = clean
	}
	v.set("name", v.name)
	m.vrrps = append(m.vrrps, v)
	m.vrrpByID[b.arg(0)] = v

	var vips []string
	var versionNode *node
	for _, n := range b.kids {
		switch k := n.key(); k {
		case "virtual_router_id":
			if id, ok := m.intArg(n, 1, 255); ok {
				v.set("vrid", id)
			}
		case "interface":
			if m.needArgs(n, 1, 1) {
				v.iface = n.arg(0)
				v.set("interface", n.arg(0))
			}
		case "priority":
			if p, ok := m.intArg(n, 1, 255); ok {
				if p == 255 {
					m.changed(n, "priority 254: lvsd has no address owner (255), and an address owner would not run in accept mode")
					p = 254
				}
				v.set("priority", p)
			}
		case "advert_int":
			if d, ok := m.timerArg(n); ok {
				v.advert, v.advertAt = d, n // rounded once the version is known
			}
		case "state":
			if m.needArgs(n, 1, 1) && strings.EqualFold(n.arg(0), "MASTER") {
				m.changed(n, "lvsd starts every instance as backup and lets the priorities elect the master (keepalived's MASTER only sets where it starts)")
			}
		case "nopreempt":
			v.set("preempt", false, "nopreempt")
		case "preempt":
			v.set("preempt", true)
		case "preempt_delay":
			if d, ok := m.timerArg(n); ok {
				v.set("preempt_delay", d)
			}
		case "virtual_ipaddress":
			vips = append(vips, m.vips(n, v)...)
		case "virtual_ipaddress_excluded":
			m.drop(n, "lvsd adverts carry every VIP; there are no excluded addresses (add them to vips if they should move)")
		case "no_virtual_ipaddress":
			m.drop(n, "lvsd instances need at least one VIP")
		case "unicast_peer":
			var peers []string
			var mins []int
			for _, p := range n.kids {
				if a, ok := m.addrArgWord(p, p.key()); ok {
					peers = append(peers, a.String())
				}
				mins = append(mins, m.peerMinTTL(p))
			}
			v.set("unicast_peers", peers)
			if len(mins) > 0 && slices.Min(mins) > 0 {
				v.set("min_ttl", slices.Min(mins))
			}
			if len(mins) > 0 && slices.Min(mins) != slices.Max(mins) {
				m.changed(n, "min_ttl %d for every peer: lvsd has one min_ttl per instance, the lowest of the peers' (none is 0)", slices.Min(mins))
			}
		case "unicast_ttl":
			if ttl, ok := m.intArg(n, 1, 255); ok {
				v.set("unicast_ttl", ttl)
			}
		case "unicast_src_ip", "mcast_src_ip":
			if m.needArgs(n, 1, 1) {
				if a, ok := m.addrArg(n, 0); ok {
					v.set("source_address", a.String(), k)
				}
			}
		case "track_interface":
			v.trackIfs = append(v.trackIfs, n.kids...)
		case "track_script":
			m.trackScripts(n, v, "")
		case "track_file", "track_process", "track_bfd", "track_src_ip":
			m.drop(n, "%s", whyNoTrackKind)
		case "dont_track_primary":
			m.drop(n, "lvsd always tracks the instance's own interface")
		case "version":
			if ver, ok := m.intArg(n, 2, 3); ok {
				v.version, versionNode = ver, n
			}
		case "authentication":
			m.authentication(n, v)
		case "auth_hmac":
			m.authHMAC(n, v)
		case "notify_master", "notify_backup", "notify_fault", "notify":
			if m.needArgs(n, 1, -1) {
				cmd := strings.Join(n.args(), " ")
				argv, shell := splitCommand(cmd)
				v.notify[strings.TrimPrefix(strings.TrimPrefix(k, "notify"), "_")] = &notifyCmd{pos: n.pos, key: k, cmd: cmd, argv: argv, shell: shell}
			}
		case "notify_stop", "notify_deleted", "notify_master_rx_lower_pri":
			m.drop(n, "lvsd runs notify programs on state changes only")
		case "notify_priority_changes":
			m.drop(n, "lvsd's notify runs on state changes, not on priority changes")
		case "smtp_alert":
			m.drop(n, whyNoEmail)
		case "lvs_sync_daemon_interface":
			if m.needArgs(n, 1, 1) {
				v.sync = newTable("[vrrp.sync]", fmt.Sprintf("%s lvs_sync_daemon_interface", n.pos))
				v.sync.set("interface", n.arg(0))
			}
		case "garp_master_delay":
			m.garp(n, v, "garp_master_delay")
		case "garp_master_repeat":
			if r, ok := m.intArg(n, 0, 1<<20); ok {
				v.set("garp_repeat", r, "garp_master_repeat")
			}
		case "garp_master_refresh":
			if d, ok := m.timerArg(n); ok {
				v.set("garp_refresh", d, "garp_master_refresh")
			}
		case "accept":
			// lvsd always runs in accept mode: nothing to say
		case "no_accept":
			m.changed(n, "lvsd always runs in accept mode: IPVS only sees traffic addressed to a local address")
		case "use_vmac", "use_vmac_addr", "vmac_xmit_base", "use_ipvlan":
			m.drop(n, "lvsd has no virtual MAC interfaces: the VIPs go on the instance's interface and move with gratuitous ARP")
		case "virtual_routes", "virtual_rules":
			m.drop(n, "lvsd manages no routes or rules: a notify program can add them")
		case "debug":
			m.ignore(n, "use `lvsd run -log-level debug`")
		case "strict_mode":
			m.drop(n, "lvsd has no strict mode: it adds no firewall rules and always runs in accept mode")
		case "vrf", "mcast_dst_ip", "unicast_fault_no_peer", "check_unicast_src", "old_unicast_checksum",
			"native_ipv6", "promote_secondaries", "linkbeat_use_polling", "skip_check_adv_addr", "down_timer_adverts",
			"timer_expired_backup", "thread_timer_expired", "garp_master_refresh_repeat", "garp_lower_prio_delay",
			"garp_lower_prio_repeat", "garp_extra_if", "vmac_garp_intvl", "lower_prio_no_advert",
			"higher_prio_send_advert", "owner_ignore_adverts", "kernel_rx_buf_size":
			m.drop(n, "lvsd's VRRP has no equivalent setting")
		case "v3_checksum_as_v2":
			if on, ok := m.boolArg(n); ok && on {
				v.set("checksum", "rfc9568", "v3_checksum_as_v2")
			}
		default:
			m.unknown(n, "vrrp_instance")
		}
	}
	if len(vips) > 0 {
		v.set("vips", vips)
		if v.advertised != len(vips) {
			m.drop(b, "keepalived puts all %d addresses of virtual_ipaddress in its adverts, duplicates included, and lvsd %d; "+
				"keepalived drops adverts that carry another count, so while it runs as backup beside this lvsd both become master: "+
				"list each address once in keepalived.conf before the swap", v.advertised, len(vips))
		}
	}
	if _, ok := v.fields["unicast_peers"]; !ok {
		if _, ttl := v.fields["unicast_ttl"]; ttl {
			delete(v.fields, "unicast_ttl") // keepalived resets it too
		}
	}
	m.trackInterfaces(v, "")
	if _, ok := v.fields["checksum"]; !ok && m.checksumV2 {
		v.set("checksum", "rfc9568", "v3_checksum_as_v2")
	}
	for _, g := range []struct {
		n   *node
		key string
	}{{m.garpDelay, "garp_master_delay"}, {m.garpRepeat, "garp_repeat"}, {m.garpRefresh, "garp_refresh"}, {m.garpInterval, "garp_interval"}} {
		if g.n == nil {
			continue
		}
		if _, ok := v.fields[g.key]; ok {
			continue
		}
		switch g.key {
		case "garp_master_delay":
			m.garp(g.n, v, g.key)
		case "garp_repeat":
			if r, ok := m.intArg(g.n, 0, 1<<20); ok {
				v.set("garp_repeat", r, g.n.key())
			}
		default:
			if d, ok := m.timerArg(g.n); ok {
				v.set(g.key, d, g.n.key())
			}
		}
	}
	m.notifyScript(v)
	m.vrrpVersion(v, versionNode)
}

// garp maps garp_master_delay: keepalived sends a second round of GARPs
// this long after becoming master; lvsd spreads its repeats instead.
func (m *kmap) garp(n *node, v *vrrpInst, key string) {
	if _, ok := m.timerArg(n); ok {
		m.drop(n, "lvsd sends no delayed second round of gratuitous ARPs: garp_repeat, garp_interval and garp_refresh shape its rounds")
	}
}

// peerMinTTL reads a unicast_peer's options: its min_ttl (0 without one);
// lvsd has no max_ttl.
func (m *kmap) peerMinTTL(p *node) int {
	args, ttl := p.args(), 0
	for i := 0; i < len(args); i++ {
		switch {
		case args[i] == "min_ttl" && i+1 < len(args):
			v, err := strconv.Atoi(args[i+1])
			if err != nil || v < 0 || v > 255 {
				m.errorf(p, "min_ttl %q must be 0..255", args[i+1])
			}
			ttl = v
			i++
		case args[i] == "max_ttl" && i+1 < len(args):
			m.drop(p, "lvsd has no max_ttl")
			i++
		default:
			m.drop(p, "lvsd has no per-peer option %s", args[i])
		}
	}
	return ttl
}

func (m *kmap) addrArgWord(n *node, w string) (netip.Addr, bool) {
	a, err := netip.ParseAddr(w)
	if err != nil {
		m.errs = append(m.errs, &Error{Pos: n.pos, Msg: fmt.Sprintf("invalid address %q", w)})
		return netip.Addr{}, false
	}
	return a, true
}

// vips reads a virtual_ipaddress block: "ADDR[/LEN] [dev IF] [label L]
// [brd B] [scope S] ...".
func (m *kmap) vips(b *node, v *vrrpInst) []string {
	var out []string
	seen := map[netip.Addr]Pos{}
	for _, n := range b.kids {
		addr := n.key()
		var p netip.Prefix
		var err error
		if strings.Contains(addr, "/") {
			p, err = netip.ParsePrefix(addr)
		} else {
			var a netip.Addr
			a, err = netip.ParseAddr(addr)
			p = netip.PrefixFrom(a, a.BitLen())
		}
		if err != nil {
			m.errs = append(m.errs, &Error{Pos: n.pos, Msg: fmt.Sprintf("virtual_ipaddress: invalid address %q", addr)})
			continue
		}
		fam := "inet"
		if p.Addr().Is6() {
			fam = "inet6"
		}
		if v.family == "" || fam == v.family {
			v.advertised++ // keepalived sends duplicates too
		}
		if first, dup := seen[p.Addr()]; dup {
			m.ignore(n, "the same address as line %d: listed once", first.Line)
			continue
		}
		seen[p.Addr()] = n.pos
		if v.family == "" {
			v.family = fam
		} else if fam != v.family {
			m.drop(n, "an lvsd instance carries one address family: make a second [[vrrp]] with its own VRID for it")
			continue
		}
		args := n.args()
		for i := 0; i < len(args); i++ {
			opt, val := args[i], ""
			if i+1 < len(args) {
				val = args[i+1]
			}
			switch opt {
			case "dev":
				i++
				if val != v.iface {
					m.drop(n, "lvsd puts every VIP on the instance's interface, not on %s", val)
				}
			case "label":
				i++
				m.ignore(n, "lvsd sets no address labels")
			case "brd", "broadcast", "scope", "metric", "preferred_lft", "track_group":
				i++
				m.drop(n, "lvsd adds VIPs without %s %s", opt, val)
			case "no_track", "home", "-nodad", "nodad", "noprefixroute", "autojoin":
				m.drop(n, "lvsd adds VIPs without %s", opt)
			default:
				m.errs = append(m.errs, &Error{Pos: n.pos, Msg: fmt.Sprintf("virtual_ipaddress: unknown option %q", opt)})
			}
		}
		s := p.String()
		if p.Bits() == p.Addr().BitLen() {
			s = p.Addr().String()
		}
		out = append(out, s)
	}
	return out
}

func (m *kmap) authentication(b *node, v *vrrpInst) {
	typ, pass := "", ""
	for _, n := range b.kids {
		switch n.key() {
		case "auth_type":
			if m.needArgs(n, 1, 1) {
				typ = strings.ToUpper(n.arg(0))
			}
		case "auth_pass":
			if m.needArgs(n, 1, -1) {
				pass = strings.Join(n.args(), " ")
			}
		default:
			m.unknown(n, "authentication")
		}
	}
	switch typ {
	case "PASS":
		v.pass, v.passAt = pass, b // carried over by vrrpVersion, for v2
	case "AH":
		m.drop(b, "auth_type AH: lvsd has no IPsec AH (RFC 3768 removed it), so this keepalived drops lvsd's adverts and both become master: "+
			"remove authentication from it first; %s is the way to authenticate adverts", featAuthHMAC.what)
	default:
		m.drop(b, "unknown auth_type %q", typ)
	}
}

// notifyScript turns keepalived's notify_master/backup/fault and notify into
// lvsd's one notify program, a /bin/sh script that lvsd calls with the
// instance, state and priority appended and that calls each of them the
// way keepalived did.
func (m *kmap) notifyScript(v *vrrpInst) {
	if len(v.notify) == 0 {
		return
	}
	var b strings.Builder
	b.WriteString("# lvsd appends: $1 instance, $2 state (master, backup, fault), $3 priority\n")
	cmdline := func(c *notifyCmd, extra string) string {
		if c.shell {
			return c.cmd + extra // keepalived ran it with system(), arguments appended
		}
		q := make([]string, len(c.argv))
		for i, a := range c.argv {
			q[i] = shellQuote(a)
		}
		return strings.Join(q, " ") + extra
	}
	var states []string
	for _, st := range []string{"master", "backup", "fault"} {
		if c := v.notify[st]; c != nil {
			states = append(states, fmt.Sprintf("%s) %s ;;", st, cmdline(c, "")))
		}
	}
	if len(states) > 0 {
		b.WriteString("case \"$2\" in\n" + strings.Join(states, "\n") + "\nesac\n")
	}
	if c := v.notify[""]; c != nil {
		b.WriteString("# keepalived's notify gets: INSTANCE name STATE priority\n")
		b.WriteString(`S=$(printf %s "$2" | tr a-z A-Z)` + "\n")
		b.WriteString(cmdline(c, ` INSTANCE "$1" "$S" "$3"`) + "\n")
	}
	v.set("notify", raw("[\"/bin/sh\", \"-c\", '''\n"+b.String()+"''', \"lvsd-notify\"]"))
	for _, st := range []string{"master", "backup", "fault", ""} {
		if c := v.notify[st]; c != nil {
			m.changed(&node{pos: c.pos, words: []string{c.key}}, "run from lvsd's notify program, a /bin/sh script that picks it by state")
		}
	}
}

// finishVRRP applies what global_defs says about instances.
func (m *kmap) finishVRRP() {
	n := m.lvsSync
	if n == nil {
		return
	}
	if !m.needArgs(n, 1, -1) {
		return
	}
	args := n.args()
	var v *vrrpInst
	rest := args[1:]
	if len(rest) > 0 {
		if v = m.vrrpByID[rest[0]]; v != nil {
			rest = rest[1:]
		}
	}
	if v == nil {
		if len(m.vrrps) != 1 {
			m.errorf(n, "name the vrrp_instance the sync daemons follow")
			return
		}
		v = m.vrrps[0]
	}
	t := newTable("[vrrp.sync]", fmt.Sprintf("%s lvs_sync_daemon", n.pos))
	t.set("interface", args[0])
	for i := 0; i+1 < len(rest); i += 2 {
		switch rest[i] {
		case "id":
			t.set("sync_id", atoiOr(rest[i+1]))
		case "maxlen":
			t.set("maxlen", atoiOr(rest[i+1]))
		case "port":
			t.set("port", atoiOr(rest[i+1]))
		case "ttl":
			t.set("ttl", atoiOr(rest[i+1]))
		case "group":
			t.set("group", rest[i+1])
		default:
			m.errorf(n, "unknown option %q", rest[i])
		}
	}
	if len(rest)%2 == 1 {
		m.errorf(n, "option %q has no value", rest[len(rest)-1])
	}
	v.sync = t
}

func atoiOr(s string) int {
	v, _ := strconv.Atoi(s)
	return v
}
