package lab

import (
	"encoding/binary"
	"errors"
	"net"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// Capture reads the frames of one EtherType on one interface of a
// namespace, each with the kernel's timestamp of when the interface
// received (or sent) it, so how late the reading goroutine runs never
// enters a measurement. One goroutine reads it at a time.
type Capture struct {
	fd        int
	etherType uint16
	oob       []byte
	closeOnce sync.Once
	mu        sync.Mutex
	packets   uint64
	drops     uint64
}

// Frame is one captured frame.
type Frame struct {
	Data     []byte    // from the Ethernet header on; a slice of the caller's buffer
	At       time.Time // the kernel's timestamp
	Outgoing bool      // sent by this namespace rather than received
}

// ErrNoFrame is what Capture.Next returns when its poll ends without a frame.
var ErrNoFrame = errors.New("no frame")

// captureBuffer holds a few seconds of 10 ms VRRP adverts from several
// senders even if the reader is starved for that long.
const captureBuffer = 8 << 20

// Capture opens a packet socket on dev for frames of etherType (e.g.
// unix.ETH_P_ARP, unix.ETH_P_IP) in both directions. Next polls for at most
// poll. The socket is closed by Close or when the lab is torn down.
func (ns *NS) Capture(dev string, etherType uint16, poll time.Duration) (*Capture, error) {
	c := &Capture{fd: -1, oob: make([]byte, 128), etherType: etherType}
	// ETH_P_ALL, filtered here: a socket bound to one protocol never sees
	// what the interface sends, only what it receives.
	proto := htons(unix.ETH_P_ALL)
	err := ns.Do(func() error {
		fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, int(proto))
		if err != nil {
			return err
		}
		c.fd = fd
		ifc, err := net.InterfaceByName(dev)
		if err != nil {
			return err
		}
		return unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: proto, Ifindex: ifc.Index})
	})
	if err == nil {
		err = unix.SetsockoptInt(c.fd, unix.SOL_SOCKET, unix.SO_TIMESTAMPNS, 1)
	}
	if err == nil {
		tv := unix.NsecToTimeval(int64(poll))
		err = unix.SetsockoptTimeval(c.fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv)
	}
	if err == nil && unix.SetsockoptInt(c.fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, captureBuffer) != nil {
		err = unix.SetsockoptInt(c.fd, unix.SOL_SOCKET, unix.SO_RCVBUF, captureBuffer)
	}
	if err != nil {
		if c.fd >= 0 {
			unix.Close(c.fd)
		}
		return nil, ns.errorf("capture on %s: %w", dev, err)
	}
	ns.c.Cleanup(c.Close)
	return c, nil
}

// Next returns the next frame of the capture's EtherType, read into buf,
// or ErrNoFrame if none came within a poll time.
func (c *Capture) Next(buf []byte) (Frame, error) {
	for {
		n, oobn, _, from, err := unix.Recvmsg(c.fd, buf, c.oob, 0)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if errors.Is(err, unix.EAGAIN) {
			return Frame{}, ErrNoFrame
		}
		if err != nil {
			return Frame{}, err
		}
		if n < 14 || binary.BigEndian.Uint16(buf[12:]) != c.etherType {
			continue
		}
		f := Frame{Data: buf[:n], At: time.Now()}
		if ll, ok := from.(*unix.SockaddrLinklayer); ok {
			f.Outgoing = ll.Pkttype == unix.PACKET_OUTGOING
		}
		if at, ok := kernelTime(c.oob[:oobn]); ok {
			f.At = at
		}
		return f, nil
	}
}

func kernelTime(oob []byte) (time.Time, bool) {
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return time.Time{}, false
	}
	for _, m := range msgs {
		if m.Header.Level == unix.SOL_SOCKET && m.Header.Type == unix.SCM_TIMESTAMPNS && len(m.Data) >= 16 {
			sec := int64(binary.NativeEndian.Uint64(m.Data[0:]))
			nsec := int64(binary.NativeEndian.Uint64(m.Data[8:]))
			return time.Unix(sec, nsec), true
		}
	}
	return time.Time{}, false
}

// Drain discards the frames already queued.
func (c *Capture) Drain() {
	buf := make([]byte, 2048)
	for {
		if _, _, err := unix.Recvfrom(c.fd, buf, unix.MSG_DONTWAIT); err != nil {
			return
		}
	}
}

// Stats returns how many frames the socket has taken and how many it
// dropped (its buffer was full) since it was opened.
func (c *Capture) Stats() (packets, drops uint64, err error) {
	st, err := unix.GetsockoptTpacketStats(c.fd, unix.SOL_PACKET, unix.PACKET_STATISTICS)
	c.mu.Lock()
	defer c.mu.Unlock()
	if err == nil {
		// The kernel resets its counters on every read.
		c.packets += uint64(st.Packets)
		c.drops += uint64(st.Drops)
	}
	return c.packets, c.drops, err
}

// Close closes the socket. Calling it again is harmless.
func (c *Capture) Close() {
	c.closeOnce.Do(func() { unix.Close(c.fd) })
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }
