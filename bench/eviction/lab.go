package main

import (
	"bytes"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/lvsd/lvsd/director"
	lproc "github.com/lvsd/lvsd/internal/proc"
)

// impl is one director implementation with its namespaces: dirNS holds its
// IPVS table; each real server, 10.<subnet>.<host>.2 for host 11 and 12, has
// a namespace of its own behind a veth "rs<host>", so one can be cut off alone.
type impl struct {
	name   string
	subnet int
	start  func(*impl) (*proc, error)

	dirNS      string
	testserver string
	kernel     director.IPVS
	daemon     *proc
	servers    map[netip.AddrPort]*proc
	victim     netip.AddrPort

	evictions, restores []time.Duration
	falseEvictions      int
}

var hosts = []int{11, 12}

func (i *impl) addr(host int) netip.AddrPort {
	return netip.MustParseAddrPort(fmt.Sprintf("10.%d.%d.2:80", i.subnet, host))
}

func (i *impl) rsNS(a netip.AddrPort) string {
	return fmt.Sprintf("lvsd-ev-%s-rs%d", i.name, a.Addr().As4()[2])
}

func (i *impl) vip() string { return fmt.Sprintf("10.%d.1.100", i.subnet) }

func (i *impl) reals() []netip.AddrPort { return []netip.AddrPort{i.addr(11), i.addr(12)} }

func (i *impl) setup(testserver string) error {
	i.dirNS = "lvsd-ev-" + i.name + "-dir"
	i.testserver, i.servers, i.victim = testserver, map[netip.AddrPort]*proc{}, i.addr(12)
	i.teardown() // a previous run killed before its cleanup
	cmds := [][]string{
		{"ip", "netns", "add", i.dirNS},
		{"ip", "-n", i.dirNS, "link", "set", "lo", "up"},
	}
	for _, h := range hosts {
		rs, net, dev := i.rsNS(i.addr(h)), fmt.Sprintf("10.%d.%d", i.subnet, h), fmt.Sprintf("rs%d", h)
		cmds = append(cmds, [][]string{
			{"ip", "netns", "add", rs},
			{"ip", "-n", rs, "link", "set", "lo", "up"},
			{"ip", "-n", i.dirNS, "link", "add", dev, "type", "veth", "peer", "name", "eth0", "netns", rs},
			{"ip", "-n", i.dirNS, "addr", "add", net + ".1/24", "dev", dev},
			{"ip", "-n", i.dirNS, "link", "set", dev, "up"},
			{"ip", "-n", rs, "addr", "add", net + ".2/24", "dev", "eth0"},
			{"ip", "-n", rs, "link", "set", "eth0", "up"},
			{"ip", "-n", rs, "route", "add", "default", "via", net + ".1"},
		}...)
	}
	for _, c := range cmds {
		if err := sh(c...); err != nil {
			return err
		}
	}
	for _, a := range i.reals() {
		if err := i.startServer(a); err != nil {
			return err
		}
	}
	k, err := director.OpenKernelAt("/run/netns/" + i.dirNS)
	if err != nil {
		return err
	}
	i.kernel = k
	return nil
}

func sh(argv ...string) error {
	if out, err := exec.Command(argv[0], argv[1:]...).CombinedOutput(); err != nil {
		return fmt.Errorf("%s: %w: %s", strings.Join(argv, " "), err, bytes.TrimSpace(out))
	}
	return nil
}

// cutOff makes a real server drop everything it sends (netem loss 100% on
// its only link), so probes get no SYN-ACK and time out; on false it
// answers again.
func (i *impl) cutOff(a netip.AddrPort, on bool) error {
	if on {
		return sh("ip", "netns", "exec", i.rsNS(a), "tc", "qdisc", "add", "dev", "eth0", "root", "netem", "loss", "100%")
	}
	return sh("ip", "netns", "exec", i.rsNS(a), "tc", "qdisc", "del", "dev", "eth0", "root")
}

func (i *impl) teardown() {
	if i.kernel != nil {
		i.kernel.Close()
	}
	for _, p := range i.servers {
		p.stop()
	}
	exec.Command("ip", "netns", "del", i.dirNS).Run()
	for _, a := range i.reals() {
		exec.Command("ip", "netns", "del", i.rsNS(a)).Run()
	}
}

// startServer starts the testserver of one real server and waits until it listens.
func (i *impl) startServer(a netip.AddrPort) error {
	p, err := startIn(i.rsNS(a), i.testserver, "-name", a.Addr().String(), "-http", a.String())
	if err != nil {
		return err
	}
	i.servers[a] = p
	return p.waitOutput("http on", 30*time.Second)
}

