package main

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/lvsd/lvsd/director"
	ilab "github.com/lvsd/lvsd/internal/lab"
	"github.com/lvsd/lvsd/internal/netns"
)

// impl is one director implementation with its namespaces: dir holds its
// IPVS table; each real server, 10.<subnet>.<host>.2 for host 11 and 12, has
// a namespace of its own behind a veth "rs<host>", so one can be cut off alone.
type impl struct {
	name   string
	subnet int
	start  func(*impl) (*proc, error)

	dir        *ilab.NS
	rs         map[netip.AddrPort]*ilab.NS
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

func (i *impl) vip() string { return fmt.Sprintf("10.%d.1.100", i.subnet) }

func (i *impl) reals() []netip.AddrPort { return []netip.AddrPort{i.addr(11), i.addr(12)} }

// setup builds the implementation's namespaces in l and starts its real
// servers; l's Close undoes all of it.
func (i *impl) setup(l *ilab.Lab, testserver string) error {
	i.testserver, i.servers, i.rs, i.victim = testserver, map[netip.AddrPort]*proc{}, map[netip.AddrPort]*ilab.NS{}, i.addr(12)
	var err error
	if i.dir, err = ilab.NewNS(l, "ev-"+i.name+"-dir"); err != nil {
		return err
	}
	for _, h := range hosts {
		a := i.addr(h)
		rs, err := ilab.NewNS(l, fmt.Sprintf("ev-%s-rs%d", i.name, h))
		if err != nil {
			return err
		}
		i.rs[a] = rs
		net, dev := fmt.Sprintf("10.%d.%d", i.subnet, h), fmt.Sprintf("rs%d", h)
		for _, err := range []error{
			i.dir.Veth(dev, rs, "eth0"),
			i.dir.Addr(dev, net+".1/24"),
			rs.Addr("eth0", net+".2/24"),
			rs.Route("default", "via", net+".1"),
		} {
			if err != nil {
				return err
			}
		}
	}
	for _, a := range i.reals() {
		if err := i.startServer(a); err != nil {
			return err
		}
	}
	if i.kernel, err = director.OpenKernelAt(netns.Path(i.dir.Name)); err != nil {
		return err
	}
	l.Cleanup(func() { i.kernel.Close() })
	return nil
}

// cutOff makes a real server drop everything it sends (netem loss 100% on
// its only link), so probes get no SYN-ACK and time out; on false it
// answers again.
func (i *impl) cutOff(a netip.AddrPort, on bool) error {
	if on {
		return i.rs[a].Netem("eth0", netlink.NetemQdiscAttrs{Loss: 100})
	}
	return i.rs[a].ClearNetem("eth0")
}

// startServer starts the testserver of one real server and waits until it listens.
func (i *impl) startServer(a netip.AddrPort) error {
	p, err := startIn(i.rs[a], i.testserver, "-name", a.Addr().String(), "-http", a.String())
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
	return startIn(i.dir, lvsd, "run", "-config", conf)
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
	return startIn(i.dir, argv...)
}

// proc is a process started in a namespace, with its output kept.
type proc struct{ *ilab.Proc }

func startIn(ns *ilab.NS, argv ...string) (*proc, error) {
	p, err := ns.Start(ilab.ProcOptions{Grace: 10 * time.Second}, argv...)
	if err != nil {
		return nil, err
	}
	return &proc{p}, nil
}

// kill is the failure the bench times: SIGKILL, then the wait for the end.
func (p *proc) kill() error {
	if err := p.Signal(syscall.SIGKILL); err != nil {
		return err
	}
	<-p.Done()
	return nil
}

func (p *proc) stop() { _ = p.Stop() }

func (p *proc) waitOutput(substr string, limit time.Duration) error {
	if err := p.WaitOutput(substr, limit); err != nil {
		return fmt.Errorf("%w:\n%s", err, p.tail())
	}
	return nil
}

func (p *proc) tail() string { return p.Tail(20) }
