package config

import (
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// Defaults are applied only to keys absent from the file, then every
// value is validated. Errors go to the loader with the path and line of
// the offending key, or of the table lacking a required one.

// The values IPVS accepts, as ipvsadm spells them.
var (
	Schedulers  = []string{"rr", "wrr", "lc", "wlc", "lblc", "lblcr", "dh", "sh", "mh", "sed", "nq", "fo", "ovf"}
	Forwardings = []string{"nat", "dr", "tun"}
	Protocols   = []string{"tcp", "udp", "sctp"}
)

// names appear in metrics labels, logs and the control CLI, so they stay
// free of spaces and quoting trouble.
var validName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._:/@-]*$`)

func (l *loader) enum(at loc, value string, allowed []string) {
	if !contains(allowed, value) {
		l.errorf(at, "invalid value %q (want %s)", value, orList(allowed))
	}
}

func (l *loader) portRange(at loc, port, lo int) {
	if port < lo || port > 65535 {
		l.errorf(at, "%d out of range %d..65535", port, lo)
	}
}

func (l *loader) director(d *Director) {
	at := loc{}.key("director")
	g := l.keysOf(at)
	if g.unset("name", d.Name == "") {
		if h, err := os.Hostname(); err == nil {
			d.Name = h
		} else {
			d.Name = "lvsd"
		}
	}
	if d.Name == "" {
		l.errorf(at.key("name"), "must not be empty")
	}
	if g.unset("reconcile_interval", d.ReconcileInterval.Duration == 0) {
		d.ReconcileInterval.Duration = 30 * time.Second
	}
	if d.ReconcileInterval.Duration <= 0 {
		l.errorf(at.key("reconcile_interval"), "must be positive")
	}
	if g.unset("metrics_listen", d.MetricsListen == "") {
		d.MetricsListen = "127.0.0.1:9910"
	}
	if d.MetricsListen != "" {
		_, port, err := net.SplitHostPort(d.MetricsListen)
		if n, perr := strconv.Atoi(port); err != nil || perr != nil || n < 0 || n > 65535 {
			l.errorf(at.key("metrics_listen"), `invalid listen address %q (want host:port such as "127.0.0.1:9910", or "" to disable)`, d.MetricsListen)
		}
	}
	if g.unset("control_socket", d.ControlSocket == "") {
		d.ControlSocket = "/run/lvsd/lvsd.sock"
	}
	if d.ControlSocket != "" && !filepath.IsAbs(d.ControlSocket) {
		l.errorf(at.key("control_socket"), "%q must be an absolute path", d.ControlSocket)
	}
	if g.unset("on_exit", d.OnExit == "") {
		d.OnExit = "keep"
	}
	l.enum(at.key("on_exit"), d.OnExit, []string{"keep", "flush"})
	if d.VRRPRTPriority < 0 || d.VRRPRTPriority > 99 {
		l.errorf(at.key("vrrp_rt_priority"), "%d out of range 0..99 (0 = off, else the SCHED_RR priority of the VRRP thread)", d.VRRPRTPriority)
	}
	for _, p := range []**bool{&d.ExpireNodestConn, &d.ExpireQuiescentTemplate, &d.IPForward} {
		if *p == nil {
			*p = boolPtr(true)
		}
	}
	l.evictionGuard(&d.EvictionGuard, at.key("eviction_guard"))
	l.web(&d.Web, at.key("web"), d.MetricsListen)
}

func (l *loader) services(cfg *Config) {
	byName := map[string]*Service{}
	byKey := map[ServiceKey]*Service{}
	for _, s := range cfg.Services {
		at := l.locs[s]
		l.service(s, at)
		if other, dup := byName[s.Name]; dup {
			l.errorf(at.key("name"), "duplicate service name %q (first at line %d)", s.Name, other.Line)
		} else {
			byName[s.Name] = s
		}
		if other, dup := byKey[s.Key()]; dup {
			what := "vip, port and protocol"
			if s.FWMark != 0 {
				what = "fwmark and family"
			}
			l.errorf(at, "duplicate of service %q (line %d): same %s", other.Name, other.Line, what)
		} else if s.Port != 0 || s.FWMark != 0 || s.VIP.IsValid() {
			byKey[s.Key()] = s
		}
	}
}

func (l *loader) service(s *Service, at loc) {
	g := l.keysOf(at)
	if g["name"] && !validName.MatchString(s.Name) {
		l.errorf(at.key("name"), "invalid name %q (use letters, digits and . _ - : / @)", s.Name)
	}
	if s.FWMark != 0 {
		for _, k := range []string{"vip", "port", "protocol"} {
			if g[k] {
				l.errorf(at.key(k), "a fwmark service has no vip, port or protocol")
			}
		}
		s.VIP, s.Port, s.Protocol = Addr{}, 0, ""
		if s.Family == "" {
			s.Family = "inet"
		}
		l.enum(at.key("family"), s.Family, []string{"inet", "inet6"})
	} else {
		if g["fwmark"] {
			l.errorf(at.key("fwmark"), "must be 1..4294967295 (0 is no fwmark)")
		}
		switch {
		case !s.VIP.IsValid():
			l.errorf(at.key("vip"), "required (or fwmark)")
		case s.VIP.Port != 0:
			l.errorf(at.key("vip"), "give the port in port, not in the address")
		default:
			if s.Family != "" && s.Family != family(s.VIP.IP) {
				l.errorf(at.key("family"), "%s does not match vip %s", s.Family, s.VIP.IP)
			}
			s.Family = family(s.VIP.IP)
		}
		switch {
		case !g["port"]:
			l.errorf(at.key("port"), "required")
		case s.Port == 0 && s.Persistence.Duration == 0:
			l.errorf(at.key("port"), "0 (all ports) needs persistence")
		case s.Port != 0:
			l.portRange(at.key("port"), s.Port, 1)
		}
		if s.Protocol == "" {
			s.Protocol = "tcp"
		}
		l.enum(at.key("protocol"), s.Protocol, Protocols)
	}
	if g.unset("scheduler", s.Scheduler == "") {
		s.Scheduler = "wlc"
	}
	l.enum(at.key("scheduler"), s.Scheduler, Schedulers)
	l.schedFlags(s, at)
	if g.unset("forwarding", s.Forwarding == "") {
		s.Forwarding = "nat"
	}
	l.enum(at.key("forwarding"), s.Forwarding, Forwardings)
	if s.Persistence.Duration%time.Second != 0 {
		l.errorf(at.key("persistence"), "must be whole seconds, not %s", s.Persistence.Duration)
	}
	if g["persistence_netmask"] {
		if s.Persistence.Duration == 0 {
			l.errorf(at.key("persistence_netmask"), "needs persistence")
		} else if _, ok := parseNetmask(s.PersistenceNetmask, s.Family == "inet6"); !ok {
			want := "a prefix length 0..32 or a mask such as 255.255.255.0"
			if s.Family == "inet6" {
				want = "a prefix length 0..128"
			}
			l.errorf(at.key("persistence_netmask"), "invalid netmask %q for an %s service (want %s)", s.PersistenceNetmask, familyWord(s.Family), want)
		}
	}
	if s.OnePacket && s.FWMark == 0 && s.Protocol != "udp" {
		l.errorf(at.key("one_packet"), "only works for udp services")
	}
	if g.unset("quorum", s.Quorum == 0) {
		s.Quorum = 1
	}
	if s.Quorum < 0 {
		l.errorf(at.key("quorum"), "must not be negative")
	}
	if s.Hysteresis < 0 {
		l.errorf(at.key("hysteresis"), "must not be negative")
	}
	if s.SorryServer.IsValid() {
		if s.VIP.IsValid() && s.SorryServer.IP.Is4() != s.VIP.IP.Is4() {
			l.errorf(at.key("sorry_server"), "%s is %s but the service is %s", s.SorryServer.IP, familyName(s.SorryServer.IP), familyName(s.VIP.IP))
		}
		if s.SorryServer.Port == 0 {
			s.SorryServer.Port = s.Port
		}
	}
	if g.unset("on_failure", s.OnFailure == "") {
		s.OnFailure = "remove"
	}
	l.enum(at.key("on_failure"), s.OnFailure, []string{"remove", "drain"})
	if s.Alpha == nil {
		s.Alpha = boolPtr(true)
	}
	if !g["name"] {
		s.Name = s.Key().String()
	}
	for _, c := range s.Checks {
		l.check(c, s)
	}
	seen := make(map[netip.AddrPort]*RealServer, len(s.RealServers))
	for _, r := range s.RealServers {
		l.realServer(r, s)
		if !r.Address.IsValid() {
			continue
		}
		if other, dup := seen[r.AddrPort()]; dup {
			l.errorf(l.locs[r], "duplicate of %s (%s, line %d)", l.locs[other].disp()[len(at.disp())+1:], r.Key(), other.Line)
			continue
		}
		seen[r.AddrPort()] = r
	}
}

func (l *loader) schedFlags(s *Service, at loc) {
	if len(s.SchedFlags) == 0 {
		return
	}
	if s.Scheduler != "sh" && s.Scheduler != "mh" {
		l.errorf(at.key("sched_flags"), "only for the sh and mh schedulers")
		return
	}
	allowed := []string{s.Scheduler + "-fallback", s.Scheduler + "-port"}
	for i, f := range s.SchedFlags {
		if !contains(allowed, f) {
			l.errorf(at.key("sched_flags").elem(i, strconv.Itoa(i+1)), "unknown flag %q for %s (want %s)", f, s.Scheduler, orList(allowed))
		}
	}
}

func (l *loader) realServer(r *RealServer, s *Service) {
	at := l.locs[r]
	g := l.keysOf(at)
	switch {
	case !r.Address.IsValid():
		l.errorf(at.key("address"), "required")
	case r.Address.Port != 0 && g["port"]:
		l.errorf(at.key("port"), "given twice, in address and in port")
	case r.Address.Port != 0:
		r.Port = r.Address.Port
	}
	r.Address.Port = 0
	if g.unset("forwarding", r.Forwarding == "") {
		r.Forwarding = s.Forwarding
	}
	l.enum(at.key("forwarding"), r.Forwarding, Forwardings)
	if r.Address.IsValid() && s.VIP.IsValid() && r.Address.IP.Is4() != s.VIP.IP.Is4() && r.Forwarding != "tun" {
		l.errorf(at.key("address"), "%s is %s but the service is %s (only tun forwarding mixes families)", r.Address.IP, familyName(r.Address.IP), familyName(s.VIP.IP))
	}
	if !g["port"] && r.Port == 0 {
		r.Port = s.Port
	} else if g["port"] {
		l.portRange(at.key("port"), r.Port, 1)
	}
	if (r.Forwarding == "dr" || r.Forwarding == "tun") && s.Port != 0 && r.Port != s.Port {
		l.errorf(at.key("port"), "%s forwarding cannot change the port (service %d, real server %d)", r.Forwarding, s.Port, r.Port)
	}
	if g.unset("weight", r.Weight == 0) {
		r.Weight = 1
	}
	if r.Weight < 0 || r.Weight > 65535 {
		l.errorf(at.key("weight"), "%d out of range 0..65535", r.Weight)
	}
	if r.UpperThreshold < 0 {
		l.errorf(at.key("upper_threshold"), "must not be negative")
	}
	if r.LowerThreshold < 0 {
		l.errorf(at.key("lower_threshold"), "must not be negative")
	} else if r.UpperThreshold > 0 && r.LowerThreshold > r.UpperThreshold {
		l.errorf(at.key("lower_threshold"), "%d exceeds upper_threshold %d", r.LowerThreshold, r.UpperThreshold)
	}
	for _, c := range r.Checks {
		l.check(c, s)
	}
	if len(r.Checks) == 0 {
		// Each server gets its own copy so the copy can carry its port.
		for _, c := range s.Checks {
			cp := *c
			l.locs[&cp] = l.locs[c]
			r.Checks = append(r.Checks, &cp)
		}
	}
	for _, c := range r.Checks {
		if c.Port != 0 || c.Settings == nil || c.Settings.Port() == PortNone {
			continue
		}
		c.Port = r.Port
		// A zero port is only news for a fwmark or all-ports service;
		// otherwise the service's or server's port already has an error.
		portBroken := func() bool { return l.hasFailed(at.key("port")) || l.hasFailed(l.locs[s].key("port")) }
		if c.Port == 0 && c.Settings.Port() == PortRequired && !portBroken() {
			l.errorf(l.locs[c].key("port"), "required: real server %s has no port to probe", r.Address.IP)
		}
	}
}

func (l *loader) check(c *Check, s *Service) {
	at := l.locs[c]
	g := l.keysOf(at)
	if g["port"] && c.Port == 0 {
		l.errorf(at.key("port"), "0 out of range 1..65535")
	}
	c.setDefaults(CheckDefaults{given: g, Protocol: s.Protocol})
	l.adopt(at, c.validate())
	c.complete = true
	if c.SourceAddress.IsValid() && s.VIP.IsValid() && c.SourceAddress.IP.Is4() != s.VIP.IP.Is4() {
		l.errorf(at.key("source_address"), "%s is %s but the service is %s", c.SourceAddress.IP, familyName(c.SourceAddress.IP), familyName(s.VIP.IP))
	}
}

// parseNetmask accepts a prefix length, or for IPv4 a dotted mask, and
// returns the prefix length; "" is a full-length mask.
func parseNetmask(s string, v6 bool) (int, bool) {
	bits := 32
	if v6 {
		bits = 128
	}
	if s == "" {
		return bits, true
	}
	if n, err := strconv.Atoi(strings.TrimPrefix(s, "/")); err == nil {
		return n, n >= 0 && n <= bits
	}
	if v6 {
		return 0, false
	}
	ip, err := netip.ParseAddr(s)
	if err != nil || !ip.Is4() {
		return 0, false
	}
	b := ip.As4()
	ones, size := net.IPMask(b[:]).Size()
	return ones, size == 32 // Size is 0,0 for a non-contiguous mask
}

func familyWord(f string) string {
	if f == "inet6" {
		return "IPv6"
	}
	return "IPv4"
}