func startLvsd(i *impl, lvsd, dir string, s settings) (*proc, error) {
	var b strings.Builder
	fmt.Fprintf(&b, "[director]\nname = \"bench-eviction\"\ninterface = \"rs11\"\nmetrics_listen = %q\n", lvsdMetrics)
	fmt.Fprintf(&b, "control_socket = %q\non_exit = \"flush\"\n\n", filepath.Join(dir, "lvsd.sock"))
	fmt.Fprintf(&b, "[[service]]\nname = \"web\"\nvip = %q\nport = 80\nscheduler = \"rr\"\nforwarding = \"nat\"\n", i.vip())
	fmt.Fprintf(&b, "  [[service.check]]\n  type = \"tcp\"\n  interval = %q\n  timeout = %q\n  fall = %d\n  rise = %d\n",
		s.interval, s.timeout, s.fall, s.rise)
	for _, a := range i.reals() {
		fmt.Fprintf(&b, "  [[service.realserver]]\n  address = %q\n", a.Addr())
	}
	conf := filepath.Join(dir, "lvsd.toml")
	if err := os.WriteFile(conf, []byte(b.String()), 0o644); err != nil {
		return nil, err
	}
	return startIn(i.dirNS, lvsd, "run", "-config", conf)
}

// startKeepalived runs keepalived's checker process alone (-C) in the
// director namespace. retry counts the probes after a first failure, each
// delay_before_retry apart, so fall = retry+1 at the same spacing as lvsd's.
func startKeepalived(i *impl, keepalived, dir string, s settings) (*proc, error) {
	var b strings.Builder
	fmt.Fprintf(&b, "global_defs {\n  router_id bench_eviction\n}\n")
	fmt.Fprintf(&b, "virtual_server %s 80 {\n  delay_loop %s\n  lb_algo rr\n  lb_kind NAT\n  protocol TCP\n", i.vip(), secs(s.interval))
	for _, a := range i.reals() {
		fmt.Fprintf(&b, "  real_server %s 80 {\n    weight 1\n    TCP_CHECK {\n      connect_timeout %s\n      retry %d\n      delay_before_retry %s\n    }\n  }\n",
			a.Addr(), secs(s.timeout), s.fall-1, secs(s.interval))
	}
	b.WriteString("}\n")
	conf := filepath.Join(dir, "keepalived.conf")
	if err := os.WriteFile(conf, []byte(b.String()), 0o644); err != nil {
		return nil, err
	}
	pids := []string{filepath.Join(dir, "keepalived.pid"), filepath.Join(dir, "checkers.pid"), filepath.Join(dir, "vrrp.pid")}
	for _, p := range pids {
		os.Remove(p) // a zombie's stale pid file makes keepalived refuse to start
	}
	argv := []string{keepalived, "-n", "-C", "-f", conf, "-p", pids[0], "-c", pids[1], "-r", pids[2]}
	if verbose {
		// -l writes to the console too, where it mixes with the rounds.
		argv = append(argv, "-l", "-D")
	}
	return startIn(i.dirNS, argv...)
}

// proc is a process started in a namespace, with its output kept.
type proc struct {
	*lproc.Proc
	out lproc.Buffer
}

func startIn(ns string, argv ...string) (*proc, error) {
	p := &proc{}
	cmd := exec.Command("ip", append([]string{"netns", "exec", ns}, argv...)...)
	cmd.Stdout, cmd.Stderr = &p.out, &p.out
	var err error
	if p.Proc, err = lproc.Start(cmd, nil); err != nil {
		return nil, fmt.Errorf("start %s: %w", strings.Join(argv, " "), err)
	}
	return p, nil
}

// kill is the failure the bench times: SIGKILL, then the wait for the end.
func (p *proc) kill() error {
	if err := p.Signal(syscall.SIGKILL); err != nil {
		return err
	}
	<-p.Done()
	return nil
}

func (p *proc) stop() { _ = p.Stop(10 * time.Second) }

func (p *proc) waitOutput(substr string, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for !strings.Contains(p.out.String(), substr) {
		if p.Exited() || time.Now().After(deadline) {
			return fmt.Errorf("%s: no %q in its output:\n%s", strings.Join(p.Cmd.Args, " "), substr, p.tail())
		}
		time.Sleep(10 * time.Millisecond)
	}
	return nil
}

func (p *proc) tail() string {
	lines := strings.Split(strings.TrimSpace(p.out.String()), "\n")
	if len(lines) > 20 {
		lines = lines[len(lines)-20:]
	}
	return strings.Join(lines, "\n")
}
