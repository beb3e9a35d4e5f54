package importer

import (
	"fmt"
	"math"
	"net/netip"
	"strconv"
	"strings"
	"time"
)

// KeepalivedOptions tune how a keepalived.conf is read.
type KeepalivedOptions struct {
	// ConfigID is keepalived's -i: lines starting "@ID" are read only when
	// ID matches ("@^ID" only when it does not).
	ConfigID string
}

// Keepalived imports the keepalived.conf at path, with its includes.
// On a read or syntax error, or a keyword keepalived does not know, it
// returns Errors and no result.
func Keepalived(path string, opts KeepalivedOptions) (*Result, error) {
	m := &kmap{
		rep:      &report{},
		scripts:  map[string]*node{},
		tracked:  map[string]int{},
		groups:   map[string]*node{},
		vrrpByID: map[string]*vrrpInst{},
		version:  2,
	}
	nodes, err := parseKeepalived(path, opts.ConfigID, m.rep)
	if err != nil {
		return nil, err
	}
	m.source = path
	m.run(nodes)
	if len(m.errs) > 0 {
		return nil, m.errs
	}
	return &Result{TOML: render(m.output()), Notes: m.rep.sorted()}, nil
}

// kmap maps keepalived statements to lvsd tables.
type kmap struct {
	rep    *report
	errs   Errors
	source string

	director *table
	vrrps    []*vrrpInst
	vrrpByID map[string]*vrrpInst
	services []*table

	scripts    map[string]*node // vrrp_script by name
	tracked    map[string]int   // vrrp_script name -> instances that track it
	syncGroups []*table         // [[vrrp_sync_group]]
	groups     map[string]*node // virtual_server_group by name

	// global_defs that instances and services inherit
	version      int // vrrp_version
	versionPos   Pos
	garpDelay    *node
	garpRepeat   *node
	garpRefresh  *node
	garpInterval *node
	checksumV2   bool
	lvsSync      *node
}

func (m *kmap) errorf(n *node, format string, args ...any) {
	m.errs = append(m.errs, &Error{Pos: n.pos, Msg: n.key() + ": " + fmt.Sprintf(format, args...)})
}

func (m *kmap) drop(n *node, why string, args ...any) {
	m.rep.add(n.pos, n.key(), Dropped, why, args...)
}

func (m *kmap) changed(n *node, why string, args ...any) {
	m.rep.add(n.pos, n.key(), Changed, why, args...)
}

func (m *kmap) ignore(n *node, why string, args ...any) {
	m.rep.add(n.pos, n.key(), Ignored, why, args...)
}

func (m *kmap) unknown(n *node, where string) {
	m.errs = append(m.errs, &Error{Pos: n.pos, Msg: fmt.Sprintf("unknown keyword %q in %s", n.key(), where)})
}

// needArgs checks the argument count; false (with an error) if wrong.
func (m *kmap) needArgs(n *node, min, max int) bool {
	if c := len(n.args()); c < min || (max >= 0 && c > max) {
		switch {
		case min == max && min == 0:
			m.errorf(n, "takes no value")
		case min == max:
			m.errorf(n, "want %d value(s), got %d", min, c)
		case c < min:
			m.errorf(n, "missing value")
		default:
			m.errorf(n, "too many values")
		}
		return false
	}
	return true
}

func (m *kmap) intArg(n *node, lo, hi int) (int, bool) {
	if !m.needArgs(n, 1, 1) {
		return 0, false
	}
	v, err := strconv.Atoi(n.arg(0))
	if err != nil || v < lo || v > hi {
		m.errorf(n, "invalid value %q (want an integer %d..%d)", n.arg(0), lo, hi)
		return 0, false
	}
	return v, true
}

// timerArg reads keepalived's TIMER: seconds, with up to microseconds.
func (m *kmap) timerArg(n *node) (time.Duration, bool) {
	if !m.needArgs(n, 1, 1) {
		return 0, false
	}
	d, err := parseSeconds(n.arg(0))
	if err != nil {
		m.errorf(n, "invalid value %q (want seconds)", n.arg(0))
		return 0, false
	}
	return d, true
}

func parseSeconds(s string) (time.Duration, error) {
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || f < 0 || math.IsInf(f, 0) || f > 1e9 {
		return 0, fmt.Errorf("invalid seconds %q", s)
	}
	return time.Duration(math.Round(f*1e6)) * time.Microsecond, nil
}

// boolArg reads keepalived's optional BOOL: no value is true.
func (m *kmap) boolArg(n *node) (bool, bool) {
	if !m.needArgs(n, 0, 1) {
		return false, false
	}
	if len(n.args()) == 0 {
		return true, true
	}
	switch strings.ToLower(n.arg(0)) {
	case "true", "on", "yes":
		return true, true
	case "false", "off", "no":
		return false, true
	}
	m.errorf(n, "invalid value %q (want true or false)", n.arg(0))
	return false, false
}

func (m *kmap) addrArg(n *node, i int) (netip.Addr, bool) {
	a, err := netip.ParseAddr(n.arg(i))
	if err != nil {
		m.errorf(n, "invalid address %q", n.arg(i))
		return netip.Addr{}, false
	}
	return a, true
}

