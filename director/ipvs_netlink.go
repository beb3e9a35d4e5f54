package director

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"syscall"

	"github.com/mdlayher/genetlink"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"

	"github.com/lvsd/lvsd/internal/netns"
)

// Kernel is the kernel IPVS table of one network namespace, spoken to
// over generic netlink directly. Unlike moby/ipvs it sends a batch of operations in one
// sendmsg and reads their acks together (the kernel still answers each
// op on its own, so failures stay per op), reads the 64-bit counters, and
// never runs modprobe behind the caller's back.
type Kernel struct {
	fd     int
	family uint16
	seq    uint32
	rbuf   []byte
}

// IPVS generic netlink commands and attributes (linux/ip_vs.h).
const (
	ipvsCmdNewService = 1
	ipvsCmdSetService = 2
	ipvsCmdDelService = 3
	ipvsCmdGetService = 4
	ipvsCmdNewDest    = 5
	ipvsCmdSetDest    = 6
	ipvsCmdDelDest    = 7
	ipvsCmdGetDest    = 8

	ipvsCmdAttrService = 1
	ipvsCmdAttrDest    = 2

	svcAttrAF        = 1
	svcAttrProtocol  = 2
	svcAttrAddr      = 3
	svcAttrPort      = 4
	svcAttrFWMark    = 5
	svcAttrSchedName = 6
	svcAttrFlags     = 7
	svcAttrTimeout   = 8
	svcAttrNetmask   = 9
	svcAttrStats     = 10
	svcAttrStats64   = 12

	destAttrAddr      = 1
	destAttrPort      = 2
	destAttrFwd       = 3
	destAttrWeight    = 4
	destAttrUThresh   = 5
	destAttrLThresh   = 6
	destAttrActive    = 7
	destAttrInact     = 8
	destAttrStats     = 10
	destAttrAF        = 11
	destAttrStats64   = 12
	statsConns        = 1
	statsInPkts       = 2
	statsOutPkts      = 3
	statsInBytes      = 4
	statsOutBytes     = 5
	netlinkBatch      = 128 // ops per sendmsg; their acks must fit the receive buffer
	netlinkRcvBufSize = 8 << 20
)

// OpenKernel opens the IPVS table of the current network namespace.
func OpenKernel() (IPVS, error) { return OpenKernelAt("") }

// OpenKernelAt opens the IPVS table of the network namespace at
// netnsPath (e.g. /run/netns/NAME; "" = the current one), or an empty
// in-memory one under LVSD_IPVS_BACKEND=memory (see MemoryBackend).
func OpenKernelAt(netnsPath string) (IPVS, error) {
	if MemoryBackend() {
		return NewFake(), nil
	}
	if os.Getenv("LVSD_IPVS_BACKEND") == "moby" {
		return OpenMobyAt(netnsPath)
	}
	return OpenNetlinkAt(netnsPath)
}

// OpenNetlinkAt opens the IPVS table of the network namespace at
// netnsPath ("" = the current one) over lvsd's own generic netlink code.
func OpenNetlinkAt(netnsPath string) (*Kernel, error) {
	if netnsPath == "" && !HasIPVS() {
		return nil, ErrNoIPVS
	}
	var n *Kernel
	err := netns.Do(netnsPath, func() error {
		c, err := genetlink.Dial(nil)
		if err != nil {
			return fmt.Errorf("generic netlink: %w", err)
		}
		fam, err := c.GetFamily("IPVS")
		c.Close()
		if errors.Is(err, os.ErrNotExist) {
			return ErrNoIPVS
		}
		if err != nil {
			return fmt.Errorf("resolve IPVS netlink family: %w", err)
		}
		fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_GENERIC)
		if err != nil {
			return fmt.Errorf("netlink socket: %w", err)
		}
		if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
			unix.Close(fd)
			return fmt.Errorf("bind netlink socket: %w", err)
		}
		// Acks without the request echoed back, a buffer that holds a whole
		// batch of them, and a bound on every wait for the kernel.
		_ = unix.SetsockoptInt(fd, unix.SOL_NETLINK, unix.NETLINK_CAP_ACK, 1)
		if unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, netlinkRcvBufSize) != nil {
			_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, netlinkRcvBufSize)
		}
		tv := unix.Timeval{Sec: 30}
		_ = unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv)
		n = &Kernel{fd: fd, family: fam.ID, rbuf: make([]byte, 1<<20)}
		return nil
	})
	return n, err
}

// Close implements IPVS.
func (n *Kernel) Close() error { return unix.Close(n.fd) }

// message frames one genetlink request.
func (n *Kernel) message(buf []byte, cmd uint8, flags uint16, attrs []byte) ([]byte, uint32) {
	start := len(buf)
	buf = n.header(buf, cmd, flags)
	buf = append(buf, attrs...)
	return n.seal(buf, start), n.seq
}

