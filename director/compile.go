package director

import (
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/lvsd/lvsd/config"
	"golang.org/x/sys/unix"
)

// compiledService is a config service turned into kernel terms and
// validated, so that nothing about it can fail once ops start flowing.
type compiledService struct {
	name       string
	svc        Service
	udp        bool // UDP evictions skip draining: there is no connection to finish
	drain      bool // on_failure = drain
	alpha      bool
	quorum     int
	hysteresis int
	sorry      *Dest
	reals      []compiledReal
	// keepAll (announced, active-active services) keeps every real server
	// in the table, at weight 0 while down: see pinnedOrder.
	keepAll bool
}

type compiledReal struct {
	name   string // "ip:port", the realserver's name in health, metrics and status
	dest   Dest   // Weight is the configured weight
	warmup time.Duration
	// rejudge is how long the checks need to call the server up again
	// (see rejudgeTime), for the eviction guard.
	rejudge time.Duration
}

// compile validates cfg as a whole and converts it. Every problem is
// reported, and any problem rejects the whole config: a half-applied config
// never happens.
func compile(cfg *config.Config) ([]*compiledService, error) {
	var errs []error
	var out []*compiledService
	names := map[string]bool{}
	keys := map[ServiceKey]string{}
	for _, s := range cfg.Services {
		cs, err := compileService(s)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if names[cs.name] {
			errs = append(errs, fmt.Errorf("service %q: name used twice", cs.name))
		}
		names[cs.name] = true
		if other, dup := keys[cs.svc.Key]; dup {
			errs = append(errs, fmt.Errorf("service %q: same virtual service (%s) as service %q", cs.name, cs.svc.Key, other))
		}
		keys[cs.svc.Key] = cs.name
		out = append(out, cs)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return out, nil
}

// serviceKey is the kernel's identity of s: fwmark and family, or
// protocol, VIP and port. Port 0 (every port) needs persistence.
func serviceKey(s *config.Service) (ServiceKey, error) {
	key, err := kernelKey(s.Key())
	if err == nil && key.FWMark == 0 && key.Port == 0 && s.Persistence.Duration == 0 {
		err = fmt.Errorf("port %d: want 1..65535 (0 only with persistence)", s.Port)
	}
	return key, err
}

func compileService(s *config.Service) (*compiledService, error) {
	fail := func(format string, args ...any) error {
		return fmt.Errorf("service %q: %s", s.Name, fmt.Sprintf(format, args...))
	}
	if s.Name == "" {
		return nil, fmt.Errorf("service at line %d: no name", s.Line)
	}
	cs := &compiledService{name: s.Name, quorum: s.Quorum, hysteresis: s.Hysteresis, alpha: s.Alpha == nil || *s.Alpha, keepAll: s.Announce}
	key, err := serviceKey(s)
	if err != nil {
		return nil, fail("%v", err)
	}
	cs.udp = key.Protocol == unix.IPPROTO_UDP
	cs.svc.Key = key
	cs.svc.Scheduler = s.Scheduler // config filled the default
	for _, f := range s.SchedFlags {
		switch strings.TrimPrefix(strings.TrimPrefix(f, "sh-"), "mh-") {
		case "fallback":
			cs.svc.Flags |= FlagSched1
		case "port":
			cs.svc.Flags |= FlagSched2
		default:
			return nil, fail("sched_flags %q: want sh-fallback, sh-port, mh-fallback or mh-port", f)
		}
	}
	if s.OnePacket {
		cs.svc.Flags |= FlagOnePacket
	}
	bits := familyBits(key.Family)
	cs.svc.Netmask = bits
	if p := s.Persistence.Duration; p > 0 {
		cs.svc.Flags |= FlagPersistent
		cs.svc.Timeout = uint32((p + time.Second - 1) / time.Second)
		if s.PersistenceNetmask != "" {
			n, err := parseNetmask(s.PersistenceNetmask, bits)
			if err != nil {
				return nil, fail("persistence_netmask: %v", err)
			}
			cs.svc.Netmask = n
		}
	}
	switch s.OnFailure {
	case "", "remove":
	case "drain":
		cs.drain = true
	default:
		return nil, fail("on_failure %q: want remove or drain", s.OnFailure)
	}
	if s.Quorum < 0 || s.Hysteresis < 0 {
		return nil, fail("quorum and hysteresis must not be negative")
	}
	fwd, err := parseForward(s.Forwarding, ForwardNAT)
	if err != nil {
		return nil, fail("%v", err)
	}
	seen := map[string]bool{}
	for _, r := range s.RealServers {
		cr, err := compileReal(cs, r, fwd)
		if err != nil {
			return nil, fail("%v", err)
		}
		if seen[cr.name] {
			return nil, fail("realserver %s listed twice", cr.name)
		}
		seen[cr.name] = true
		cs.reals = append(cs.reals, cr)
	}
	if s.SorryServer.IP.IsValid() {
		port := s.SorryServer.Port
		if port == 0 {
			port = s.Port
		}
		cr, err := compileReal(cs, &config.RealServer{Address: config.Addr{IP: s.SorryServer.IP}, Port: port, Weight: 1}, fwd)
		if err != nil {
			return nil, fail("sorry_server: %v", err)
		}
		if seen[cr.name] {
			return nil, fail("sorry_server %s is also a realserver", cr.name)
		}
		cs.sorry = &cr.dest
	}
	return cs, nil
}

func compileReal(cs *compiledService, r *config.RealServer, svcFwd Forward) (compiledReal, error) {
	ip := r.Address.IP.Unmap()
	if !ip.IsValid() {
		return compiledReal{}, fmt.Errorf("realserver at line %d: no address", r.Line)
	}
	port := r.Port
	if port == 0 {
		port = int(cs.svc.Key.Port)
	}
	addr := netip.AddrPortFrom(ip, uint16(port))
	name := addr.String()
	fwd, err := parseForward(r.Forwarding, svcFwd)
	if err != nil {
		return compiledReal{}, fmt.Errorf("realserver %s: %v", name, err)
	}
	switch {
	case port < 0 || port > 65535:
		return compiledReal{}, fmt.Errorf("realserver %s: port %d out of range", name, port)
	case r.Weight < 0 || r.Weight > 65535:
		return compiledReal{}, fmt.Errorf("realserver %s: weight %d: want 0..65535", name, r.Weight)
	case r.UpperThreshold < 0 || r.LowerThreshold < 0:
		return compiledReal{}, fmt.Errorf("realserver %s: thresholds must not be negative", name)
	case familyOf(ip) != cs.svc.Key.Family && fwd != ForwardTunnel:
		// The kernel accepts mixed families only for tunnelled servers.
		return compiledReal{}, fmt.Errorf("realserver %s: address family differs from the service's (only forwarding = \"tun\" may mix)", name)
	case fwd != ForwardNAT && cs.svc.Key.FWMark == 0 && cs.svc.Key.Port != 0 && port != int(cs.svc.Key.Port):
		return compiledReal{}, fmt.Errorf("realserver %s: forwarding %s cannot change the port (service port %d)", name, fwd, cs.svc.Key.Port)
	}
	return compiledReal{
		name:    name,
		dest:    Dest{Addr: addr, Weight: r.Weight, Forward: fwd, Upper: uint32(r.UpperThreshold), Lower: uint32(r.LowerThreshold)},
		warmup:  r.Warmup.Duration,
		rejudge: rejudgeTime(r.Checks),
	}, nil
}

func parseForward(s string, def Forward) (Forward, error) {
	switch s {
	case "":
		return def, nil
	case "nat", "masq":
		return ForwardNAT, nil
	case "dr", "route", "gate":
		return ForwardDR, nil
	case "tun", "tunnel", "ipip":
		return ForwardTunnel, nil
	}
	return 0, fmt.Errorf("forwarding %q: want nat, dr or tun", s)
}

// parseNetmask accepts a dotted IPv4 mask or a prefix length.
func parseNetmask(s string, bits int) (int, error) {
	if n, err := strconv.Atoi(strings.TrimPrefix(s, "/")); err == nil {
		if n < 1 || n > bits {
			return 0, fmt.Errorf("%q: want a prefix length 1..%d", s, bits)
		}
		return n, nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil || !a.Is4() || bits != 32 {
		return 0, fmt.Errorf("%q: want a dotted IPv4 mask or a prefix length", s)
	}
	b := a.As4()
	m := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
	n := 0
	for m&0x80000000 != 0 {
		n++
		m <<= 1
	}
	if m != 0 || n == 0 {
		return 0, fmt.Errorf("%q: not a contiguous mask", s)
	}
	return n, nil
}

func familyBits(f uint16) int {
	if f == unix.AF_INET6 {
		return 128
	}
	return 32
}

func familyOf(a netip.Addr) uint16 {
	if a.Is4() {
		return unix.AF_INET
	}
	return unix.AF_INET6
}
