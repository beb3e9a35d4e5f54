package importer

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// keepalived's tracking and sync groups: vrrp_script with track_script,
// track_interface with weights, and vrrp_sync_group.

const whyNoTrackKind = "lvsd tracks scripts, interfaces and services, not files, processes or BFD: a track_script can test what this tracked"

// weightedTrack is an emitted tracker with a non-zero weight, which a sync
// group without sync_group_tracking_weight sets to 0, as keepalived does.
type weightedTrack struct {
	t *table
	n *node
}

// scriptDef is a vrrp_script as lvsd's track_script needs it.
type scriptDef struct {
	argv                         []string
	interval, timeout            time.Duration
	weight, rise, fall           int
	hasTimeout, hasRise, hasFall bool
}

// scriptDef reads a vrrp_script without notes (vrrpScript gives them, once).
func (m *kmap) scriptDef(b *node) (scriptDef, bool) {
	d := scriptDef{interval: time.Second, rise: 1, fall: 1}
	ok := false
	for _, n := range b.kids {
		switch n.key() {
		case "script":
			if len(n.args()) > 0 {
				d.argv, _ = splitCommand(strings.Join(n.args(), " "))
				ok = true
			}
		case "interval":
			if v, err := parseSeconds(n.arg(0)); err == nil && v > 0 {
				d.interval = v
			}
		case "timeout":
			if v, err := parseSeconds(n.arg(0)); err == nil && v > 0 {
				d.timeout, d.hasTimeout = v, true
			}
		case "weight":
			d.weight, _ = strconv.Atoi(n.arg(0))
		case "rise":
			d.rise, _ = strconv.Atoi(n.arg(0))
			d.hasRise = true
		case "fall":
			d.fall, _ = strconv.Atoi(n.arg(0))
			d.hasFall = true
		}
	}
	return d, ok
}

// vrrpScript checks a vrrp_script and says what of it lvsd does otherwise;
// the instances that track it carry it over (trackScripts).
func (m *kmap) vrrpScript(b *node) {
	for _, n := range b.kids {
		switch n.key() {
		case "script":
			if m.needArgs(n, 1, -1) {
				if _, shell := splitCommand(strings.Join(n.args(), " ")); shell {
					m.changed(n, "run as /bin/sh -c: lvsd runs argv without a shell, and this command needs one")
				}
			}
		case "interval", "timeout":
			m.timerArg(n)
		case "rise", "fall":
			m.intArg(n, 1, 1<<20)
		case "weight":
			if m.needArgs(n, 1, 2) {
				m.intArg(&node{pos: n.pos, words: n.words[:2]}, -253, 253)
				if len(n.args()) == 2 {
					m.drop(n, "lvsd has no reverse weights: the weight applies %s", "while the script fails (negative) or passes (positive)")
				}
			}
		case "user":
			m.drop(n, "lvsd runs tracked scripts as its own user: use runuser in the command")
		case "init_fail":
			m.changed(n, "lvsd judges a script by its first result, and adds no weight before it")
		default:
			m.unknown(n, "vrrp_script")
		}
	}
	switch k := m.tracked[b.arg(0)]; {
	case func() bool { _, ok := m.scriptDef(b); return !ok }():
		m.drop(b, "it has no script line, and keepalived removes it too")
	case k == 0:
		m.ignore(b, "no vrrp_instance tracks it")
	case k > 1:
		m.changed(b, "lvsd runs it for each of the %d instances that track it", k)
	}
}

// trackScripts carries a track_script block over as [[vrrp.track_script]]
// tables, each with its vrrp_script's command and timers and the weight
// given here or in the script. from names a sync group whose tracking this
// is ("" for the instance's own).
func (m *kmap) trackScripts(b *node, v *vrrpInst, from string) {
	for _, n := range b.kids {
		sn := m.scripts[n.key()]
		if sn == nil {
			m.errs = append(m.errs, &Error{Pos: n.pos, Msg: fmt.Sprintf("track_script: no vrrp_script %q", n.key())})
			continue
		}
		d, ok := m.scriptDef(sn)
		if !ok {
			m.drop(n, "vrrp_script %s has no script line, and keepalived removes it too", n.key())
			continue
		}
		m.tracked[n.key()]++
		weight := d.weight
		if args := n.args(); len(args) >= 2 && args[0] == "weight" {
			weight, _ = strconv.Atoi(args[1])
			if len(args) > 2 {
				m.drop(n, "lvsd has no reverse weights")
			}
		}
		t := newTable("[[vrrp.track_script]]", fmt.Sprintf("%s vrrp_script %s", sn.pos, n.key()))
		t.set("name", cleanName(n.key()))
		t.set("command", d.argv)
		t.set("interval", d.interval)
		if d.hasTimeout {
			t.set("timeout", d.timeout)
		}
		if d.hasRise && d.rise != 1 {
			t.set("rise", d.rise)
		}
		if d.hasFall && d.fall != 1 {
			t.set("fall", d.fall)
		}
		m.weighted(v, t, n, weight, from)
		v.tracks = append(v.tracks, t)
	}
}