// header starts a genetlink request at the end of buf with the next
// sequence number; seal sets its length once the attributes follow.
func (n *Kernel) header(buf []byte, cmd uint8, flags uint16) []byte {
	n.seq++
	buf = binary.NativeEndian.AppendUint32(buf, 0) // length, set by seal
	buf = binary.NativeEndian.AppendUint16(buf, n.family)
	buf = binary.NativeEndian.AppendUint16(buf, flags|unix.NLM_F_REQUEST)
	buf = binary.NativeEndian.AppendUint32(buf, n.seq)
	buf = binary.NativeEndian.AppendUint32(buf, 0) // port id: the kernel's
	return append(buf, cmd, 1, 0, 0)               // genl cmd, version, reserved
}

func (n *Kernel) seal(buf []byte, start int) []byte {
	binary.NativeEndian.PutUint32(buf[start:], uint32(len(buf)-start))
	return pad(buf)
}

// Apply implements IPVS: ops go out in batches, one sendmsg each. The
// kernel runs a batch's requests in order and answers a failed one with
// its error whether asked to or not, so only the last request of a batch
// asks for an ack: when it comes, every error of the batch is in, each
// against its own op, and a batch costs one read instead of one per op.
func (n *Kernel) Apply(ctx context.Context, ops []Op) []error {
	errs := make([]error, len(ops))
	var buf []byte
	for start := 0; start < len(ops); start += netlinkBatch {
		end := min(start+netlinkBatch, len(ops))
		if err := ctx.Err(); err != nil {
			for i := start; i < len(ops); i++ {
				errs[i] = err
			}
			return errs
		}
		buf = buf[:0]
		first := n.seq + 1
		for i := start; i < end; i++ {
			var flags uint16
			if i == end-1 {
				flags = unix.NLM_F_ACK
			}
			buf = n.appendOp(buf, ops[i], flags)
		}
		last := n.seq
		if err := unix.Sendto(n.fd, buf, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
			for i := start; i < end; i++ {
				errs[i] = fmt.Errorf("netlink send: %w", err)
			}
			continue
		}
		for acked := false; !acked; {
			msgs, err := n.receive()
			if err != nil {
				// Without the final ack nothing says which of the rest
				// were applied: the next pass's dump will.
				for i := start; i < end; i++ {
					if errs[i] == nil {
						errs[i] = err
					}
				}
				break
			}
			for _, m := range msgs {
				seq := m.Header.Seq
				if seq-first > last-first || m.Header.Type != unix.NLMSG_ERROR || len(m.Data) < 4 {
					continue // not an answer to this batch (seq wraps, hence the unsigned range test)
				}
				if code := int32(binary.NativeEndian.Uint32(m.Data)); code != 0 {
					errs[start+int(seq-first)] = syscall.Errno(-code)
				}
				acked = acked || seq == last
			}
		}
	}
	return errs
}

func (n *Kernel) receive() ([]syscall.NetlinkMessage, error) {
	for {
		nr, _, err := unix.Recvfrom(n.fd, n.rbuf, 0)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("netlink receive: %w", err)
		}
		return syscall.ParseNetlinkMessage(n.rbuf[:nr])
	}
}

// dump runs one dump request and returns the payloads of its messages.
func (n *Kernel) dump(cmd uint8, attrs []byte) ([][]byte, error) {
	buf, seq := n.message(nil, cmd, unix.NLM_F_DUMP, attrs)
	if err := unix.Sendto(n.fd, buf, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return nil, fmt.Errorf("netlink send: %w", err)
	}
	var out [][]byte
	for {
		msgs, err := n.receive()
		if err != nil {
			return nil, err
		}
		for _, m := range msgs {
			if m.Header.Seq != seq {
				continue
			}
			switch m.Header.Type {
			case unix.NLMSG_DONE:
				return out, nil
			case unix.NLMSG_ERROR:
				if code := int32(binary.NativeEndian.Uint32(m.Data)); code != 0 {
					return nil, syscall.Errno(-code)
				}
				return out, nil
			}
			if len(m.Data) > 4 {
				// Copy: m.Data points into rbuf, which the next receive reuses.
				out = append(out, append([]byte(nil), m.Data[4:]...)) // past the genl header
			}
		}
	}
}

