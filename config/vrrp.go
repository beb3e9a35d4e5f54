package config

import (
	"net/netip"
	"path/filepath"
	"strconv"
	"time"
)

func (l *loader) vrrps(cfg *Config) {
	byName := map[string]*VRRP{}
	type vrid struct {
		iface  string
		id     int
		family bool // true for IPv6: RFC 5798 gives each family its own VRID space
	}
	byVRID := map[vrid]*VRRP{}
	var syncOwner *VRRP
	for i := range cfg.VRRP {
		v := &cfg.VRRP[i]
		at := l.locs[v]
		l.vrrp(v, cfg, at)
		if v.Name != "" {
			if other, dup := byName[v.Name]; dup {
				l.errorf(at.key("name"), "duplicate vrrp name %q (first at line %d)", v.Name, l.index.lineOf(l.locs[other].raw()))
			} else {
				byName[v.Name] = v
			}
		}
		if v.VRID >= 1 && v.VRID <= 255 && v.Interface != "" {
			k := vrid{v.Interface, v.VRID, len(v.VIPs) > 0 && v.VIPs[0].Addr().Is6()}
			if other, dup := byVRID[k]; dup {
				l.errorf(at.key("vrid"), "VRID %d is already used on %s by vrrp[%s]", v.VRID, v.Interface, other.Name)
			} else {
				byVRID[k] = v
			}
		}
		if v.Sync != nil {
			// The kernel runs one master and one backup sync daemon per
			// network namespace, so only one instance can drive them.
			if syncOwner != nil {
				l.errorf(at.key("sync"), "only one vrrp instance can run connection sync, and vrrp[%s] already does", syncOwner.Name)
			} else {
				syncOwner = v
			}
		}
	}
	l.syncGroups(cfg)
}

func (l *loader) vrrp(v *VRRP, cfg *Config, at loc) {
	g := l.keysOf(at)
	switch {
	case v.Name == "":
		l.errorf(at.key("name"), "required")
	case !validName.MatchString(v.Name):
		l.errorf(at.key("name"), "invalid name %q (use letters, digits and . _ - : / @)", v.Name)
	}
	switch {
	case !g["vrid"]:
		l.errorf(at.key("vrid"), "required (1..255)")
	case v.VRID < 1 || v.VRID > 255:
		l.errorf(at.key("vrid"), "%d out of range 1..255", v.VRID)
	}
	if v.Interface == "" {
		v.Interface = cfg.Director.Interface
	}
	if v.Interface == "" {
		l.errorf(at.key("interface"), "required (or set director.interface)")
	}
	if g.unset("priority", v.Priority == 0) {
		v.Priority = 100
	}
	if v.Priority < 1 || v.Priority > 254 {
		l.errorf(at.key("priority"), "%d out of range 1..254", v.Priority)
	}
	if g.unset("advert_interval", v.AdvertInterval.Duration == 0) {
		v.AdvertInterval.Duration = time.Second
	}
	if g.unset("version", v.Version == 0) {
		v.Version = 3
	}
	switch v.Version {
	case 3:
		if d := v.AdvertInterval.Duration; d < 10*time.Millisecond || d > 40950*time.Millisecond || d%(10*time.Millisecond) != 0 {
			l.errorf(at.key("advert_interval"), "%s is not 10ms..40.95s in steps of 10ms (VRRPv3 counts centiseconds)", d)
		}
		if g["auth_pass"] {
			l.errorf(at.key("auth_pass"), "only with version = 2: VRRPv3 carries no password (sign adverts with [vrrp.auth])")
		}
	case 2:
		l.vrrpV2(v, at, g)
	default:
		l.errorf(at.key("version"), "%d: want 3 (RFC 5798) or 2 (RFC 3768, to pair with keepalived's default)", v.Version)
	}
	if v.Preempt == nil {
		v.Preempt = boolPtr(true)
	}
	if g.unset("notify_timeout", v.NotifyTimeout.Duration == 0) {
		v.NotifyTimeout.Duration = 10 * time.Second
	}
	if v.NotifyTimeout.Duration <= 0 {
		l.errorf(at.key("notify_timeout"), "must be positive")
	}
	if len(v.Notify) > 0 && !filepath.IsAbs(v.Notify[0]) {
		l.errorf(at.key("notify").elem(0, "1"), "%q must be an absolute path (notify runs without a shell)", v.Notify[0])
	}
	if g.unset("checksum", v.Checksum == "") {
		v.Checksum = "rfc5798"
	}
	l.enum(at.key("checksum"), v.Checksum, []string{"rfc5798", "rfc9568"})
	if g.unset("garp_repeat", v.GARPRepeat == 0) {
		v.GARPRepeat = 5
	}
	if v.GARPRepeat < 0 {
		l.errorf(at.key("garp_repeat"), "must not be negative")
	}
	l.vrrpAddresses(v, at)
	l.vrrpTTL(v, at, g)
	if v.Version != 2 { // where [vrrp.auth] is an error of its own
		l.vrrpAuth(v, at.key("auth"))
	}
	for i, name := range v.TrackServices {
		if cfg.Service(name) == nil {
			l.errorf(at.key("track_services").elem(i, strconv.Itoa(i+1)), "unknown service %q", name)
		}
	}
	for i, name := range v.TrackInterfaces {
		if name == "" {
			l.errorf(at.key("track_interfaces").elem(i, strconv.Itoa(i+1)), "must not be empty")
		}
	}
	if v.Sync != nil {
		l.sync(v, at.key("sync"))
	}
	l.vrrpHA(v, cfg, at)
}

