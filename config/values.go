package config

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"time"
)

// The value types decode from TOML strings through encoding.TextUnmarshaler,
// so they work with any TOML or JSON decoder, not only with Load (which
// calls their decodeString directly, sparing the copies []byte costs).

// UnmarshalText parses a Go duration such as "100ms" or "1m30s". Negative
// durations are refused here because no lvsd setting has a use for one.
func (d *Duration) UnmarshalText(text []byte) error { return d.decodeString(string(text)) }

func (d *Duration) decodeString(text string) error {
	v, err := time.ParseDuration(text)
	if err != nil {
		return fmt.Errorf("invalid duration %q (want a number with a unit, such as \"500ms\" or \"5s\")", text)
	}
	if v < 0 {
		return fmt.Errorf("duration %q must not be negative", text)
	}
	d.Duration = v
	return nil
}

// MarshalText writes the duration back in the form UnmarshalText reads.
func (d Duration) MarshalText() ([]byte, error) { return []byte(d.Duration.String()), nil }

// UnmarshalText parses "10.0.0.1", "10.0.0.1:80", "2001:db8::1" or
// "[2001:db8::1]:53". IPv4-mapped IPv6 addresses are unmapped so that a
// family comparison never depends on how the operator spelled an address.
func (a *Addr) UnmarshalText(text []byte) error { return a.decodeString(string(text)) }

func (a *Addr) decodeString(s string) error {
	host, portText := s, ""
	if strings.HasPrefix(s, "[") || strings.Count(s, ":") == 1 {
		h, p, err := net.SplitHostPort(s)
		if err != nil {
			return fmt.Errorf("invalid address %q", s)
		}
		host, portText = h, p
	}
	ip, err := netip.ParseAddr(host)
	if err != nil || ip.Zone() != "" {
		return fmt.Errorf("invalid address %q", s)
	}
	port := 0
	if portText != "" {
		port, err = strconv.Atoi(portText)
		if err != nil {
			return fmt.Errorf("invalid port %q in address %q", portText, s)
		}
		if port < 1 || port > 65535 {
			return fmt.Errorf("port %d in address %q out of range 1..65535", port, s)
		}
	}
	*a = Addr{IP: ip.Unmap(), Port: port}
	return nil
}

// MarshalText writes the address in the form UnmarshalText reads.
func (a Addr) MarshalText() ([]byte, error) { return []byte(a.String()), nil }

// String is "ip" without a port and "ip:port" or "[ip]:port" with one.
func (a Addr) String() string {
	if !a.IP.IsValid() {
		return ""
	}
	if a.Port == 0 {
		return a.IP.String()
	}
	return netip.AddrPortFrom(a.IP, uint16(a.Port)).String()
}

// IsValid reports whether an address was given.
func (a Addr) IsValid() bool { return a.IP.IsValid() }

// AddrPort returns the address with its port (0 when absent).
func (a Addr) AddrPort() netip.AddrPort { return netip.AddrPortFrom(a.IP, uint16(a.Port)) }

// UnmarshalText parses "192.0.2.10/24" or a bare address, which becomes a
// host prefix. The host bits are kept: a VIP is an address on a subnet,
// not the subnet.
func (p *Prefix) UnmarshalText(text []byte) error { return p.decodeString(string(text)) }

func (p *Prefix) decodeString(s string) error {
	if !strings.Contains(s, "/") {
		ip, err := netip.ParseAddr(s)
		if err != nil || ip.Zone() != "" {
			return fmt.Errorf("invalid address %q", s)
		}
		ip = ip.Unmap()
		p.Prefix = netip.PrefixFrom(ip, ip.BitLen())
		return nil
	}
	v, err := netip.ParsePrefix(s)
	if err != nil {
		return fmt.Errorf("invalid prefix %q", s)
	}
	if v.Addr().Is4In6() {
		return fmt.Errorf("invalid prefix %q: write IPv4 addresses in dotted form", s)
	}
	p.Prefix = v
	return nil
}

// MarshalText writes the prefix in the form UnmarshalText reads.
func (p Prefix) MarshalText() ([]byte, error) {
	if !p.IsValid() {
		return nil, errors.New("invalid prefix")
	}
	return []byte(p.String()), nil
}

// family names an address family the way ipvsadm and ip(8) do.
func family(ip netip.Addr) string {
	if ip.Is4() {
		return "inet"
	}
	return "inet6"
}

// familyName is family for people: "IPv4" or "IPv6".
func familyName(ip netip.Addr) string {
	if ip.Is4() {
		return "IPv4"
	}
	return "IPv6"
}
