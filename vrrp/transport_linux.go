package vrrp

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// RawTransport is the Linux transport: one raw IP socket of protocol 112
// per instance, bound to the interface, TTL/hop limit 255, multicast loop
// off, and for IPv6 the kernel computing the checksum at offset 6.
type RawTransport struct{}

// rawConn is a raw VRRP socket on one interface.
type rawConn struct {
	f       *os.File
	rc      syscall.RawConn
	v6      bool
	ifindex int
	source  netip.Addr
	closed  atomic.Bool

	// The send path allocates nothing: the message header, address,
	// control message (source and interface) and the write callback are
	// built once, and Send fills them in under smu.
	smu     sync.Mutex
	msg     unix.Msghdr
	iov     unix.Iovec
	sa4     unix.RawSockaddrInet4
	sa6     unix.RawSockaddrInet6
	oob     []byte
	errno   syscall.Errno
	writeFn func(fd uintptr) bool

	// ReceivePending's descriptor and buffers.
	fd         int
	fdmu       sync.RWMutex
	pmu        sync.Mutex
	pbuf, poob []byte
}

// Open implements Transport.
func (RawTransport) Open(iface string, source netip.Addr, multicast bool) (Conn, error) {
	ifc, err := net.InterfaceByName(iface)
	if err != nil {
		return nil, fmt.Errorf("vrrp socket: %w", err)
	}
	v6 := !source.Is4()
	family := unix.AF_INET
	if v6 {
		family = unix.AF_INET6
	}
	fd, err := unix.Socket(family, unix.SOCK_RAW|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, ProtocolNumber)
	if err != nil {
		return nil, fmt.Errorf("vrrp socket: %w", err)
	}
	if err := configure(fd, ifc, v6, multicast); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("vrrp socket on %s: %w", iface, err)
	}
	setReceiveBuffer(fd)
	f := os.NewFile(uintptr(fd), "vrrp-"+iface)
	rc, err := f.SyscallConn()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("vrrp socket: %w", err)
	}
	c := &rawConn{f: f, rc: rc, v6: v6, ifindex: ifc.Index, source: source, fd: fd}
	if v6 {
		info := unix.Inet6Pktinfo{Addr: source.As16(), Ifindex: uint32(ifc.Index)}
		c.oob = cmsg(unix.IPPROTO_IPV6, unix.IPV6_PKTINFO, unsafe.Slice((*byte)(unsafe.Pointer(&info)), unix.SizeofInet6Pktinfo))
		c.sa6 = unix.RawSockaddrInet6{Family: unix.AF_INET6, Scope_id: uint32(ifc.Index)}
		c.msg.Name = (*byte)(unsafe.Pointer(&c.sa6))
		c.msg.Namelen = unix.SizeofSockaddrInet6
	} else {
		info := unix.Inet4Pktinfo{Ifindex: int32(ifc.Index), Spec_dst: source.As4()}
		c.oob = cmsg(unix.IPPROTO_IP, unix.IP_PKTINFO, unsafe.Slice((*byte)(unsafe.Pointer(&info)), unix.SizeofInet4Pktinfo))
		c.sa4 = unix.RawSockaddrInet4{Family: unix.AF_INET}
		c.msg.Name = (*byte)(unsafe.Pointer(&c.sa4))
		c.msg.Namelen = unix.SizeofSockaddrInet4
	}
	c.msg.Iov = &c.iov
	c.msg.Iovlen = 1
	c.msg.Control = &c.oob[0]
	c.msg.SetControllen(len(c.oob))
	c.writeFn = c.write
	return c, nil
}