// trackInterfaces carries track_interface entries over: without a weight
// (or weight 0) into track_interfaces, with one as [[vrrp.track_interface]].
func (m *kmap) trackInterfaces(v *vrrpInst, from string) {
	var plain []string
	if e, ok := v.fields["track_interfaces"]; ok && from != "" {
		plain = parseTOMLStrings(e.val)
	}
	for _, n := range v.trackIfs {
		name := n.key()
		if name == v.iface && v.iface != "" {
			m.ignore(n, "lvsd always tracks the instance's own interface (down is fault)")
			continue
		}
		weight := 0
		if args := n.args(); len(args) >= 2 && args[0] == "weight" {
			w, err := strconv.Atoi(args[1])
			if err != nil || w < -253 || w > 253 {
				m.errorf(n, "invalid weight %q (want -253..253)", args[1])
				continue
			}
			weight = w
			if len(args) > 2 {
				m.drop(n, "lvsd has no reverse weights")
			}
		}
		if weight == 0 && from == "" {
			plain = append(plain, name)
			continue
		}
		t := newTable("[[vrrp.track_interface]]")
		t.set("name", name)
		m.weighted(v, t, n, weight, from)
		v.tracks = append(v.tracks, t)
	}
	v.trackIfs = nil
	if len(plain) > 0 {
		v.set("track_interfaces", plain)
	}
}

// weighted sets a tracker's weight and remembers the table, which a sync
// group may set to 0.
func (m *kmap) weighted(v *vrrpInst, t *table, n *node, weight int, from string) {
	if from != "" {
		m.changed(n, "tracked by vrrp_instance %s: in lvsd one member's fault is its whole sync group's", v.name)
		weight = 0 // keepalived's group tracking is weight 0
	}
	t.set("weight", weight)
	if weight != 0 {
		v.weighted = append(v.weighted, weightedTrack{t, n})
	}
}

// parseTOMLStrings reads back a []string tomlValue wrote.
func parseTOMLStrings(s string) []string {
	var out []string
	for _, q := range strings.Split(strings.Trim(s, "[]"), ",") {
		if q = strings.TrimSpace(q); q != "" {
			if u, err := strconv.Unquote(q); err == nil {
				out = append(out, u)
			}
		}
	}
	return out
}

func cleanName(s string) string {
	if lvsdName.MatchString(s) {
		return s
	}
	var b strings.Builder
	for _, r := range s {
		if lvsdName.MatchString(string(r)) {
			b.WriteRune(r)
		} else {
			b.WriteByte('_')
		}
	}
	return b.String()
}

// syncGroup carries a vrrp_sync_group over as [[vrrp_sync_group]].
func (m *kmap) syncGroup(b *node) {
	if !m.needArgs(b, 1, 1) {
		return
	}
	var members []*vrrpInst
	var groupTracks []*node
	trackingWeight := false
	for _, n := range b.kids {
		switch n.key() {
		case "group":
			for _, i := range n.kids {
				v, ok := m.vrrpByID[i.key()]
				switch {
				case !ok:
					m.errs = append(m.errs, &Error{Pos: i.pos, Msg: fmt.Sprintf("vrrp_sync_group %s: no vrrp_instance %q", b.arg(0), i.key())})
				case v.group != "":
					m.drop(i, "already in vrrp_sync_group %s (an instance belongs to one group, as keepalived also says)", v.group)
				default:
					members = append(members, v)
				}
			}
		case "notify_master", "notify_backup", "notify_fault", "notify", "notify_stop":
			m.drop(n, "lvsd's sync groups run no notify of their own: each instance's notify runs as it changes state")
		case "track_interface", "track_script":
			groupTracks = append(groupTracks, n)
		case "sync_group_tracking_weight":
			trackingWeight = true
			m.changed(n, "lvsd applies each member's tracked weights to every member of the group, so they rise and fall together")
		case "global_tracking":
			m.ignore(n, "deprecated in keepalived; lvsd's members share their faults and weights anyway")
		case "track_file", "track_process", "track_bfd":
			m.drop(n, "%s", whyNoTrackKind)
		case "smtp_alert":
			m.drop(n, whyNoEmail)
		case "notify_priority_changes":
			m.drop(n, "lvsd's notify runs on state changes, not on priority changes")
		default:
			// keepalived before 1.2 listed the instances directly in the block
			if v, ok := m.vrrpByID[n.key()]; ok && len(n.args()) == 0 && !n.block {
				members = append(members, v)
			} else {
				m.unknown(n, "vrrp_sync_group")
			}
		}
	}
	if len(members) < 2 {
		m.drop(b, "it has %d instance(s): an lvsd sync group needs two or more (a group of one syncs nothing)", len(members))
		return
	}
	name := cleanName(b.arg(0))
	t := newTable("[[vrrp_sync_group]]", fmt.Sprintf("%s vrrp_sync_group %s", b.pos, b.arg(0)))
	t.set("name", name)
	var names []string
	for _, v := range members {
		v.group = name
		names = append(names, v.name)
		if !trackingWeight {
			for _, w := range v.weighted {
				w.t.remove("weight")
				w.t.set("weight", 0, "keepalived ignores weights in a sync group")
				m.changed(w.n, "weight 0 (fault while down): keepalived ignores tracking weights in a sync group unless sync_group_tracking_weight is set")
			}
		}
	}
	t.set("instances", names)
	// The group's own tracking goes on its first member: a member's fault
	// is the group's.
	for _, n := range groupTracks {
		if n.key() == "track_script" {
			m.trackScripts(n, members[0], b.arg(0))
			continue
		}
		members[0].trackIfs = n.kids
		m.trackInterfaces(members[0], b.arg(0))
	}
	m.syncGroups = append(m.syncGroups, t)
}