// vrrpAddresses keeps one family per instance: a VRRPv3 advertisement
// carries addresses of a single family, and peers must speak it.
func (l *loader) vrrpAddresses(v *VRRP, at loc) {
	firstAt := -1
	for i, p := range v.VIPs {
		if p.IsValid() { // invalid ones already have their error
			firstAt = i
			break
		}
	}
	if firstAt < 0 {
		l.errorf(at.key("vips"), "at least one VIP is required")
		return
	}
	first := v.VIPs[firstAt].Addr()
	seen := map[netip.Addr]int{}
	for i, p := range v.VIPs {
		el := at.key("vips").elem(i, strconv.Itoa(i+1))
		if !p.IsValid() {
			continue
		}
		if j, dup := seen[p.Addr()]; dup {
			l.errorf(el, "duplicate of vips[%d]", j+1)
			continue
		}
		seen[p.Addr()] = i
		if p.Addr().Is4() != first.Is4() {
			l.errorf(el, "%s is %s but vips[%d] is %s (one VRRP instance carries one family)", p, familyName(p.Addr()), firstAt+1, familyName(first))
		}
	}
	peers := map[netip.Addr]int{}
	for i, a := range v.UnicastPeers {
		el := at.key("unicast_peers").elem(i, strconv.Itoa(i+1))
		switch j, dup := peers[a.IP]; {
		case !a.IsValid():
			continue
		case a.Port != 0:
			l.errorf(el, "must be an address without a port")
		case dup:
			l.errorf(el, "duplicate of unicast_peers[%d]", j+1)
		case a.IP.Is4() != first.Is4():
			l.errorf(el, "%s is %s but the VIPs are %s", a.IP, familyName(a.IP), familyName(first))
		}
		peers[a.IP] = i
	}
	if a := v.SourceAddress; a.IsValid() {
		switch {
		case a.Port != 0:
			l.errorf(at.key("source_address"), "must be an address without a port")
		case a.IP.Is4() != first.Is4():
			l.errorf(at.key("source_address"), "%s is %s but the VIPs are %s", a.IP, familyName(a.IP), familyName(first))
		}
	}
}

// vrrpTTL checks unicast_ttl and min_ttl, which only unicast adverts have:
// multicast ones always travel with 255 (RFC 5798 section 5.1.1.3).
func (l *loader) vrrpTTL(v *VRRP, at loc, g keySet) {
	if g.unset("unicast_ttl", v.UnicastTTL == 0) {
		v.UnicastTTL = 255
	} else if len(v.UnicastPeers) == 0 {
		l.errorf(at.key("unicast_ttl"), "only applies with unicast_peers (multicast adverts go with TTL 255)")
	}
	if v.UnicastTTL < 1 || v.UnicastTTL > 255 {
		l.errorf(at.key("unicast_ttl"), "%d out of range 1..255", v.UnicastTTL)
	}
	if g["min_ttl"] && len(v.UnicastPeers) == 0 {
		l.errorf(at.key("min_ttl"), "only applies with unicast_peers (multicast adverts must arrive with TTL 255)")
	}
	if v.MinTTL < 0 || v.MinTTL > 255 {
		l.errorf(at.key("min_ttl"), "%d out of range 0..255", v.MinTTL)
	}
}

func (l *loader) sync(v *VRRP, at loc) {
	s := v.Sync
	g := l.keysOf(at)
	if s.Interface == "" {
		s.Interface = v.Interface
	}
	if g.unset("sync_id", s.SyncID == 0) {
		s.SyncID = v.VRID
	}
	if s.SyncID < 0 || s.SyncID > 255 {
		l.errorf(at.key("sync_id"), "%d out of range 0..255", s.SyncID)
	}
	if g.unset("port", s.Port == 0) {
		s.Port = 8848
	}
	l.portRange(at.key("port"), s.Port, 1)
	if !s.Group.IsValid() {
		s.Group = Addr{IP: netip.MustParseAddr("224.0.0.81")}
	}
	switch {
	case s.Group.Port != 0:
		l.errorf(at.key("group"), "must be an address without a port (set port)")
	case !s.Group.IP.IsMulticast():
		l.errorf(at.key("group"), "%s is not a multicast address", s.Group.IP)
	}
	if g.unset("ttl", s.TTL == 0) {
		s.TTL = 1
	}
	if s.TTL < 1 || s.TTL > 255 {
		l.errorf(at.key("ttl"), "%d out of range 1..255", s.TTL)
	}
	if s.MaxLen < 0 || s.MaxLen > 65535 {
		l.errorf(at.key("maxlen"), "%d out of range 0..65535", s.MaxLen)
	}
}
