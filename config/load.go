package config

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"reflect"
	"sort"
	"strconv"

	"github.com/BurntSushi/toml"
)

// Load reads, decodes, defaults and validates the config file at path.
// On failure the error is an Errors holding every problem found, each
// starting "path:LINE:".
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, Errors{fmt.Errorf("read config: %w", err)}
	}
	return Parse(path, data)
}

// Parse is Load for data already in memory; name is used in messages and
// as Config.Path.
func Parse(name string, data []byte) (*Config, error) {
	var tree map[string]any
	if _, err := toml.Decode(string(data), &tree); err != nil {
		return nil, Errors{syntaxError(name, err)}
	}
	if len(checkTypes.errs) > 0 {
		// A program with a broken check type must not run with it.
		return nil, Errors{&Error{File: name, Msg: "cannot load configs: " + checkTypes.errs.Error()}}
	}
	l := newLoader(name, string(data))
	cfg := &Config{Path: name}
	l.decodeTable(tree, reflect.ValueOf(cfg).Elem(), loc{})
	l.director(&cfg.Director)
	l.services(cfg)
	l.vrrps(cfg)
	l.announce(cfg)
	if len(l.errs) > 0 {
		sortByLine(l.errs)
		return nil, l.errs
	}
	sort.SliceStable(l.warns, func(i, j int) bool { return l.warns[i].Line < l.warns[j].Line })
	cfg.Warnings = l.warns
	return cfg, nil
}

func syntaxError(name string, err error) error {
	var pe toml.ParseError
	if errors.As(err, &pe) {
		return &Error{File: name, Line: pe.Position.Line, Msg: "syntax error: " + pe.Message}
	}
	return &Error{File: name, Msg: err.Error()}
}

// Key identifies a virtual service the way the kernel does.
func (s *Service) Key() ServiceKey {
	if s.FWMark != 0 {
		return ServiceKey{FWMark: s.FWMark, Family: s.Family}
	}
	return ServiceKey{Family: s.Family, Protocol: s.Protocol, VIP: s.VIP.IP, Port: s.Port}
}

// ServiceKey is comparable and unique per kernel virtual service: either
// FWMark and Family, or Family, Protocol, VIP and Port.
type ServiceKey struct {
	FWMark   uint32
	Family   string // inet | inet6
	Protocol string // tcp | udp | sctp; "" for fwmark services
	VIP      netip.Addr
	Port     int
}

// String is "tcp/192.0.2.10:2170", "udp/[2001:db8::53]:53" or "fwmark/10"
// ("fwmark/10/inet6" for IPv6).
func (k ServiceKey) String() string {
	if k.FWMark != 0 {
		if k.Family == "inet6" {
			return "fwmark/" + strconv.FormatUint(uint64(k.FWMark), 10) + "/inet6"
		}
		return "fwmark/" + strconv.FormatUint(uint64(k.FWMark), 10)
	}
	return k.Protocol + "/" + netip.AddrPortFrom(k.VIP, uint16(k.Port)).String()
}

// AlphaOn reports whether real servers start unknown (the default) rather
// than healthy.
func (s *Service) AlphaOn() bool { return s.Alpha == nil || *s.Alpha }

// PersistencePrefixLen is the prefix length of persistence_netmask: 32 or
// 128 (one client per template) when unset.
func (s *Service) PersistencePrefixLen() int {
	n, _ := parseNetmask(s.PersistenceNetmask, s.Family == "inet6")
	return n
}

// Key is "ip:port", with IPv6 as "[ip]:port".
func (r *RealServer) Key() string { return r.AddrPort().String() }

// AddrPort is the real server's address and port.
func (r *RealServer) AddrPort() netip.AddrPort {
	return netip.AddrPortFrom(r.Address.IP, uint16(r.Port))
}

// PreemptOn reports whether a higher-priority backup takes over from a
// lower-priority master (the default).
func (v *VRRP) PreemptOn() bool { return v.Preempt == nil || *v.Preempt }

// Service returns the service with the given name, or nil.
func (c *Config) Service(name string) *Service {
	for _, s := range c.Services {
		if s.Name == name {
			return s
		}
	}
	return nil
}

func boolPtr(b bool) *bool { return &b }