// Dump implements IPVS.
func (n *Kernel) Dump(ctx context.Context) ([]KernelService, error) {
	msgs, err := n.dump(ipvsCmdGetService, nested(ipvsCmdAttrService, nil))
	if err != nil {
		return nil, fmt.Errorf("list services: %w", err)
	}
	out := make([]KernelService, 0, len(msgs))
	for _, m := range msgs {
		ks, err := decodeService(m)
		if err != nil {
			return nil, err
		}
		out = append(out, ks)
	}
	for i := range out {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		dmsgs, err := n.dump(ipvsCmdGetDest, encodeServiceKey(out[i].Service, false))
		if err != nil {
			return nil, fmt.Errorf("list destinations of %s: %w", out[i].Key, err)
		}
		for _, m := range dmsgs {
			d, err := decodeDest(m, out[i].Key.Family)
			if err != nil {
				return nil, err
			}
			out[i].Dests = append(out[i].Dests, d)
		}
	}
	sortKernel(out)
	return out, nil
}

// Attributes are appended to the request in place (see netlink_attrs.go)
// rather than built by netlink.AttributeEncoder, which allocates for
// every attribute: a table of 5,000 servers takes some 60,000 of them.

func nested(typ uint16, inner []byte) []byte {
	return endNested(append(appendNested(nil, typ), inner...), 0)
}

// encodeServiceKey encodes IPVS_CMD_ATTR_SERVICE; full adds the settings
// NEW/SET_SERVICE need.
func encodeServiceKey(s Service, full bool) []byte { return appendService(nil, s, full) }

func appendService(b []byte, s Service, full bool) []byte {
	start := len(b)
	b = appendNested(b, ipvsCmdAttrService)
	b = appendU16(b, svcAttrAF, s.Key.Family)
	if s.Key.FWMark != 0 {
		b = appendU32(b, svcAttrFWMark, s.Key.FWMark)
	} else {
		b = appendU16(b, svcAttrProtocol, s.Key.Protocol)
		b = appendAddr(b, svcAttrAddr, s.Key.Addr)
		b = appendBE16(b, svcAttrPort, s.Key.Port)
	}
	if full {
		b = appendString(b, svcAttrSchedName, s.Scheduler)
		b = appendAttrHeader(b, svcAttrFlags, 8) // struct ip_vs_flags: flags, mask
		b = binary.NativeEndian.AppendUint32(b, s.Flags&userFlags)
		b = binary.NativeEndian.AppendUint32(b, ^uint32(0))
		b = appendU32(b, svcAttrTimeout, s.Timeout)
		b = appendU32(b, svcAttrNetmask, netmaskToKernel(s.Key.Family, s.Netmask))
	}
	return endNested(b, start)
}

func encodeDest(d Dest, full bool) []byte { return appendDest(nil, d, full) }

func appendDest(b []byte, d Dest, full bool) []byte {
	start := len(b)
	b = appendNested(b, ipvsCmdAttrDest)
	b = appendAddr(b, destAttrAddr, d.Addr.Addr())
	b = appendBE16(b, destAttrPort, d.Addr.Port())
	b = appendU16(b, destAttrAF, familyOf(d.Addr.Addr()))
	if full {
		b = appendU32(b, destAttrFwd, uint32(d.Forward))
		b = appendU32(b, destAttrWeight, uint32(d.Weight))
		b = appendU32(b, destAttrUThresh, d.Upper)
		b = appendU32(b, destAttrLThresh, d.Lower)
	}
	return endNested(b, start)
}

// appendOp appends the request for op to buf.
func (n *Kernel) appendOp(buf []byte, op Op, flags uint16) []byte {
	start := len(buf)
	switch op.Kind {
	case OpNewService:
		buf = appendService(n.header(buf, ipvsCmdNewService, flags), op.Service, true)
	case OpUpdateService:
		buf = appendService(n.header(buf, ipvsCmdSetService, flags), op.Service, true)
	case OpDelService:
		buf = appendService(n.header(buf, ipvsCmdDelService, flags), op.Service, false)
	case OpNewDest:
		buf = appendDest(appendService(n.header(buf, ipvsCmdNewDest, flags), op.Service, false), op.Dest, true)
	case OpUpdateDest:
		buf = appendDest(appendService(n.header(buf, ipvsCmdSetDest, flags), op.Service, false), op.Dest, true)
	default:
		buf = appendDest(appendService(n.header(buf, ipvsCmdDelDest, flags), op.Service, false), op.Dest, false)
	}
	return n.seal(buf, start)
}

// inner returns the payload of the first attribute of type typ.
func inner(b []byte, typ uint16) ([]byte, error) {
	ad, err := netlink.NewAttributeDecoder(b)
	if err != nil {
		return nil, err
	}
	for ad.Next() {
		if ad.Type() == typ {
			return ad.Bytes(), nil
		}
	}
	return nil, fmt.Errorf("netlink attribute %d missing", typ)
}