func configure(fd int, ifc *net.Interface, v6, multicast bool) error {
	type opt struct {
		name         string
		level, op, v int
	}
	opts := []opt{}
	if v6 {
		opts = append(opts,
			opt{"IPV6_CHECKSUM", unix.IPPROTO_IPV6, unix.IPV6_CHECKSUM, 6},
			opt{"IPV6_MULTICAST_HOPS", unix.IPPROTO_IPV6, unix.IPV6_MULTICAST_HOPS, ttlRequired},
			opt{"IPV6_UNICAST_HOPS", unix.IPPROTO_IPV6, unix.IPV6_UNICAST_HOPS, ttlRequired},
			opt{"IPV6_MULTICAST_LOOP", unix.IPPROTO_IPV6, unix.IPV6_MULTICAST_LOOP, 0},
			opt{"IPV6_MULTICAST_ALL", unix.IPPROTO_IPV6, unix.IPV6_MULTICAST_ALL, 0},
			opt{"IPV6_MULTICAST_IF", unix.IPPROTO_IPV6, unix.IPV6_MULTICAST_IF, ifc.Index},
			opt{"IPV6_RECVHOPLIMIT", unix.IPPROTO_IPV6, unix.IPV6_RECVHOPLIMIT, 1},
			opt{"IPV6_RECVPKTINFO", unix.IPPROTO_IPV6, unix.IPV6_RECVPKTINFO, 1},
		)
	} else {
		opts = append(opts,
			opt{"IP_MULTICAST_TTL", unix.IPPROTO_IP, unix.IP_MULTICAST_TTL, ttlRequired},
			opt{"IP_TTL", unix.IPPROTO_IP, unix.IP_TTL, ttlRequired},
			opt{"IP_MULTICAST_LOOP", unix.IPPROTO_IP, unix.IP_MULTICAST_LOOP, 0},
			opt{"IP_MULTICAST_ALL", unix.IPPROTO_IP, unix.IP_MULTICAST_ALL, 0},
		)
	}
	for _, o := range opts {
		if err := unix.SetsockoptInt(fd, o.level, o.op, o.v); err != nil {
			return fmt.Errorf("%s: %w", o.name, err)
		}
	}
	if err := unix.BindToDevice(fd, ifc.Name); err != nil {
		return fmt.Errorf("SO_BINDTODEVICE: %w", err)
	}
	if v6 {
		if multicast {
			mreq := &unix.IPv6Mreq{Multiaddr: GroupV6.As16(), Interface: uint32(ifc.Index)}
			if err := unix.SetsockoptIPv6Mreq(fd, unix.IPPROTO_IPV6, unix.IPV6_JOIN_GROUP, mreq); err != nil {
				return fmt.Errorf("joining %v: %w", GroupV6, err)
			}
		}
		return nil
	}
	if err := unix.SetsockoptIPMreqn(fd, unix.IPPROTO_IP, unix.IP_MULTICAST_IF, &unix.IPMreqn{Ifindex: int32(ifc.Index)}); err != nil {
		return fmt.Errorf("IP_MULTICAST_IF: %w", err)
	}
	if multicast {
		mreq := &unix.IPMreqn{Multiaddr: GroupV4.As4(), Ifindex: int32(ifc.Index)}
		if err := unix.SetsockoptIPMreqn(fd, unix.IPPROTO_IP, unix.IP_ADD_MEMBERSHIP, mreq); err != nil {
			return fmt.Errorf("joining %v: %w", GroupV4, err)
		}
	}
	return nil
}

// Send writes one advert; the source address and interface travel in a
// PKTINFO control message, so one unbound socket both receives multicast
// and sends from the primary address. It allocates nothing.
func (c *rawConn) Send(payload []byte, dst netip.Addr) error {
	if len(payload) == 0 {
		return errors.New("vrrp: empty advert")
	}
	c.smu.Lock()
	defer c.smu.Unlock()
	if c.v6 {
		c.sa6.Addr = dst.As16()
	} else {
		c.sa4.Addr = dst.As4()
	}
	c.iov.Base = &payload[0]
	c.iov.SetLen(len(payload))
	err := c.rc.Write(c.writeFn)
	c.iov.Base = nil // keep no reference to the caller's buffer
	if err != nil {
		return c.closedErr(err)
	}
	if c.errno != 0 {
		return c.errno
	}
	return nil
}

// write is the sendmsg(2) of Send, on the socket's descriptor.
func (c *rawConn) write(fd uintptr) bool {
	_, _, e := unix.Syscall(unix.SYS_SENDMSG, fd, uintptr(unsafe.Pointer(&c.msg)), 0)
	c.errno = e
	return e != unix.EAGAIN
}

func cmsg(level, typ int, data []byte) []byte {
	b := make([]byte, unix.CmsgSpace(len(data)))
	h := (*unix.Cmsghdr)(unsafe.Pointer(&b[0]))
	h.Level = int32(level)
	h.Type = int32(typ)
	h.SetLen(unix.CmsgLen(len(data)))
	copy(b[unix.CmsgLen(0):], data)
	return b
}

