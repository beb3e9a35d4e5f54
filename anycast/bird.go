package anycast

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// BIRD reads BGP state from BIRD's control socket, the one birdc talks to.
// lvsd speaks the socket's line protocol itself rather than running birdc:
// no process per scrape (under the test VM's emulated CPU an exec costs a
// second), and errors come back as BIRD's own reply codes.
//
// The protocol: BIRD greets with "0001 BIRD 2.0.12 ready."; each command is
// one line; each reply line starts with a four-digit code followed by '-'
// (more lines follow) or ' ' (the last line), and a line starting with a
// space continues the previous code. Codes 0xxx end a successful reply,
// 1xxx are data, 2xxx table headings, 8xxx run-time and 9xxx parse errors.
type BIRD struct {
	Socket string
}

// Protocol is one line of `show protocols`.
type Protocol struct {
	Name  string `json:"name"`
	Proto string `json:"proto"` // BGP, Direct, BFD, Device, Kernel, ...
	Table string `json:"table"`
	State string `json:"state"` // up, start, down, flush
	Since string `json:"since"`
	// Info is BIRD's last column; for BGP it starts with the session state.
	Info string `json:"info,omitempty"`
}

// BGPState is the BGP session state of a BGP protocol: Idle, Connect,
// Active, OpenSent, OpenConfirm, Established or Close; "" for others.
func (p Protocol) BGPState() string {
	if p.Proto != "BGP" {
		return ""
	}
	state, _, _ := strings.Cut(p.Info, " ")
	return state
}

// Established reports whether p is a BGP session that can carry routes.
func (p Protocol) Established() bool { return p.BGPState() == "Established" }

// ReplyError is an error reply of BIRD (codes 8xxx and 9xxx).
type ReplyError struct {
	Code int
	Msg  string
}

func (e *ReplyError) Error() string { return fmt.Sprintf("bird: %s (code %04d)", e.Msg, e.Code) }

// replyLine is one line of a reply with its code (inherited by
// continuation lines).
type replyLine struct {
	code int
	text string
}

// Protocols runs `show protocols`.
func (b BIRD) Protocols(ctx context.Context) ([]Protocol, error) {
	lines, err := b.query(ctx, "show protocols")
	if err != nil {
		return nil, err
	}
	return parseProtocols(lines)
}

// symbol is what BIRD accepts as a protocol name, unquoted.
var symbol = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// Exported runs `show route export PROTOCOL`: the routes BIRD sends to
// that BGP neighbour, which for a director are the VIPs it announces.
func (b BIRD) Exported(ctx context.Context, protocol string) ([]netip.Prefix, error) {
	if !symbol.MatchString(protocol) {
		return nil, fmt.Errorf("bird: %q is not a protocol name", protocol)
	}
	lines, err := b.query(ctx, "show route export "+protocol)
	var re *ReplyError
	if errors.As(err, &re) && re.Msg == "No valid tables" {
		return nil, nil // the session's channel is not up: nothing exported
	}
	if err != nil {
		return nil, err
	}
	return parseRoutes(lines), nil
}

// query sends one command and returns the reply, every line of it.
func (b BIRD) query(ctx context.Context, cmd string) ([]replyLine, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", b.Socket)
	if err != nil {
		return nil, fmt.Errorf("bird control socket: %w", err)
	}
	defer conn.Close()
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = time.Now().Add(5 * time.Second)
	}
	_ = conn.SetDeadline(deadline)
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Now()) })
	defer stop()
	r := bufio.NewReader(conn)
	greeting, err := readReply(r)
	if err != nil {
		return nil, fmt.Errorf("bird control socket %s: greeting: %w", b.Socket, err)
	}
	if len(greeting) != 1 || greeting[0].code != 1 {
		return nil, fmt.Errorf("bird control socket %s: unexpected greeting %+v", b.Socket, greeting)
	}
	if _, err := io.WriteString(conn, cmd+"\n"); err != nil {
		return nil, fmt.Errorf("bird control socket %s: %w", b.Socket, err)
	}
	lines, err := readReply(r)
	if err != nil {
		return nil, fmt.Errorf("bird: %s: %w", cmd, err)
	}
	return lines, nil
}

// readReply reads one reply up to its last line. An error code (8xxx,
// 9xxx) on the last line becomes a *ReplyError.
func readReply(r *bufio.Reader) ([]replyLine, error) {
	var out []replyLine
	code := -1
	for {
		raw, err := r.ReadString('\n')
		if err != nil {
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return out, err
		}
		line := strings.TrimRight(raw, "\r\n")
		if strings.HasPrefix(line, " ") {
			if code < 0 {
				return out, fmt.Errorf("continuation line %q before any code", line)
			}
			out = append(out, replyLine{code, line[1:]})
			continue
		}
		if len(line) < 5 || (line[4] != ' ' && line[4] != '-') {
			return out, fmt.Errorf("malformed line %q", line)
		}
		n, err := strconv.Atoi(line[:4])
		if err != nil {
			return out, fmt.Errorf("malformed line %q", line)
		}
		code = n
		out = append(out, replyLine{code, line[5:]})
		if line[4] == ' ' {
			if code >= 8000 {
				return out, &ReplyError{Code: code, Msg: strings.TrimSpace(line[5:])}
			}
			return out, nil
		}
	}
}

// parseProtocols reads the 1002 lines of `show protocols`. Name, Proto,
// Table and State never hold spaces; Since is one token, or a date and a
// time with `timeformat protocol iso long`; Info is the rest. Columns are
// not fixed: BIRD pads names to 10 characters but never cuts them.
func parseProtocols(lines []replyLine) ([]Protocol, error) {
	var out []Protocol
	for _, l := range lines {
		if l.code != 1002 {
			continue
		}
		f := strings.Fields(l.text)
		if len(f) < 5 {
			return nil, fmt.Errorf("bird: show protocols: malformed line %q", l.text)
		}
		p := Protocol{Name: f[0], Proto: f[1], Table: f[2], State: f[3], Since: f[4]}
		rest := f[5:]
		if len(rest) > 0 && strings.Count(p.Since, "-") == 2 && strings.Contains(rest[0], ":") {
			p.Since += " " + rest[0]
			rest = rest[1:]
		}
		p.Info = strings.Join(rest, " ")
		out = append(out, p)
	}
	return out, nil
}

// parseRoutes reads the networks of a 1007 route listing: each route's
// first line starts with its network; lines of further routes to the same
// network and of next hops start with blanks.
func parseRoutes(lines []replyLine) []netip.Prefix {
	var out []netip.Prefix
	for _, l := range lines {
		if l.code != 1007 || l.text == "" || l.text[0] == ' ' || l.text[0] == '\t' {
			continue
		}
		first, _, _ := strings.Cut(l.text, " ")
		if p, err := netip.ParsePrefix(first); err == nil {
			out = append(out, p)
		}
	}
	return out
}