func decodeService(msg []byte) (KernelService, error) {
	var ks KernelService
	b, err := inner(msg, ipvsCmdAttrService)
	if err != nil {
		return ks, err
	}
	ad, err := netlink.NewAttributeDecoder(b)
	if err != nil {
		return ks, err
	}
	var addr []byte
	var stats32, stats64 []byte
	var mask uint32
	for ad.Next() {
		switch ad.Type() {
		case svcAttrAF:
			ks.Key.Family = ad.Uint16()
		case svcAttrProtocol:
			ks.Key.Protocol = ad.Uint16()
		case svcAttrAddr:
			addr = ad.Bytes()
		case svcAttrPort:
			if v := ad.Bytes(); len(v) == 2 {
				ks.Key.Port = binary.BigEndian.Uint16(v)
			}
		case svcAttrFWMark:
			ks.Key.FWMark = ad.Uint32()
		case svcAttrSchedName:
			ks.Scheduler = ad.String()
		case svcAttrFlags:
			if v := ad.Bytes(); len(v) >= 4 {
				ks.Flags = binary.NativeEndian.Uint32(v) & userFlags
			}
		case svcAttrTimeout:
			ks.Timeout = ad.Uint32()
		case svcAttrNetmask:
			mask = ad.Uint32()
		case svcAttrStats:
			stats32 = ad.Bytes()
		case svcAttrStats64:
			stats64 = ad.Bytes()
		}
	}
	if err := ad.Err(); err != nil {
		return ks, err
	}
	ks.Netmask = netmaskFromKernel(ks.Key.Family, mask)
	if ks.Key.FWMark != 0 {
		ks.Key.Protocol, ks.Key.Port = 0, 0
	} else {
		ks.Key.Addr = addrOf(addr, ks.Key.Family)
	}
	ks.Stats = decodeStats(stats32, stats64)
	return ks, nil
}

func decodeDest(msg []byte, svcFamily uint16) (Dest, error) {
	var d Dest
	b, err := inner(msg, ipvsCmdAttrDest)
	if err != nil {
		return d, err
	}
	ad, err := netlink.NewAttributeDecoder(b)
	if err != nil {
		return d, err
	}
	fam := svcFamily
	var addr []byte
	var port uint16
	var stats32, stats64 []byte
	for ad.Next() {
		switch ad.Type() {
		case destAttrAddr:
			addr = ad.Bytes()
		case destAttrPort:
			if v := ad.Bytes(); len(v) == 2 {
				port = binary.BigEndian.Uint16(v)
			}
		case destAttrFwd:
			d.Forward = Forward(ad.Uint32() & 0x7)
		case destAttrWeight:
			d.Weight = int(int32(ad.Uint32()))
		case destAttrUThresh:
			d.Upper = ad.Uint32()
		case destAttrLThresh:
			d.Lower = ad.Uint32()
		case destAttrActive:
			d.ActiveConns = int(ad.Uint32())
		case destAttrInact:
			d.InactConns = int(ad.Uint32())
		case destAttrAF:
			fam = ad.Uint16()
		case destAttrStats:
			stats32 = ad.Bytes()
		case destAttrStats64:
			stats64 = ad.Bytes()
		}
	}
	if err := ad.Err(); err != nil {
		return d, err
	}
	d.Addr = netip.AddrPortFrom(addrOf(addr, fam), port)
	d.Stats = decodeStats(stats32, stats64)
	return d, nil
}

// addrOf reads an address attribute: the kernel sends 16 bytes (union
// nf_inet_addr) whatever the family, IPv4 in the first four.
func addrOf(b []byte, fam uint16) netip.Addr {
	if fam == unix.AF_INET && len(b) >= 4 {
		return netip.AddrFrom4([4]byte(b[:4]))
	}
	if len(b) >= 16 {
		return netip.AddrFrom16([16]byte(b[:16]))
	}
	return netip.Addr{}
}

// decodeStats prefers the 64-bit counters (kernel 4.1+), which do not wrap.
func decodeStats(s32, s64 []byte) Stats {
	var st Stats
	src, wide := s64, true
	if src == nil {
		src, wide = s32, false
	}
	ad, err := netlink.NewAttributeDecoder(src)
	if err != nil || src == nil {
		return st
	}
	val := func() uint64 {
		if wide || len(ad.Bytes()) == 8 {
			return ad.Uint64()
		}
		return uint64(ad.Uint32())
	}
	for ad.Next() {
		switch ad.Type() {
		case statsConns:
			st.Conns = val()
		case statsInPkts:
			st.PktsIn = val()
		case statsOutPkts:
			st.PktsOut = val()
		case statsInBytes:
			st.BytesIn = ad.Uint64()
		case statsOutBytes:
			st.BytesOut = ad.Uint64()
		}
	}
	return st
}