func (m *kmap) run(nodes []*node) {
	// Definitions first: keepalived resolves names after reading the whole file.
	for _, n := range nodes {
		switch n.key() {
		case "global_defs":
			m.globalDefs(n)
		case "vrrp_script":
			if m.needArgs(n, 1, 1) {
				m.scripts[n.arg(0)] = n
			}
		case "virtual_server_group":
			if m.needArgs(n, 1, 1) {
				m.groups[n.arg(0)] = n
			}
		}
	}
	for _, n := range nodes {
		switch n.key() {
		case "global_defs":
		case "vrrp_instance":
			m.vrrpInstance(n)
		}
	}
	var scripts []*node
	for _, n := range nodes {
		switch n.key() {
		case "global_defs", "vrrp_instance":
		case "vrrp_script":
			scripts = append(scripts, n) // once every group's tracking is known
		case "vrrp_sync_group":
			m.syncGroup(n)
		case "virtual_server_group":
			m.groupDef(n)
		case "virtual_server":
			m.virtualServer(n)
		case "static_ipaddress", "static_routes", "static_rules":
			m.drop(n, "lvsd manages no static addresses, routes or rules: keep them in the system's network configuration")
		case "virtual_routes", "virtual_rules":
			m.drop(n, "lvsd manages no routes or rules")
		case "SSL":
			m.drop(n, "lvsd's https checks present no client certificate; a CA goes in each check's ca_file")
		case "garp_group":
			m.drop(n, "lvsd has no GARP groups: garp_interval is set per VRRP instance")
		case "linkbeat_interfaces", "linkbeat_use_polling":
			m.ignore(n, "lvsd follows link state through netlink")
		case "track_group", "vrrp_track_process", "vrrp_track_file", "track_file", "bfd_instance", "track_bfd":
			m.drop(n, "%s", whyNoTrackKind)
		case "interface_up_down_delays":
			m.drop(n, "lvsd has no per-interface up/down delays")
		case "net_namespace", "net_namespace_ipvs", "namespace_with_ipsets":
			m.drop(n, "lvsd runs in the namespace it is started in: start it with `ip netns exec NAME`")
		case "use_pid_dir", "instance", "child_wait_time":
			m.ignore(n, "keepalived process setting; lvsd is one process")
		default:
			m.unknown(n, "the top level")
		}
	}
	for _, n := range scripts {
		m.vrrpScript(n)
	}
	m.finishVRRP()
}

// output assembles the tables in the order the README documents them.
func (m *kmap) output() *table {
	root := newTable("")
	root.note(fmt.Sprintf("Imported by `lvsd import keepalived` from %s.\n"+
		"Check it with `lvsd check -config FILE`. What could not be carried over was\n"+
		"listed on stderr (FILE:LINE: keyword: why).", m.source))
	if m.director != nil {
		root.add(m.director)
	}
	for _, v := range m.vrrps {
		root.add(v.table())
	}
	for _, g := range m.syncGroups {
		root.add(g)
	}
	for _, s := range m.services {
		root.add(s)
	}
	return root
}

func (m *kmap) dir() *table {
	if m.director == nil {
		m.director = newTable("[director]")
	}
	return m.director
}

const (
	whyNoEmail = "lvsd sends no e-mail: alert on its Prometheus metrics (README: Monitoring)"
	whyNoSNMP  = "lvsd has no SNMP agent: use its Prometheus metrics"
	whyProcess = "keepalived process tuning; lvsd has no such setting"
	whyNoFIFO  = "lvsd has no notify FIFO: use notify programs, `lvsd status -json` or the metrics"
)

