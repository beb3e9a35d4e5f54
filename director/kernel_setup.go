package director

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"

	"github.com/lvsd/lvsd/config"
)

// Preflight checks, before anything is changed, that this host can run
// cfg: IPVS in the kernel, root, and every interface named in the config.
// It changes nothing, so a failed start leaves the host as it was.
func Preflight(cfg *config.Config) error {
	var errs []error
	if !HasIPVS() && !MemoryBackend() {
		errs = append(errs, ErrNoIPVS)
	}
	if os.Geteuid() != 0 {
		errs = append(errs, errors.New("lvsd must run as root to program IPVS and add VIPs"))
	}
	for _, name := range interfacesOf(cfg) {
		if _, err := net.InterfaceByName(name); err != nil {
			errs = append(errs, fmt.Errorf("interface %q: does not exist", name))
		}
	}
	return errors.Join(errs...)
}

func interfacesOf(cfg *config.Config) []string {
	seen := map[string]bool{}
	var out []string
	add := func(n string) {
		if n != "" && !seen[n] {
			seen[n] = true
			out = append(out, n)
		}
	}
	add(cfg.Director.Interface)
	for _, v := range cfg.VRRP {
		add(v.Interface)
	}
	return out
}

// Sysctl is one kernel setting lvsd makes at start.
type Sysctl struct {
	Path, Value string
	Why         string
}

// Sysctls lists the kernel settings cfg asks for. Each defaults to on:
//   - net.ipv4.vs.expire_nodest_conn=1 drops a connection's entry as soon
//     as its destination is gone, so UDP flows (DNS) to an evicted server
//     are rescheduled instead of black-holed for the UDP timeout (300 s);
//   - net.ipv4.vs.expire_quiescent_template=1 expires persistence templates
//     of a weight-0 server, so persistent clients move off a drained server;
//   - net.ipv4.ip_forward=1 when any service or server uses NAT, which
//     cannot work without it;
//   - net.ipv4.vs.sloppy_tcp=1 (sloppy_sctp) when a tcp (sctp) service is
//     announced: active-active needs no switch of its own.
func Sysctls(cfg *config.Config) []Sysctl {
	on := func(b *bool) bool { return b == nil || *b }
	var out []Sysctl
	if on(cfg.Director.ExpireNodestConn) {
		out = append(out, Sysctl{"net/ipv4/vs/expire_nodest_conn", "1", "reschedule flows of removed servers at once"})
	}
	if on(cfg.Director.ExpireQuiescentTemplate) {
		out = append(out, Sysctl{"net/ipv4/vs/expire_quiescent_template", "1", "expire persistence to weight-0 servers"})
	}
	// Active-active: a connection the routers move here arrives mid-stream;
	// without sloppy_tcp IPVS schedules only on a SYN, and the local stack
	// answers the rest with a reset.
	sloppy := announcedProtocols(cfg)
	if sloppy["tcp"] {
		out = append(out, Sysctl{"net/ipv4/vs/sloppy_tcp", "1", "take over TCP connections another director started (active-active)"})
	}
	if sloppy["sctp"] {
		out = append(out, Sysctl{"net/ipv4/vs/sloppy_sctp", "1", "take over SCTP associations another director started (active-active)"})
	}
	if on(cfg.Director.IPForward) && usesNAT(cfg) {
		out = append(out, Sysctl{"net/ipv4/ip_forward", "1", "NAT forwarding"})
		if usesNAT6(cfg) {
			out = append(out, Sysctl{"net/ipv6/conf/all/forwarding", "1", "NAT forwarding (IPv6)"})
		}
	}
	return out
}

// announcedProtocols is the set of protocols of announced services.
func announcedProtocols(cfg *config.Config) map[string]bool {
	out := map[string]bool{}
	for _, s := range cfg.Services {
		if s.Announce {
			out[s.Protocol] = true
		}
	}
	return out
}

func usesNAT(cfg *config.Config) bool {
	svcs, err := compile(cfg)
	if err != nil {
		return false
	}
	for _, cs := range svcs {
		for _, r := range cs.reals {
			if r.dest.Forward == ForwardNAT {
				return true
			}
		}
		if cs.sorry != nil && cs.sorry.Forward == ForwardNAT {
			return true
		}
	}
	return false
}

func usesNAT6(cfg *config.Config) bool {
	svcs, _ := compile(cfg)
	for _, cs := range svcs {
		for _, r := range cs.reals {
			if r.dest.Forward == ForwardNAT && r.dest.Addr.Addr().Is6() {
				return true
			}
		}
	}
	return false
}

// ApplySysctls writes the settings from Sysctls under /proc/sys. Values
// already set are left alone.
func ApplySysctls(cfg *config.Config) error {
	var errs []error
	for _, s := range Sysctls(cfg) {
		if MemoryBackend() && strings.HasPrefix(s.Path, "net/ipv4/vs/") {
			continue // no IPVS to set
		}
		p := filepath.Join("/proc/sys", s.Path)
		cur, err := os.ReadFile(p)
		if err == nil && strings.TrimSpace(string(cur)) == s.Value {
			continue
		}
		if err := os.WriteFile(p, []byte(s.Value), 0o644); err != nil {
			errs = append(errs, fmt.Errorf("set %s=%s (%s): %w", strings.ReplaceAll(s.Path, "/", "."), s.Value, s.Why, err))
		}
	}
	return errors.Join(errs...)
}
