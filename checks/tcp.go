package checks

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strconv"
	"time"

	"github.com/lvsd/lvsd/config"
)

// TCPSettings are the keys of a tcp check: connect, optionally send Send
// and expect a reply starting with Expect.
type TCPSettings struct {
	Send   string `toml:"send"`
	Expect string `toml:"expect"`
}

// Defaults has nothing to fill: both keys are off when empty.
func (t *TCPSettings) Defaults(config.CheckDefaults) {}

// Validate has nothing to refuse: any bytes may be sent or expected.
func (t *TCPSettings) Validate(*config.Problems) {}

func (t *TCPSettings) Port() config.PortUse { return config.PortRequired }

func (t *TCPSettings) Describe() string {
	what := "connect"
	if t.Send != "" {
		what += fmt.Sprintf(", send %q", t.Send)
	}
	if t.Expect != "" {
		what += fmt.Sprintf(", expect %q", t.Expect)
	}
	return what
}

func (t *TCPSettings) DedupKey() string { return dedupKey(t) }

// tcpChecker connects and, when configured, sends a string and expects a
// reply that starts with another.
type tcpChecker struct {
	addr   string
	send   []byte
	expect []byte
	dialer *net.Dialer
	// connectOnly serves checks with nothing to send or expect, the
	// common case, with fewer system calls than dialer (see connector).
	connectOnly *connector
	connected   string // the Reason of a connect-only success, built once
}

func (t *TCPSettings) newChecker(c *config.Check, target netip.AddrPort) (Checker, error) {
	tc := &tcpChecker{
		addr:   target.String(),
		send:   []byte(t.Send),
		expect: []byte(t.Expect),
		dialer: dialer(c, "tcp"),
	}
	if len(tc.send) == 0 && len(tc.expect) == 0 {
		var local netip.AddrPort
		if ip := c.SourceAddress.IP; ip.IsValid() {
			local = netip.AddrPortFrom(ip.Unmap(), uint16(c.SourceAddress.Port))
		}
		tc.connectOnly = newConnector(target, local)
		tc.connected = okf("connected to %s", tc.addr).Reason
	}
	return tc, nil
}

// connectResult is the Result of a connect-only probe whose connect
// returned err; ctx tells a timeout from other failures.
func (t *tcpChecker) connectResult(ctx context.Context, err error) Result {
	if err != nil {
		return netFail(ctx, "connect "+t.addr, &net.OpError{Op: "dial", Net: "tcp", Err: err})
	}
	return Result{Healthy: true, Reason: t.connected, Weight: -1}
}

func (t *tcpChecker) Check(ctx context.Context) Result {
	start := time.Now()
	if t.connectOnly != nil {
		return timed(start, t.connectResult(ctx, t.connectOnly.connect(ctx)))
	}
	conn, err := t.dialer.DialContext(ctx, "tcp", t.addr)
	if err != nil {
		return timed(start, netFail(ctx, "connect "+t.addr, err))
	}
	defer conn.Close()
	stop := watch(ctx, conn)
	defer stop()
	if len(t.send) > 0 {
		if _, err := conn.Write(t.send); err != nil {
			return timed(start, netFail(ctx, "send to "+t.addr, err))
		}
	}
	if len(t.expect) == 0 {
		return timed(start, okf("connected to %s and sent %d bytes", t.addr, len(t.send)))
	}
	got := make([]byte, len(t.expect))
	n, err := io.ReadFull(conn, got)
	got = got[:n]
	if string(got) == string(t.expect) {
		return timed(start, okf("%s replied %s", t.addr, strconv.Quote(string(got))))
	}
	if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
		return timed(start, netFail(ctx, "read from "+t.addr, err))
	}
	return timed(start, failf("expect", "%s replied %s, want prefix %s",
		t.addr, strconv.Quote(string(got)), strconv.Quote(string(t.expect))))
}
