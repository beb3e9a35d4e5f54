package config

import (
	"fmt"
	"net/netip"
	"path/filepath"
	"strconv"
	"strings"
)

// Active-active directors: [announce] and the services with announce = true.
// Errors are what cannot work at all; warnings are what works on one
// director but breaks the promise of active-active, that a connection the
// routers move to another director keeps its real server.

// DefaultAnnounceDevice is the device lvsd holds announced VIPs on.
const DefaultAnnounceDevice = "lvsd-anycast"

func (l *loader) announce(cfg *Config) {
	a := &cfg.Announce
	at := loc{}.key("announce")
	g := l.given[at.raw()]
	if g.unset("device", a.Device == "") {
		a.Device = DefaultAnnounceDevice
	}
	if g.unset("bird_socket", a.BIRDSocket == "") {
		a.BIRDSocket = "/run/bird/bird.ctl"
	}
	switch {
	case !validIfName(a.Device):
		l.errorf(at.key("device"), "invalid interface name %q (1..15 characters, no '/', ':' or spaces)", a.Device)
	case a.Device == cfg.Director.Interface:
		l.errorf(at.key("device"), "%q is director.interface; lvsd needs a device of its own (it creates it, and the kernel deletes it when lvsd exits)", a.Device)
	}
	if a.BIRDSocket != "" && !filepath.IsAbs(a.BIRDSocket) {
		l.errorf(at.key("bird_socket"), "%q must be an absolute path (or \"\" for no BGP status)", a.BIRDSocket)
	}
	instances := map[string]bool{}
	vrrpHeld := map[netip.Addr]string{}
	for _, v := range cfg.VRRP {
		instances[v.Name] = true
		for _, p := range v.VIPs {
			vrrpHeld[p.Addr().Unmap()] = v.Name
		}
		if v.Interface == a.Device {
			l.errorf(at.key("device"), "%q is the interface of vrrp[%s]; lvsd needs a device of its own", a.Device, v.Name)
		}
	}
	for i, name := range a.TrackVRRP {
		if !instances[name] {
			l.errorf(at.key("track_vrrp").elem(i, strconv.Itoa(i+1)), "unknown vrrp instance %q", name)
		}
	}

	// Every service on one VIP must agree: the VIP is one route.
	first := map[netip.Addr]*Service{}
	for _, s := range cfg.Services {
		sat := l.locs[s]
		if s.FWMark != 0 {
			if s.Announce {
				l.errorf(sat.key("announce"), "a fwmark service has no vip to announce")
			}
			continue
		}
		vip := s.VIP.IP.Unmap()
		if !vip.IsValid() {
			continue
		}
		if other, ok := first[vip]; !ok {
			first[vip] = s
		} else if other.Announce != s.Announce {
			l.errorf(sat.key("announce"), "%t, but service[%s] on the same vip %s has announce = %t; every service of a vip must agree (the vip is one route)",
				s.Announce, other.Name, vip, other.Announce)
		}
		if !s.Announce {
			continue
		}
		if inst, ok := vrrpHeld[vip]; ok {
			l.errorf(sat.key("announce"), "vip %s is held by vrrp[%s]; a vip is either announced over BGP or moved by VRRP, not both", vip, inst)
		}
		l.announceWarnings(s, sat)
	}
}

// announceWarnings flags what makes directors disagree on the real server
// of a connection. Each director schedules a connection the routers move
// to it as new (sloppy_tcp), so only a hash of the connection over the
// same real servers, with the same weights, in the same order, picks the
// same one.
func (l *loader) announceWarnings(s *Service, at loc) {
	if s.Scheduler != "mh" && s.Scheduler != "sh" {
		l.warnf(at.key("scheduler"), "%s picks real servers from this director's own state, so a connection the routers move to another director lands on another real server and is reset; active-active needs mh (or sh)", s.Scheduler)
	}
	if fb := s.Scheduler + "-fallback"; (s.Scheduler == "mh" || s.Scheduler == "sh") && !contains(s.SchedFlags, fb) {
		l.warnf(at.key("sched_flags"), "an announced service keeps a down server in its place at weight 0, so that directors agree; without %s, %s refuses the new connections hashed to it", fb, s.Scheduler)
	}
	if s.Forwarding == "nat" {
		l.warnf(at.key("forwarding"), "nat replies must return through the director that forwarded the request, which ECMP routers do not ensure; active-active needs dr or tun")
	}
	warned := map[string]bool{} // a service check is copied to every real server: flag it once
	for _, r := range s.RealServers {
		rat := l.locs[r]
		if r.Forwarding == "nat" && s.Forwarding != "nat" {
			l.warnf(rat.key("forwarding"), "nat replies must return through the director that forwarded the request, which ECMP routers do not ensure; active-active needs dr or tun")
		}
		if r.Warmup.Duration > 0 {
			l.warnf(rat.key("warmup"), "each director ramps the weight on its own clock, so directors hash connections differently while a server warms up")
		}
		if r.UpperThreshold > 0 {
			l.warnf(rat.key("upper_threshold"), "thresholds count this director's connections only, so directors disagree on which servers take new connections")
		}
		for _, c := range r.Checks {
			cat := l.locs[c].key("dynamic_weight")
			if ws, ok := c.Settings.(weightSetter); ok && ws.SetsWeight() && !warned[cat.raw()] {
				warned[cat.raw()] = true
				l.warnf(cat, "each director sets the weight from its own probe, so directors hash connections differently while they disagree")
			}
		}
	}
}

// weightSetter is a check type whose probes can set the server's weight
// (exec with dynamic_weight): config knows check types only through their
// settings, so it asks.
type weightSetter interface{ SetsWeight() bool }

// warnf records a warning: valid, loaded, but reported by lvsd check and
// logged at start and reload.
func (l *loader) warnf(at loc, format string, args ...any) {
	l.warns = append(l.warns, &Error{File: l.file, Line: l.index.lineOf(at.raw()), Path: at.disp(), Msg: fmt.Sprintf(format, args...), Warn: true})
}

// validIfName is what the kernel accepts as an interface name.
func validIfName(n string) bool {
	return n != "" && len(n) < 16 && n != "." && n != ".." && !strings.ContainsAny(n, "/: \t\n")
}
