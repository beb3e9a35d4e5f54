package e2e

import (
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/lvsd/lvsd/e2e/lab"
)

// wire is a packet socket on one interface of an attacker's namespace: it
// sends IPv4 VRRP packets built by hand (any source address, TTL 255, to
// 224.0.0.18), and captures the adverts on the segment with the kernel's
// receive timestamps.
type wire struct {
	t       *testing.T
	send    int // AF_PACKET socket for sending
	recv    int // AF_PACKET socket for capturing, ETH_P_IP
	ifindex int
	mac     net.HardwareAddr
	mu      sync.Mutex // serializes sends
	frame   []byte
}

var vrrpGroupMAC = net.HardwareAddr{0x01, 0x00, 0x5e, 0x00, 0x00, 0x12}

func openWire(t *testing.T, ns *lab.NS, dev string) *wire {
	t.Helper()
	w := &wire{t: t, frame: make([]byte, 0, 1514)}
	err := ns.Do(func() error {
		ifc, err := net.InterfaceByName(dev)
		if err != nil {
			return err
		}
		w.ifindex, w.mac = ifc.Index, ifc.HardwareAddr
		if w.send, err = unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0); err != nil {
			return err
		}
		if w.recv, err = unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, int(htons(unix.ETH_P_IP))); err != nil {
			return err
		}
		if err := unix.Bind(w.recv, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_IP), Ifindex: w.ifindex}); err != nil {
			return err
		}
		if err := unix.SetsockoptInt(w.recv, unix.SOL_SOCKET, unix.SO_TIMESTAMPNS, 1); err != nil {
			return err
		}
		tv := unix.NsecToTimeval(int64(100 * time.Millisecond))
		if err := unix.SetsockoptTimeval(w.recv, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
			return err
		}
		return unix.SetsockoptInt(w.recv, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, 8<<20)
	})
	if err != nil {
		t.Fatalf("packet sockets in %s: %v", ns.Name, err)
	}
	t.Cleanup(func() { unix.Close(w.send); unix.Close(w.recv) })
	return w
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

// sendVRRP sends payload (a VRRP message) from src to the VRRP group with
// TTL 255, as a node on the link would.
func (w *wire) sendVRRP(src netip.Addr, payload []byte) error {
	return w.sendIP(src, netip.MustParseAddr("224.0.0.18"), vrrpGroupMAC, 255, payload)
}

// sendIP sends payload as IPv4 protocol 112 from src to dst (dstMAC on the
// link) with ttl.
func (w *wire) sendIP(src, dst netip.Addr, dstMAC net.HardwareAddr, ttl uint8, payload []byte) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	f := append(w.frame[:0], dstMAC...)
	f = append(f, w.mac...)
	f = append(f, 0x08, 0x00)
	ip := make([]byte, 20)
	ip[0], ip[1] = 0x45, 0xc0
	binary.BigEndian.PutUint16(ip[2:], uint16(20+len(payload)))
	ip[8], ip[9] = ttl, 112
	s4, d4 := src.As4(), dst.As4()
	copy(ip[12:], s4[:])
	copy(ip[16:], d4[:])
	binary.BigEndian.PutUint16(ip[10:], ipChecksum(ip))
	f = append(f, ip...)
	f = append(f, payload...)
	w.frame = f
	sa := &unix.SockaddrLinklayer{Ifindex: w.ifindex, Halen: 6}
	copy(sa.Addr[:], dstMAC)
	return unix.Sendto(w.send, f, 0, sa)
}

func ipChecksum(h []byte) uint16 {
	var sum uint32
	for i := 0; i+1 < len(h); i += 2 {
		sum += uint32(h[i])<<8 | uint32(h[i+1])
	}
	for sum>>16 != 0 {
		sum = sum&0xffff + sum>>16
	}
	return ^uint16(sum)
}

// seen is one captured VRRP packet.
type seen struct {
	at      time.Time // kernel receive timestamp
	src     netip.Addr
	payload []byte
}

// drain discards what the capture socket holds already, so that next
// returns what the segment carries from now on.
func (w *wire) drain() {
	buf := make([]byte, 2048)
	for {
		if _, _, err := unix.Recvfrom(w.recv, buf, unix.MSG_DONTWAIT); err != nil {
			return
		}
	}
}

// next returns the next VRRP packet the interface sees that match
// accepts, or false after timeout.
func (w *wire) next(timeout time.Duration, match func(seen) bool) (seen, bool) {
	buf := make([]byte, 2048)
	oob := make([]byte, 128)
	for end := time.Now().Add(timeout); time.Now().Before(end); {
		n, oobn, _, _, err := unix.Recvmsg(w.recv, buf, oob, 0)
		if err != nil {
			continue
		}
		if n < 34 || buf[14]>>4 != 4 || buf[23] != 112 {
			continue
		}
		ihl := int(buf[14]&0x0f) * 4
		total := int(binary.BigEndian.Uint16(buf[16:]))
		if 14+total > n || total < ihl {
			continue
		}
		s := seen{at: time.Now(), src: netip.AddrFrom4([4]byte(buf[26:30])), payload: append([]byte(nil), buf[14+ihl:14+total]...)}
		if msgs, err := unix.ParseSocketControlMessage(oob[:oobn]); err == nil {
			for _, m := range msgs {
				if m.Header.Level == unix.SOL_SOCKET && m.Header.Type == unix.SCM_TIMESTAMPNS && len(m.Data) >= 16 {
					s.at = time.Unix(int64(binary.NativeEndian.Uint64(m.Data)), int64(binary.NativeEndian.Uint64(m.Data[8:])))
				}
			}
		}
		if match == nil || match(s) {
			return s, true
		}
	}
	return seen{}, false
}

// advertOf matches adverts of vrid from src.
func advertOf(vrid uint8, src string) func(seen) bool {
	a := netip.MustParseAddr(src)
	return func(s seen) bool { return s.src == a && len(s.payload) > 2 && s.payload[1] == vrid }
}

func (w *wire) mustNext(timeout time.Duration, what string, match func(seen) bool) seen {
	w.t.Helper()
	s, ok := w.next(timeout, match)
	if !ok {
		w.t.Fatalf("no %s seen on the segment within %v", what, timeout)
	}
	return s
}

func (s seen) String() string {
	return fmt.Sprintf("%v from %v: %x", s.at.Format(time.StampMicro), s.src, s.payload)
}
