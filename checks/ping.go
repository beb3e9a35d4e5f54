package checks

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os"
	"time"

	"golang.org/x/net/icmp"
	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
	"golang.org/x/sys/unix"

	"github.com/lvsd/lvsd/config"
)

// PingSettings are the keys of a ping check: ICMP or ICMPv6 echo requests
// to the real server's address, as keepalived's PING_CHECK sends.
type PingSettings struct {
	// Count is how many echo requests one probe may send, spread over the
	// timeout: the next goes out when the previous has had its share of the
	// timeout without a reply. Any reply passes. Default 1.
	Count int `toml:"count"`
	Size  int `toml:"size"` // payload bytes; default 56, as ping(8) sends
}

const maxPingSize = 65507 // the largest ICMP payload an IPv4 packet carries

func (p *PingSettings) Defaults(d config.CheckDefaults) {
	if !d.Given("count") {
		p.Count = 1
	}
	if !d.Given("size") {
		p.Size = 56
	}
}

func (p *PingSettings) Validate(pr *config.Problems) {
	if p.Count < 1 || p.Count > 100 {
		pr.Add("count", "%d out of range 1..100", p.Count)
	}
	if p.Size < 0 || p.Size > maxPingSize {
		pr.Add("size", "%d out of range 0..%d", p.Size, maxPingSize)
	}
}

// Port: an echo request goes to an address.
func (p *PingSettings) Port() config.PortUse { return config.PortNone }

func (p *PingSettings) Describe() string {
	if p.Count == 1 {
		return fmt.Sprintf("echo request of %d bytes, expect a reply", p.Size)
	}
	return fmt.Sprintf("up to %d echo requests of %d bytes, expect a reply to any", p.Count, p.Size)
}

func (p *PingSettings) DedupKey() string { return dedupKey(p) }

// pingChecker sends echo requests from a socket of its own per probe, so a
// reply can only be matched to the probe that is waiting for it.
type pingChecker struct {
	target, source netip.Addr
	count, size    int
}

func (p *PingSettings) newChecker(c *config.Check, target netip.AddrPort) (Checker, error) {
	dst, src := target.Addr().Unmap(), c.SourceAddress.IP.Unmap()
	if src.IsValid() && src.Is4() != dst.Is4() {
		return nil, fmt.Errorf("source_address %s and target %s are of different families", src, dst)
	}
	return &pingChecker{target: dst, source: src, count: p.Count, size: p.Size}, nil
}

func (p *pingChecker) Check(ctx context.Context) Result {
	start := time.Now()
	sock, err := openICMP(p.target, p.source)
	if err != nil {
		if errors.Is(err, unix.EPERM) || errors.Is(err, unix.EACCES) {
			return timed(start, failf("config", "cannot open an ICMP socket: this group may not use ping sockets "+
				"(net.ipv4.ping_group_range) and the process lacks CAP_NET_RAW: %v", err))
		}
		return timed(start, netFail(ctx, "echo request to "+p.target.String(), err))
	}
	defer sock.f.Close()
	stop := context.AfterFunc(ctx, func() { _ = sock.f.SetReadDeadline(time.Unix(1, 0)) })
	defer stop()

	deadline, hasDeadline := ctx.Deadline()
	gap := time.Second // as ping(8), when the caller gave no deadline
	if hasDeadline {
		gap = time.Until(deadline) / time.Duration(p.count)
	}
	payload := make([]byte, p.size)
	for i := range payload {
		payload[i] = byte(rand.Uint32())
	}
	first := uint16(rand.Uint32())
	buf := make([]byte, 60+8+p.size) // room for a raw socket's IPv4 header
	sent := 0
	for sent < p.count && ctx.Err() == nil {
		if err := sock.send(first+uint16(sent), payload); err != nil {
			return timed(start, netFail(ctx, "echo request to "+p.target.String(), err))
		}
		sent++
		wait := time.Now().Add(gap)
		if sent == p.count && hasDeadline {
			wait = deadline
		}
		replied, err := sock.await(ctx, wait, first, uint16(sent-1), payload, buf)
		switch {
		case err != nil:
			// An ICMP error about a request (host or network
			// unreachable) is the socket's pending error.
			return timed(start, netFail(ctx, "echo request to "+p.target.String(), err))
		case replied && p.count > 1:
			return timed(start, okf("echo reply from %s in %s (%d of %d requests sent)", p.target, time.Since(start).Round(time.Microsecond), sent, p.count))
		case replied:
			return timed(start, okf("echo reply from %s in %s", p.target, time.Since(start).Round(time.Microsecond)))
		}
	}
	return timed(start, failf("timeout", "no echo reply from %s to %s in %s",
		p.target, plural(sent, "request", "requests"), time.Since(start).Round(time.Millisecond)))
}

// await reads until a reply to one of the requests sent so far (sequence
// numbers first..first+last) arrives, or the read fails, or wait or the
// deadline of ctx passes (no reply and no error: send the next request, or
// give up).
func (s *icmpSocket) await(ctx context.Context, wait time.Time, first, last uint16, payload, buf []byte) (replied bool, err error) {
	for {
		_ = s.f.SetReadDeadline(wait)
		if ctx.Err() != nil { // cancelled before the deadline above was set
			return false, nil
		}
		n, err := s.f.Read(buf)
		switch {
		case err != nil && (ctx.Err() != nil || errors.Is(err, os.ErrDeadlineExceeded)):
			return false, nil
		case err != nil:
			return false, err
		}
		if seq, ok := s.reply(buf[:n], payload); ok && seq-first <= last {
			return true, nil
		}
	}
}

