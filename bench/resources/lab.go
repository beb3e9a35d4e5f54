package main

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/lvsd/lvsd/internal/netns"
)

// lab is one implementation's network: namespaces d1, d2 (the pair) and
// cl (the client) on a bridge in sw, named with our pid so runs never
// collide. Each node runs the service's replica all the time.
type lab struct {
	dir, prefix, svc string
	replicas         []*proc
}

// node is what a config needs to know about d1 (i = 0) or d2.
type node struct {
	name, ip, peer, dir string
	priority            int
}

func (l *lab) node(i int) node {
	return node{name: fmt.Sprintf("d%d", i+1), ip: fmt.Sprintf("10.9.0.%d", i+1), peer: fmt.Sprintf("10.9.0.%d", 2-i),
		dir: filepath.Join(l.dir, fmt.Sprintf("d%d", i+1)), priority: []int{200, 100}[i]}
}

func newLab(dir string, n int, svc string) (*lab, error) {
	l := &lab{dir: dir, prefix: fmt.Sprintf("hrb%d-%d-", os.Getpid(), n), svc: svc}
	var steps [][]string
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
	// The client follows each takeover's first gratuitous ARP.
	steps = append(steps, l.in("cl", "sysctl", "-qw", "net.ipv4.neigh.eth0.locktime=0"))
	for _, s := range steps {
		if out, err := exec.Command(s[0], s[1:]...).CombinedOutput(); err != nil {
			l.close()
			return nil, fmt.Errorf("%s: %v: %s", strings.Join(s, " "), err, out)
		}
	}
	for i := range 2 {
		nd := l.node(i)
		if err := os.MkdirAll(filepath.Join(nd.dir, "state"), 0o755); err != nil {
			l.close()
			return nil, err
		}
		p, err := l.start(nd.name, "replica", l.svc, "replica", "-listen", nd.ip+":7001", "-state", filepath.Join(nd.dir, "state"))
		if err != nil {
			l.close()
			return nil, err
		}
		l.replicas = append(l.replicas, p)
	}
	return l, nil
}

func (l *lab) ns(name string) string { return l.prefix + name }

func (l *lab) in(ns string, argv ...string) []string {
	return append([]string{"ip", "netns", "exec", l.ns(ns)}, argv...)
}

func (l *lab) run(ns string, argv ...string) error {
	a := l.in(ns, argv...)
	out, err := exec.Command(a[0], a[1:]...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s: %v: %s", strings.Join(argv, " "), err, out)
	}
	return nil
}

// start starts argv in ns, in a process group of its own, its output
// appended to DIR/ns.what.log.
func (l *lab) start(ns, what string, argv ...string) (*proc, error) {
	a := l.in(ns, argv...)
	cmd := exec.Command(a[0], a[1:]...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	log, err := os.OpenFile(filepath.Join(l.dir, ns+"."+what+".log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
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

// reset stops the service wherever it runs and removes the VIP, which a
// killed HA daemon leaves behind.
func (l *lab) reset() {
	for i := range 2 {
		nd := l.node(i)
		l.run(nd.name, l.svc, "ha", "stop", "-role", "db", "-state", filepath.Join(nd.dir, "state"))
		l.run(nd.name, "ip", "addr", "del", vip+"/24", "dev", "eth0")
	}
}

// ask sends one line to VIP:7000 from the client.
func (l *lab) ask(line string) (string, error) {
	var answer string
	err := netns.Do(netns.Path(l.ns("cl")), func() error {
		c, err := net.DialTimeout("tcp", vip+":7000", 50*time.Millisecond)
		if err != nil {
			return err
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(200 * time.Millisecond))
		if _, err := fmt.Fprintf(c, "%s\n", line); err != nil {
			return err
		}
		answer, err = bufio.NewReader(c).ReadString('\n')
		answer = strings.TrimSpace(answer)
		return err
	})
	return answer, err
}

// waitAnswer polls the VIP every 5 ms until PING is answered with want.
func (l *lab) waitAnswer(want string, timeout time.Duration) bool {
	for end := time.Now().Add(timeout); time.Now().Before(end); time.Sleep(5 * time.Millisecond) {
		if r, err := l.ask("PING"); err == nil && r == want {
			return true
		}
	}
	return false
}

// lastStart is how long d2's last service start took, as statesvc logs it
// ("db started in 31.9ms (state copied in 19.7ms)").
func (l *lab) lastStart() (time.Duration, bool) {
	b, err := os.ReadFile(filepath.Join(l.node(1).dir, "state", "ha.log"))
	if err != nil {
		return 0, false
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	_, rest, ok := strings.Cut(lines[len(lines)-1], " started in ")
	if !ok {
		return 0, false
	}
	d, err := time.ParseDuration(strings.Fields(rest)[0])
	return d, err == nil
}

// killAll SIGKILLs every process in ns whose name is comm.
func (l *lab) killAll(ns, comm string) {
	out, _ := exec.Command("ip", "netns", "pids", l.ns(ns)).Output()
	for _, f := range strings.Fields(string(out)) {
		pid, err := strconv.Atoi(f)
		if err != nil {
			continue
		}
		if c, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid)); err == nil && strings.TrimSpace(string(c)) == comm {
			syscall.Kill(pid, syscall.SIGKILL)
		}
	}
}

func (l *lab) close() {
	l.reset()
	for _, p := range l.replicas {
		p.kill()
	}
	for _, ns := range []string{"d1", "d2", "cl", "sw"} {
		out, _ := exec.Command("ip", "netns", "pids", l.ns(ns)).Output()
		for _, f := range strings.Fields(string(out)) {
			if pid, err := strconv.Atoi(f); err == nil {
				syscall.Kill(pid, syscall.SIGKILL)
			}
		}
		exec.Command("ip", "netns", "del", l.ns(ns)).Run()
	}
}

// proc is a process started in a namespace, in a process group of its own.
type proc struct {
	cmd  *exec.Cmd
	done chan struct{}
}

func (p *proc) kill() {
	syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
	<-p.done
}

// stop sends SIGTERM to the group and waits up to grace, then kills it.
func (p *proc) stop(grace time.Duration) {
	syscall.Kill(-p.cmd.Process.Pid, syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(grace):
		p.kill()
	}
}