func (m *kmap) globalDefs(b *node) {
	for _, n := range b.kids {
		k := n.key()
		switch {
		case k == "router_id":
			if m.needArgs(n, 1, 1) {
				m.dir().set("name", n.arg(0), "router_id")
			}
		case k == "default_interface":
			if m.needArgs(n, 1, 1) {
				m.dir().set("interface", n.arg(0), "default_interface")
			}
		case k == "vrrp_version":
			if v, ok := m.intArg(n, 2, 3); ok {
				m.version, m.versionPos = v, n.pos
			}
		case k == "vrrp_garp_master_delay":
			m.garpDelay = n
		case k == "vrrp_garp_master_repeat":
			m.garpRepeat = n
		case k == "vrrp_garp_master_refresh":
			m.garpRefresh = n
		case k == "vrrp_garp_interval":
			m.garpInterval = n
		case k == "v3_checksum_as_v2":
			if on, ok := m.boolArg(n); ok {
				m.checksumV2 = on
			}
		case k == "lvs_sync_daemon":
			m.lvsSync = n // applied to its instance once the instances are read
		case k == "lvs_flush":
			m.dir().set("own_all", true, "lvs_flush")
			m.changed(n, "own_all = true: lvsd removes IPVS services no config entry names on every pass, not only at start")
		case k == "lvs_flush_on_stop" || k == "lvs_flush_onstop":
			m.dir().set("on_exit", "flush", k)
			m.changed(n, `on_exit = "flush": lvsd removes the services it configured when it stops, not the whole table`)
		case k == "lvs_timeouts":
			m.drop(n, "lvsd does not set IPVS timeouts: set them with `ipvsadm --set`")
		case strings.HasPrefix(k, "notification_email") || strings.HasPrefix(k, "smtp_") ||
			k == "no_email_faults" || k == "no_checker_emails":
			m.drop(n, whyNoEmail)
		case strings.HasPrefix(k, "enable_snmp") || strings.HasPrefix(k, "snmp_") || k == "enable_traps":
			m.drop(n, whyNoSNMP)
		case strings.HasPrefix(k, "enable_dbus") || strings.HasPrefix(k, "dbus_"):
			m.drop(n, "lvsd has no D-Bus interface: `lvsd takeover`/`giveup`/`status` use its control socket")
		case strings.Contains(k, "notify_fifo"):
			m.drop(n, whyNoFIFO)
		case k == "script_user" || k == "enable_script_security":
			m.drop(n, "lvsd runs exec checks and notify programs as its own user, with its own capabilities")
		case k == "startup_script" || k == "startup_script_timeout" || k == "shutdown_script" || k == "shutdown_script_timeout":
			m.drop(n, "lvsd runs no start-up or shutdown scripts: use ExecStartPre/ExecStopPost in its systemd unit")
		case k == "vrrp_mcast_group4" || k == "vrrp_mcast_group6":
			m.drop(n, "lvsd advertises to the standard groups 224.0.0.18 and ff02::12")
		case k == "vrrp_strict":
			m.drop(n, "lvsd has no strict mode: it adds no firewall rules and always runs in accept mode")
		case k == "vrrp_iptables" || k == "vrrp_ipsets" || strings.HasPrefix(k, "nftables"):
			m.drop(n, "lvsd adds no firewall rules")
		case k == "vrrp_rt_priority":
			if v, ok := m.intArg(n, 1, 99); ok {
				m.dir().set("vrrp_rt_priority", v, k)
			}
		case k == "vrrp_no_swap":
			if on, ok := m.boolArg(n); ok && on {
				m.dir().set("lock_memory", true, k)
				m.changed(n, "lock_memory = true: lvsd locks all its memory (one process; keepalived locked its VRRP process)")
			}
		case strings.HasSuffix(k, "_rt_priority") || strings.HasSuffix(k, "_priority") && k != "vrrp_notify_priority_changes" ||
			strings.HasSuffix(k, "_no_swap") || strings.HasSuffix(k, "_cpu_affinity") || strings.Contains(k, "_rlimit_"):
			m.ignore(n, "%s (scheduling and memory locking belong in lvsd's systemd unit)", whyProcess)
		case k == "process_names" || strings.HasSuffix(k, "process_name") || k == "use_symlink_paths" ||
			k == "set_supplementary_groups" || strings.Contains(k, "_rcv_bufs") || strings.HasPrefix(k, "vrrp_rx_bufs") ||
			k == "umask" || k == "random_seed" || strings.HasPrefix(k, "reload_") || k == "include_check" ||
			k == "config_save_dir" || k == "tmp_config_directory" || k == "data_use_instance" || k == "json_version" ||
			strings.HasPrefix(k, "iproute_") || strings.HasSuffix(k, "_dump_file") || k == "dynamic_interfaces" ||
			k == "child_wait_time" || k == "max_auto_priority" || k == "min_auto_priority_delay" ||
			k == "linkbeat_use_polling" || k == "vmac_prefix" || k == "vmac_addr_prefix":
			m.ignore(n, "%s", whyProcess)
		case k == "checker_log_all_failures":
			m.ignore(n, "lvsd logs every health transition and shows the last failure in `lvsd status`")
		case globalVRRPKeywords[k]:
			m.drop(n, "lvsd's VRRP has no equivalent setting")
		default:
			m.unknown(n, "global_defs")
		}
	}
}

// globalVRRPKeywords are global_defs VRRP settings lvsd has no equivalent for.
var globalVRRPKeywords = set("vrrp_check_unicast_src", "vrrp_skip_check_adv_addr", "vrrp_lower_prio_no_advert",
	"vrrp_higher_prio_send_advert", "vrrp_owner_ignore_adverts", "vrrp_down_timer_adverts",
	"vrrp_garp_lower_prio_delay", "vrrp_garp_lower_prio_repeat", "vrrp_garp_master_refresh_repeat",
	"vrrp_min_garp", "vrrp_garp_extra_if", "vrrp_vmac_garp_intvl", "vrrp_gna_interval", "vrrp_startup_delay",
	"vrrp_delay_after_boot", "log_unknown_vrids", "disable_local_igmp", "vrrp_notify_priority_changes",
	"fifo_write_vrrp_states_on_reload", "rs_init_notifies", "vrrp_rx_bufs_policy")

func set(words ...string) map[string]bool {
	s := map[string]bool{}
	for _, w := range words {
		s[w] = true
	}
	return s
}