// icmpSocket is an ICMP socket connected to one address. The kernel then
// delivers to it only packets from that address, and reports ICMP errors
// about what it sent (host unreachable) as the socket's error.
type icmpSocket struct {
	f   *os.File
	v6  bool
	raw bool   // a raw socket: IPv4 replies come with their IP header
	id  uint16 // echo identifier; a datagram socket's is the kernel's
}

// openICMP opens an unprivileged datagram ICMP socket, which the kernel
// allows to the groups in net.ipv4.ping_group_range (for ICMPv6 too), and
// else a raw one, which needs CAP_NET_RAW.
func openICMP(dst, src netip.Addr) (*icmpSocket, error) {
	family, proto := unix.AF_INET, unix.IPPROTO_ICMP
	if dst.Is6() {
		family, proto = unix.AF_INET6, unix.IPPROTO_ICMPV6
	}
	s := &icmpSocket{v6: dst.Is6()}
	fd, err := unix.Socket(family, unix.SOCK_DGRAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, proto)
	if err != nil {
		s.raw = true
		fd, err = unix.Socket(family, unix.SOCK_RAW|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, proto)
	}
	if err != nil {
		return nil, os.NewSyscallError("socket", err)
	}
	if err := s.setup(fd, dst, src); err != nil {
		unix.Close(fd)
		return nil, err
	}
	s.f = os.NewFile(uintptr(fd), "icmp") // non-blocking: reads wait in the netpoller
	return s, nil
}

func (s *icmpSocket) setup(fd int, dst, src netip.Addr) error {
	if s.raw {
		// A raw socket sees every ICMP packet the address sends us: let
		// only echo replies through.
		s.id = uint16(rand.Uint32())
		if s.v6 {
			var f unix.ICMPv6Filter
			for i := range f.Data {
				f.Data[i] = ^uint32(0)
			}
			f.Data[ipv6.ICMPTypeEchoReply>>5] &^= 1 << (uint32(ipv6.ICMPTypeEchoReply) & 31)
			if err := unix.SetsockoptICMPv6Filter(fd, unix.IPPROTO_ICMPV6, unix.ICMPV6_FILTER, &f); err != nil {
				return os.NewSyscallError("setsockopt ICMPV6_FILTER", err)
			}
		} else if err := unix.SetsockoptInt(fd, unix.SOL_RAW, unix.ICMP_FILTER, ^(1 << int(ipv4.ICMPTypeEchoReply))); err != nil {
			return os.NewSyscallError("setsockopt ICMP_FILTER", err)
		}
	}
	if err := recvErr(fd, s.v6); err != nil {
		return err
	}
	if src.IsValid() {
		if err := unix.Bind(fd, unixSockaddr(src)); err != nil {
			return os.NewSyscallError("bind", err)
		}
	}
	if err := unix.Connect(fd, unixSockaddr(dst)); err != nil {
		return os.NewSyscallError("connect", err)
	}
	if !s.raw {
		// The kernel rewrites the identifier to the socket's "port".
		sa, err := unix.Getsockname(fd)
		if err != nil {
			return os.NewSyscallError("getsockname", err)
		}
		switch sa := sa.(type) {
		case *unix.SockaddrInet4:
			s.id = uint16(sa.Port)
		case *unix.SockaddrInet6:
			s.id = uint16(sa.Port)
		}
	}
	return nil
}

func unixSockaddr(a netip.Addr) unix.Sockaddr {
	if a.Is4() {
		return &unix.SockaddrInet4{Addr: a.As4()}
	}
	return &unix.SockaddrInet6{Addr: a.As16()}
}

func (s *icmpSocket) send(seq uint16, payload []byte) error {
	m := icmp.Message{Type: ipv4.ICMPTypeEcho, Body: &icmp.Echo{ID: int(s.id), Seq: int(seq), Data: payload}}
	if s.v6 {
		m.Type = ipv6.ICMPTypeEchoRequest // the kernel fills in the ICMPv6 checksum
	}
	b, err := m.Marshal(nil)
	if err != nil {
		return err
	}
	_, err = s.f.Write(b)
	return err
}

// reply returns the sequence number of b if it is an echo reply to this
// socket carrying payload.
func (s *icmpSocket) reply(b, payload []byte) (uint16, bool) {
	proto := 1 // ICMP
	if s.v6 {
		proto = 58 // ICMPv6
	} else if s.raw {
		if len(b) < 20 {
			return 0, false
		}
		hlen := int(b[0]&0x0f) * 4
		if len(b) < hlen {
			return 0, false
		}
		b = b[hlen:]
	}
	m, err := icmp.ParseMessage(proto, b)
	if err != nil || m.Type != ipv4.ICMPTypeEchoReply && m.Type != ipv6.ICMPTypeEchoReply {
		return 0, false
	}
	echo, ok := m.Body.(*icmp.Echo)
	if !ok || uint16(echo.ID) != s.id || !bytes.Equal(echo.Data, payload) {
		return 0, false
	}
	return uint16(echo.Seq), true
}
