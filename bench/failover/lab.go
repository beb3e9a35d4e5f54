package main

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/lvsd/lvsd/internal/netns"
)

// lab is the bench network: namespaces d1, d2 (directors) and cl (client)
// on a bridge in sw, all named with our pid so runs never collide.
type lab struct {
	dir    string
	prefix string
	cap    *capture
}

func newLab(dir string, n int) (*lab, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	l := &lab{dir: dir, prefix: fmt.Sprintf("fob%d-%d-", os.Getpid(), n)}
	steps := [][]string{}
	for _, ns := range []string{"sw", "d1", "d2", "cl"} {
		steps = append(steps, []string{"ip", "netns", "add", l.ns(ns)}, l.in(ns, "ip", "link", "set", "lo", "up"))
	}
	steps = append(steps,
		l.in("sw", "ip", "link", "add", "br0", "type", "bridge", "mcast_snooping", "0"),
		l.in("sw", "ip", "link", "set", "br0", "up"))
	for i, ns := range []string{"d1", "d2", "cl"} {
		port := fmt.Sprintf("p%d", i)
		addr := fmt.Sprintf("10.9.0.%d/24", i+1)
		if ns == "cl" {
			addr = "10.9.0.100/24"
		}
		steps = append(steps,
			l.in(ns, "ip", "link", "add", "eth0", "type", "veth", "peer", "name", port, "netns", l.ns("sw")),
			l.in(ns, "ip", "addr", "add", addr, "dev", "eth0"),
			l.in(ns, "ip", "link", "set", "eth0", "up"),
			l.in("sw", "ip", "link", "set", port, "master", "br0"),
			l.in("sw", "ip", "link", "set", port, "up"))
	}
	for _, s := range steps {
		if out, err := exec.Command(s[0], s[1:]...).CombinedOutput(); err != nil {
			l.close()
			return nil, fmt.Errorf("%s: %v: %s", strings.Join(s, " "), err, out)
		}
	}
	c, err := openCapture(l.ns("cl"))
	if err != nil {
		l.close()
		return nil, err
	}
	l.cap = c
	return l, nil
}

func (l *lab) ns(name string) string { return l.prefix + name }

func (l *lab) in(ns string, argv ...string) []string {
	return append([]string{"ip", "netns", "exec", l.ns(ns)}, argv...)
}

func (l *lab) close() {
	if l.cap != nil {
		unix.Close(l.cap.fd)
	}
	for _, ns := range []string{"sw", "d1", "d2", "cl"} {
		exec.Command("ip", "netns", "del", l.ns(ns)).Run()
	}
}

func (l *lab) start(ns string, argv ...string) (*proc, error) {
	a := l.in(ns, argv...)
	cmd := exec.Command(a[0], a[1:]...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	log, err := os.OpenFile(l.dir+"/"+ns+".log", os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		log.Close()
		return nil, err
	}
	p := &proc{cmd: cmd, done: make(chan struct{})}
	go func() { cmd.Wait(); log.Close(); close(p.done) }()
	return p, nil
}

func (l *lab) holds(ns string) bool {
	a := l.in(ns, "ip", "-o", "addr", "show", "dev", "eth0")
	out, _ := exec.Command(a[0], a[1:]...).Output()
	return bytes.Contains(out, []byte(" "+vip+"/"))
}

func (l *lab) mac(ns string) (net.HardwareAddr, error) {
	a := l.in(ns, "cat", "/sys/class/net/eth0/address")
	out, err := exec.Command(a[0], a[1:]...).Output()
	if err != nil {
		return nil, err
	}
	return net.ParseMAC(strings.TrimSpace(string(out)))
}

// capture reads ARP frames on the client's eth0 with kernel receive
// timestamps, so the goroutine's scheduling does not enter the numbers.
type capture struct {
	fd int
}

func openCapture(ns string) (*capture, error) {
	var fd int
	err := netns.Do(netns.Path(ns), func() error {
		var err error
		fd, err = unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, int(htons(unix.ETH_P_ARP)))
		if err != nil {
			return err
		}
		ifc, err := net.InterfaceByName("eth0")
		if err != nil {
			return err
		}
		if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ARP), Ifindex: ifc.Index}); err != nil {
			return err
		}
		return unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_TIMESTAMPNS, 1)
	})
	if err != nil {
		return nil, fmt.Errorf("capture socket: %w", err)
	}
	return &capture{fd: fd}, nil
}

// drain discards frames already queued.
func (c *capture) drain() {
	buf := make([]byte, 2048)
	for {
		if _, _, err := unix.Recvfrom(c.fd, buf, unix.MSG_DONTWAIT); err != nil {
			return
		}
	}
}

// waitGARP returns the kernel timestamp of the first ARP frame after since
// whose sender is mac announcing ip.
func (c *capture) waitGARP(mac net.HardwareAddr, ip string, since time.Time, timeout time.Duration) (time.Time, bool) {
	want := netip.MustParseAddr(ip).As4()
	end := time.Now().Add(timeout)
	buf := make([]byte, 2048)
	oob := make([]byte, 128)
	for time.Now().Before(end) {
		tv := unix.NsecToTimeval(int64(50 * time.Millisecond))
		unix.SetsockoptTimeval(c.fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv)
		n, oobn, _, _, err := unix.Recvmsg(c.fd, buf, oob, 0)
		if err != nil {
			continue
		}
		f := buf[:n]
		// Ethernet(14) + ARP: sender MAC at 22, sender IP at 28.
		if len(f) < 42 || binary.BigEndian.Uint16(f[12:]) != unix.ETH_P_ARP {
			continue
		}
		if !bytes.Equal(f[22:28], mac) || !bytes.Equal(f[28:32], want[:]) {
			continue
		}
		at := time.Now()
		if msgs, err := unix.ParseSocketControlMessage(oob[:oobn]); err == nil {
			for _, m := range msgs {
				if m.Header.Level == unix.SOL_SOCKET && m.Header.Type == unix.SCM_TIMESTAMPNS && len(m.Data) >= 16 {
					sec := int64(binary.NativeEndian.Uint64(m.Data[0:]))
					nsec := int64(binary.NativeEndian.Uint64(m.Data[8:]))
					at = time.Unix(sec, nsec)
				}
			}
		}
		if at.After(since) {
			return at, true
		}
	}
	return time.Time{}, false
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }
