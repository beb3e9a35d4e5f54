// Package checks probes real servers (TCP, HTTP(S), DNS, LDAP/BDII, exec) and
// schedules those probes with rise/fall hysteresis. Probing is separate from
// state: a Checker runs one probe under the deadline of its context; the
// Scheduler owns intervals, jitter, hysteresis and transitions.
package checks

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/lvsd/lvsd/config"
)

// Result is the outcome of one probe.
type Result struct {
	Healthy bool
	// Reason starts with a class word from ReasonClasses, then ": " and
	// details, e.g. "rcode: got SERVFAIL, want NOERROR". The class is what
	// metrics use; the details are for people.
	Reason   string
	Duration time.Duration
	// Weight is a dynamic weight reported by the probe (exec with
	// dynamic_weight), or -1 when the configured weight applies.
	Weight int
}

// Checker runs one probe. The probe must finish by the deadline of ctx and
// return promptly when ctx is cancelled.
type Checker interface {
	Check(ctx context.Context) Result
}

// ReasonClasses are the classes a Reason can start with. The set is closed so
// it can be used as a metric label.
var ReasonClasses = []string{
	"ok", "timeout", "refused", "reset", "unreachable", "connect", "io", "tls",
	"expect", "status", "body", "rcode", "empty", "answer", "bind", "entries",
	"search", "exit", "signal", "config", LocalClass,
}

// ReasonClass returns the class of a Result's Reason, or "other" if the
// reason does not start with a known class.
func ReasonClass(reason string) string {
	class, _, ok := strings.Cut(reason, ":")
	if !ok {
		return "other"
	}
	for _, c := range ReasonClasses {
		if c == class {
			return c
		}
	}
	return "other"
}

// constructor builds the Checker of one check type from a prepared config.
type constructor func(c *config.Check, target netip.AddrPort) (Checker, error)

var registry = map[string]constructor{}

func register(name string, build constructor) { registry[name] = build }

// Types lists the registered check types.
func Types() []string {
	names := make([]string, 0, len(registry))
	for name := range registry {
		names = append(names, name)
	}
	sort.Strings(names)
	return names
}

// Prepare returns a copy of c with every default filled in and validated,
// by the same rules config.Load applies; c is not modified. Configs from
// config.Load are already complete; Prepare is for checks built in code.
func Prepare(c *config.Check) (*config.Check, error) {
	if c == nil {
		return nil, errors.New("check: nil config")
	}
	if _, ok := registry[c.Type]; !ok {
		return nil, fmt.Errorf("check: unknown type %q (want one of %s)", c.Type, strings.Join(Types(), ", "))
	}
	p := copyCheck(c)
	p.SetDefaults()
	if err := p.Validate(); err != nil {
		return nil, fmt.Errorf("check %s: %w", p.Type, err)
	}
	return p, nil
}

// Validate reports whether c, after defaults, is a usable check.
func Validate(c *config.Check) error {
	_, err := Prepare(c)
	return err
}

// New builds the Checker for c probing target. The check's port, when set,
// replaces target's port.
func New(c *config.Check, target netip.AddrPort) (Checker, error) {
	p, err := Prepare(c)
	if err != nil {
		return nil, err
	}
	addr := probeAddr(p, target)
	if !addr.Addr().IsValid() || addr.Port() == 0 {
		return nil, fmt.Errorf("check %s: target %s has no address or port", p.Type, addr)
	}
	return registry[p.Type](p, addr)
}

// probeAddr is the address a check probes: the target with the check's port
// when it has one.
func probeAddr(c *config.Check, target netip.AddrPort) netip.AddrPort {
	addr := target.Addr().Unmap()
	if c.Port != 0 {
		return netip.AddrPortFrom(addr, uint16(c.Port))
	}
	return netip.AddrPortFrom(addr, target.Port())
}

func copyCheck(c *config.Check) *config.Check {
	p := *c
	if c.TCP != nil {
		v := *c.TCP
		p.TCP = &v
	}
	if c.HTTP != nil {
		v := *c.HTTP
		v.ExpectStatus = append([]string(nil), c.HTTP.ExpectStatus...)
		v.Status = append([]config.StatusRange(nil), c.HTTP.Status...)
		p.HTTP = &v
	}
	if c.DNS != nil {
		v := *c.DNS
		p.DNS = &v
	}
	if c.LDAP != nil {
		v := *c.LDAP
		p.LDAP = &v
	}
	if c.Exec != nil {
		v := *c.Exec
		v.Command = append([]string(nil), c.Exec.Command...)
		p.Exec = &v
	}
	return &p
}

// dialer returns a dialer bound to the check's source address, if any.
func dialer(c *config.Check, network string) *net.Dialer {
	d := &net.Dialer{KeepAlive: -1}
	if ip := c.SourceAddress.IP; ip.IsValid() {
		src := netip.AddrPortFrom(ip.Unmap(), uint16(c.SourceAddress.Port))
		if strings.HasPrefix(network, "udp") {
			d.LocalAddr = net.UDPAddrFromAddrPort(src)
		} else {
			d.LocalAddr = net.TCPAddrFromAddrPort(src)
		}
	}
	return d
}

// watch makes blocking I/O on conn obey ctx: the deadline now, and
// cancellation whenever it comes. Call the returned func when done.
func watch(ctx context.Context, conn net.Conn) (stop func() bool) {
	if d, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(d)
	}
	return context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Unix(1, 0)) })
}

func failf(class, format string, args ...any) Result {
	return Result{Reason: class + ": " + fmt.Sprintf(format, args...), Weight: -1}
}

func okf(format string, args ...any) Result {
	return Result{Healthy: true, Reason: "ok: " + fmt.Sprintf(format, args...), Weight: -1}
}

// netFail turns a network error met while doing what into a Result whose
// class says timeout, refused and so on.
func netFail(ctx context.Context, what string, err error) Result {
	return failf(netClass(ctx, err), "%s: %v", what, err)
}

func netClass(ctx context.Context, err error) string {
	var ne net.Error
	switch {
	case localErr(err):
		return LocalClass
	case ctx.Err() != nil, errors.Is(err, context.DeadlineExceeded), errors.Is(err, os.ErrDeadlineExceeded):
		return "timeout"
	case errors.As(err, &ne) && ne.Timeout():
		return "timeout"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "refused"
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE):
		return "reset"
	case errors.Is(err, syscall.EHOSTUNREACH), errors.Is(err, syscall.ENETUNREACH), errors.Is(err, syscall.EADDRNOTAVAIL):
		return "unreachable"
	}
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "dial" {
		return "connect"
	}
	return "io"
}

// timed stamps r with the time since start.
func timed(start time.Time, r Result) Result {
	r.Duration = time.Since(start)
	return r
}

// excerpt shortens text for a Reason.
func excerpt(s string, n int) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}
