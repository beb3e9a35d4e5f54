package main

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// targetAddr is the i-th loopback address: 127.1.0.1, 127.1.0.2, ...
func targetAddr(i int) netip.Addr {
	return netip.AddrFrom4([4]byte{127, 1, byte(i / 250), byte(i%250 + 1)})
}

// targets lists every address:port the checkers probe.
func targets(o options) []netip.AddrPort {
	var out []netip.AddrPort
	for a := 0; a < o.addrs; a++ {
		for p := 0; p < o.ports; p++ {
			out = append(out, netip.AddrPortFrom(targetAddr(a), uint16(o.basePort+p)))
		}
	}
	return out
}

// serve listens on every target, accepts and closes, and answers each
// "count" line on in with the number of connections accepted so far.
func serve(o options, in io.Reader, out io.Writer) error {
	var accepted atomic.Int64
	for _, t := range targets(o) {
		l, err := net.Listen("tcp", t.String())
		if err != nil {
			return err
		}
		go func() {
			for {
				c, err := l.Accept()
				if err != nil {
					return
				}
				accepted.Add(1)
				c.Close()
			}
		}()
	}
	fmt.Fprintln(out, "ready")
	sc := bufio.NewScanner(in)
	for sc.Scan() {
		if sc.Text() == "count" {
			fmt.Fprintln(out, accepted.Load())
		}
	}
	return nil
}

// listeners is the parent's handle on the serving child.
type listeners struct {
	cmd *exec.Cmd
	mu  sync.Mutex
	in  io.WriteCloser
	out *bufio.Reader
}

func startListeners(o options) (*listeners, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(self, "-role", "serve", "-addrs", strconv.Itoa(o.addrs), "-ports", strconv.Itoa(o.ports),
		"-base-port", strconv.Itoa(o.basePort))
	cmd.Stderr = os.Stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	outPipe, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	l := &listeners{cmd: cmd, in: in, out: bufio.NewReader(outPipe)}
	line, err := l.out.ReadString('\n')
	if err != nil || strings.TrimSpace(line) != "ready" {
		l.stop()
		return nil, fmt.Errorf("listeners did not start: %q %v", line, err)
	}
	return l, nil
}

// cpu is the CPU time the listeners have used: the servers' side of every
// handshake, which the kernel may bill to whichever process it runs in.
func (l *listeners) cpu() time.Duration { return treeCPU(l.cmd.Process.Pid) }

func (l *listeners) accepted() int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	fmt.Fprintln(l.in, "count")
	line, err := l.out.ReadString('\n')
	if err != nil {
		return -1
	}
	n, _ := strconv.ParseInt(strings.TrimSpace(line), 10, 64)
	return n
}

func (l *listeners) stop() {
	l.in.Close()
	l.cmd.Process.Kill()
	l.cmd.Wait()
}
