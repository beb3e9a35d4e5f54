// Package checks probes real servers (TCP, HTTP(S), DNS, LDAP/BDII, exec,
// ping, UDP) and schedules those probes with rise/fall hysteresis. Probing
// is separate from state: a Checker runs one probe under the deadline of
// its context; the Scheduler owns intervals, jitter, hysteresis and
// transitions. Each check type is one file and one line of registry.go.
package checks

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strconv"
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

// New builds the Checker for c probing target. c must be complete (from
// config.Load or config.NewCheck): checks fills no defaults of its own. The
// check's port, when set, replaces target's port.
func New(c *config.Check, target netip.AddrPort) (Checker, error) {
	if c == nil || !c.Complete() {
		return nil, errors.New("check: not completed by config (build checks with config.Load or config.NewCheck)")
	}
	s, ok := c.Settings.(settings)
	if !ok {
		return nil, fmt.Errorf("check %s: settings %T are not a check type of this package", c.Type, c.Settings)
	}
	addr := probeAddr(c, target)
	if !addr.Addr().IsValid() || addr.Port() == 0 && s.Port() == config.PortRequired {
		return nil, fmt.Errorf("check %s: target %s has no address or port", c.Type, addr)
	}
	return s.newChecker(c, addr)
}

// probeAddr is the address a check probes: the target with the check's port
// when it has one, and with no port for a type that probes none.
func probeAddr(c *config.Check, target netip.AddrPort) netip.AddrPort {
	addr := target.Addr().Unmap()
	switch {
	case c.Settings != nil && c.Settings.Port() == config.PortNone:
		return netip.AddrPortFrom(addr, 0)
	case c.Port != 0:
		return netip.AddrPortFrom(addr, uint16(c.Port))
	}
	return netip.AddrPortFrom(addr, target.Port())
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

// recvErr asks the kernel to report every ICMP error about what the socket
// sends, as keepalived's checks do. Without it a connected socket learns
// only of "hard" errors such as port unreachable, and a host that fails
// neighbour discovery, or that a router calls unreachable, is a timeout.
func recvErr(fd int, v6 bool) error {
	level, opt := syscall.IPPROTO_IP, syscall.IP_RECVERR
	if v6 {
		level, opt = syscall.IPPROTO_IPV6, syscall.IPV6_RECVERR
	}
	if err := syscall.SetsockoptInt(fd, level, opt, 1); err != nil {
		return os.NewSyscallError("setsockopt RECVERR", err)
	}
	return nil
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

// regexpError words a regexp's compile error for a config message.
func regexpError(err error) string {
	return "invalid regexp: " + strings.TrimPrefix(err.Error(), "error parsing regexp: ")
}

// plural is "1 entry" or "3 entries".
func plural(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return strconv.Itoa(n) + " " + many
}