// Receive implements Conn.
func (c *rawConn) Receive() (Packet, error) {
	buf := make([]byte, 1500)
	oob := make([]byte, 128)
	var n, oobn int
	var from unix.Sockaddr
	var rerr error
	err := c.rc.Read(func(fd uintptr) bool {
		n, oobn, _, from, rerr = unix.Recvmsg(int(fd), buf, oob, 0)
		return rerr != unix.EAGAIN
	})
	if err != nil {
		return Packet{}, c.closedErr(err)
	}
	if rerr != nil {
		return Packet{}, rerr
	}
	if c.v6 {
		return parse6(buf[:n], oob[:oobn], from)
	}
	return parse4(buf[:n])
}

// ReceivePending returns a packet already queued in the socket, without
// waiting; false when there is none (or it could not be read).
func (c *rawConn) ReceivePending() (Packet, bool) {
	c.pmu.Lock()
	defer c.pmu.Unlock()
	if c.pbuf == nil {
		c.pbuf, c.poob = make([]byte, 1500), make([]byte, 128)
	}
	// Straight on the descriptor: the os.File's read lock is held by the
	// receiving goroutine for as long as it waits. fdmu keeps Close from
	// freeing the descriptor number meanwhile.
	c.fdmu.RLock()
	if c.closed.Load() {
		c.fdmu.RUnlock()
		return Packet{}, false
	}
	n, oobn, _, from, err := unix.Recvmsg(c.fd, c.pbuf, c.poob, unix.MSG_DONTWAIT)
	c.fdmu.RUnlock()
	if err != nil {
		return Packet{}, false
	}
	b := slices.Clone(c.pbuf[:n]) // pbuf is reused
	var p Packet
	if c.v6 {
		p, err = parse6(b, c.poob[:oobn], from)
	} else {
		p, err = parse4(b)
	}
	return p, err == nil
}

// parse4 splits what an IPv4 raw socket returns: the IP header, which
// carries TTL and addresses, then the VRRP message.
func parse4(b []byte) (Packet, error) {
	if len(b) < 20 || b[0]>>4 != 4 {
		return Packet{}, errors.New("short or non-IPv4 packet")
	}
	ihl := int(b[0]&0x0f) * 4
	total := int(binary.BigEndian.Uint16(b[2:]))
	if ihl < 20 || total < ihl || total > len(b) {
		return Packet{}, errors.New("bad IPv4 header lengths")
	}
	return Packet{
		Src:     netip.AddrFrom4([4]byte(b[12:16])),
		Dst:     netip.AddrFrom4([4]byte(b[16:20])),
		TTL:     int(b[8]),
		Payload: b[ihl:total],
	}, nil
}

// parse6 takes hop limit and destination from the control messages asked
// for with IPV6_RECVHOPLIMIT and IPV6_RECVPKTINFO.
func parse6(b, oob []byte, from unix.Sockaddr) (Packet, error) {
	sa, ok := from.(*unix.SockaddrInet6)
	if !ok {
		return Packet{}, errors.New("no IPv6 source address")
	}
	p := Packet{Src: netip.AddrFrom16(sa.Addr), TTL: -1, Payload: b}
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return Packet{}, fmt.Errorf("control messages: %w", err)
	}
	for _, m := range msgs {
		if m.Header.Level != unix.IPPROTO_IPV6 {
			continue
		}
		switch {
		case m.Header.Type == unix.IPV6_HOPLIMIT && len(m.Data) >= 4:
			p.TTL = int(int32(binary.NativeEndian.Uint32(m.Data)))
		case m.Header.Type == unix.IPV6_PKTINFO && len(m.Data) >= unix.SizeofInet6Pktinfo:
			p.Dst = netip.AddrFrom16([16]byte(m.Data[:16]))
		}
	}
	if !p.Dst.IsValid() {
		return Packet{}, errors.New("no IPv6 destination (IPV6_PKTINFO missing)")
	}
	return p, nil
}

func (c *rawConn) closedErr(err error) error {
	if c.closed.Load() || errors.Is(err, os.ErrClosed) {
		return net.ErrClosed
	}
	return err
}

// Close implements Conn; a blocked Receive returns net.ErrClosed.
func (c *rawConn) Close() error {
	c.fdmu.Lock()
	defer c.fdmu.Unlock()
	c.closed.Store(true)
	return c.f.Close()
}
