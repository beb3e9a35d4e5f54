package checks

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/lvsd/lvsd/config"
)

// UDPSettings are the keys of a udp check: send one datagram, then wait for
// a reply, as keepalived's UDP_CHECK does. An ICMP port unreachable fails
// the probe at once; silence is a timeout unless require_reply is off.
type UDPSettings struct {
	Payload    string `toml:"payload"`     // text to send
	PayloadHex string `toml:"payload_hex"` // or bytes to send, in hex
	Expect     string `toml:"expect"`      // the reply must start with this text
	ExpectHex  string `toml:"expect_hex"`  // or with these bytes, in hex
	// RequireReply off passes a probe that meets silence until its
	// timeout (keepalived's default, for services that never answer).
	// Default true.
	RequireReply bool `toml:"require_reply"`

	payload, expect []byte // parsed by Validate
}

func (u *UDPSettings) Defaults(d config.CheckDefaults) {
	if !d.Given("require_reply") {
		u.RequireReply = true
	}
}

func (u *UDPSettings) Validate(p *config.Problems) {
	u.payload = u.bytes(p, "payload", u.Payload, u.PayloadHex)
	u.expect = u.bytes(p, "expect", u.Expect, u.ExpectHex)
	if len(u.expect) > 0 && !u.RequireReply {
		p.Add("require_reply", "cannot be false with expect or expect_hex: a reply is needed to compare")
	}
}

// bytes returns the text of key, or the bytes of key_hex, of which at most
// one may be set. Spaces and colons between hex digits are allowed.
func (u *UDPSettings) bytes(p *config.Problems, key, text, hexText string) []byte {
	if hexText == "" {
		return []byte(text)
	}
	if text != "" {
		p.Add(key+"_hex", "cannot be combined with %s", key)
		return nil
	}
	b, err := hex.DecodeString(strings.NewReplacer(" ", "", ":", "").Replace(hexText))
	if err != nil {
		p.Add(key+"_hex", "invalid hex %q: %s (want pairs of hex digits such as \"0a1b\")", hexText, strings.TrimPrefix(err.Error(), "encoding/hex: "))
		return nil
	}
	return b
}

func (u *UDPSettings) Port() config.PortUse { return config.PortRequired }

func (u *UDPSettings) Describe() string {
	var what string
	switch {
	case u.PayloadHex != "":
		what = fmt.Sprintf("send %s (%d bytes)", u.PayloadHex, len(u.payload))
	case u.Payload != "":
		what = fmt.Sprintf("send %q", u.Payload)
	default:
		what = "send an empty datagram"
	}
	switch {
	case !u.RequireReply:
		return what + ", up unless an ICMP error comes back"
	case u.ExpectHex != "":
		return what + ", expect a reply starting with " + u.ExpectHex
	case u.Expect != "":
		return what + fmt.Sprintf(", expect a reply starting with %q", u.Expect)
	}
	return what + ", expect a reply"
}

func (u *UDPSettings) DedupKey() string { return dedupKey(u) }

// udpChecker sends from a connected socket of its own per probe, so the
// kernel reports an ICMP port unreachable as ECONNREFUSED on the read.
type udpChecker struct {
	settings *UDPSettings
	addr     string
	check    *config.Check
}

func (u *UDPSettings) newChecker(c *config.Check, target netip.AddrPort) (Checker, error) {
	return &udpChecker{settings: u, addr: target.String(), check: c}, nil
}

func (u *udpChecker) Check(ctx context.Context) Result {
	start := time.Now()
	s := u.settings
	d := dialer(u.check, "udp")
	d.Control = func(network, _ string, raw syscall.RawConn) error {
		var err error
		if cerr := raw.Control(func(fd uintptr) { err = recvErr(int(fd), network == "udp6") }); cerr != nil {
			return cerr
		}
		return err
	}
	conn, err := d.DialContext(ctx, "udp", u.addr)
	if err != nil {
		return timed(start, netFail(ctx, "udp "+u.addr, err))
	}
	defer conn.Close()
	stop := watch(ctx, conn)
	defer stop()
	if _, err := conn.Write(s.payload); err != nil {
		return timed(start, netFail(ctx, "send to udp "+u.addr, err))
	}
	buf := make([]byte, 64<<10)
	n, err := conn.Read(buf)
	switch {
	case err == nil:
	case !s.RequireReply && errors.Is(err, os.ErrDeadlineExceeded) && !errors.Is(ctx.Err(), context.Canceled):
		// The socket's deadline is the context's, and may pass a moment
		// before the context notices: only cancellation is not silence.
		return timed(start, okf("no reply and no ICMP error from udp %s in %s (require_reply off)", u.addr, time.Since(start).Round(time.Millisecond)))
	case netClass(ctx, err) == "timeout":
		return timed(start, failf("timeout", "no reply from udp %s in %s", u.addr, time.Since(start).Round(time.Millisecond)))
	case netClass(ctx, err) == "refused":
		return timed(start, failf("refused", "udp %s: port unreachable (ICMP): %v", u.addr, err))
	default:
		return timed(start, netFail(ctx, "read from udp "+u.addr, err))
	}
	got := buf[:n]
	if !bytes.HasPrefix(got, s.expect) {
		return timed(start, failf("expect", "udp %s replied %s, want prefix %s", u.addr, u.show(got), u.show(s.expect)))
	}
	return timed(start, okf("udp %s replied %d bytes", u.addr, n))
}

// show prints bytes the way the check's expectation was written.
func (u *udpChecker) show(b []byte) string {
	if u.settings.ExpectHex != "" {
		return hex.EncodeToString(b[:min(len(b), 64)])
	}
	return strconv.Quote(excerpt(string(b), 64))
}
