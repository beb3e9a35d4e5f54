package main

// The active-active lab of one trial, built with ip(8) like bench/connsync's:
// a router running BIRD with ECMP (L4 hash), three directors each running
// lvsd and BIRD, three DR real servers (connsync's echo server) and a client
// behind the router (connsync's client). The same topology as the e2e test
// (e2e/ecmp_lab_test.go).
//
//	client 10.51.0.2 ── rt 10.51.0.1 / 10.50.0.1 ── br0 ── d1..d3 10.50.0.11-13
//	                                                     └─ r1..r3 10.50.0.21-23

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/lvsd/lvsd/bench/internal/iplab"
	lvsdir "github.com/lvsd/lvsd/director"
)

const (
	vip  = "10.52.0.10"
	port = 80
	// BFD 500 ms × 6: under the VM's emulated CPU on a loaded host BIRD can
	// stall for seconds, and tighter timers flap every session at once
	// (see e2e/ecmp_lab_test.go). Production configs use 100 ms × 3.
	bfdInterval = 500 * time.Millisecond
	bfdMult     = 6
)

type director struct {
	name, ip, ns string
	port         string // its port on the switch
	lvsd, bird   *exec.Cmd
}

type lab struct {
	iplab.Lab
	o      options
	id     int
	sw, rt string
	client string
	dirs   []*director
	reals  []string
	echo   []*exec.Cmd
}

func (l *lab) name(role string) string { return fmt.Sprintf("ecmp%d-%s", l.id, role) }

func (l *lab) build() error {
	if err := os.MkdirAll(l.Dir, 0o755); err != nil {
		return err
	}
	l.sw, l.rt, l.client = l.name("sw"), l.name("rt"), l.name("c")
	all := []string{l.sw, l.rt, l.client}
	for i := 1; i <= 3; i++ {
		l.dirs = append(l.dirs, &director{name: fmt.Sprintf("d%d", i), ip: fmt.Sprintf("10.50.0.%d", 10+i), ns: l.name(fmt.Sprintf("d%d", i)), port: fmt.Sprintf("d%d", i)})
		all = append(all, l.dirs[i-1].ns)
		l.reals = append(l.reals, l.name(fmt.Sprintf("r%d", i)))
	}
	all = append(all, l.reals...)
	for _, ns := range all {
		if err := l.AddNS(ns); err != nil {
			return err
		}
	}
	steps := [][]string{
		{"-n", l.sw, "link", "add", "br0", "type", "bridge"},
		{"-n", l.sw, "link", "set", "br0", "up"},
		{"-n", l.rt, "link", "add", "eth1", "type", "veth", "peer", "name", "eth0", "netns", l.client},
		{"-n", l.rt, "addr", "add", "10.51.0.1/24", "dev", "eth1"},
		{"-n", l.rt, "link", "set", "eth1", "up"},
		{"-n", l.client, "addr", "add", "10.51.0.2/24", "dev", "eth0"},
		{"-n", l.client, "link", "set", "eth0", "up"},
		{"-n", l.client, "route", "add", "default", "via", "10.51.0.1"},
	}
	plug := func(ns, swPort, addr string) {
		steps = append(steps,
			[]string{"-n", l.sw, "link", "add", swPort, "type", "veth", "peer", "name", "eth0", "netns", ns},
			[]string{"-n", l.sw, "link", "set", swPort, "master", "br0", "up"},
			[]string{"-n", ns, "addr", "add", addr, "dev", "eth0"},
			[]string{"-n", ns, "link", "set", "eth0", "up"})
	}
	plug(l.rt, "rt", "10.50.0.1/24")
	for _, d := range l.dirs {
		plug(d.ns, d.port, d.ip+"/24")
	}
	for i, r := range l.reals {
		plug(r, fmt.Sprintf("r%d", i+1), fmt.Sprintf("10.50.0.%d/24", 21+i))
		steps = append(steps, []string{"-n", r, "addr", "add", vip + "/32", "dev", "lo"},
			[]string{"-n", r, "route", "add", "default", "via", "10.50.0.1"})
	}
	for _, ns := range all {
		steps = append(steps, []string{"-n", ns, "link", "set", "lo", "up"})
	}
	for _, s := range steps {
		if err := iplab.IP(s...); err != nil {
			return err
		}
	}
	sysctls := map[string][]string{
		l.rt: {"net.ipv4.ip_forward=1", "net.ipv4.fib_multipath_hash_policy=1", "net.ipv4.conf.all.rp_filter=0", "net.ipv4.conf.eth0.rp_filter=0"},
	}
	for _, d := range l.dirs {
		sysctls[d.ns] = []string{"net.ipv4.conf.all.arp_ignore=1"}
	}
	for _, r := range l.reals {
		sysctls[r] = []string{"net.ipv4.conf.all.arp_ignore=1", "net.ipv4.conf.all.arp_announce=2"}
	}
	for ns, kv := range sysctls {
		if _, err := iplab.In(ns, append([]string{"sysctl", "-qw"}, kv...)...); err != nil {
			return err
		}
	}
	for i, r := range l.reals {
		cmd, err := l.Start(r, fmt.Sprintf("echo%d.log", i+1), l.o.connsync, "echo", "-listen", fmt.Sprintf(":%d", port))
		if err != nil {
			return err
		}
		l.echo = append(l.echo, cmd)
	}
	return l.startBIRD(l.rt, "rt", l.routerBIRD())
}

func bfdBlock() string {
	ms := bfdInterval.Milliseconds()
	return fmt.Sprintf("protocol bfd { interface \"eth0\" { min rx interval %d ms; min tx interval %d ms; multiplier %d; }; }\n", ms, ms, bfdMult)
}

// routerBIRD: passive eBGP to each director with BFD; equal routes merged
// into one multipath route in the kernel.
func (l *lab) routerBIRD() string {
	var b strings.Builder
	fmt.Fprintf(&b, "log stderr all;\nrouter id 10.50.0.1;\nprotocol device { scan time 10; }\n")
	b.WriteString("protocol kernel { ipv4 { import none; export all; }; merge paths on; }\n")
	b.WriteString(bfdBlock())
	// error wait time: after a session error (BFD down) BIRD waits 60 s
	// by default before it takes the session again, and a director that
	// comes back would wait as long to carry traffic.
	b.WriteString("template bgp director { local 10.50.0.1 as 65000; passive on; bfd on; hold time 30; error wait time 1, 10; ipv4 { import all; export none; }; }\n")
	for _, d := range l.dirs {
		fmt.Fprintf(&b, "protocol bgp %s from director { neighbor %s as 65010; }\n", d.name, d.ip)
	}
	return b.String()
}

func directorBIRD(d *director) string {
	return fmt.Sprintf(`log stderr all;
router id %[1]s;
protocol device { scan time 10; }
protocol direct lvsd_vips { ipv4; interface "lvsd-anycast"; }
%[2]sprotocol bgp router1 {
  local %[1]s as 65010;
  neighbor 10.50.0.1 as 65000;
  bfd on;
  hold time 30;
  connect retry time 1;
  error wait time 1, 2;
  ipv4 { import none; export where proto = "lvsd_vips"; };
}
`, d.ip, bfdBlock())
}

func (l *lab) lvsdConfig(d *director) string {
	var b strings.Builder
	fmt.Fprintf(&b, "[director]\nname = %q\ninterface = \"eth0\"\nmetrics_listen = \"\"\ncontrol_socket = %q\n\n", d.name, filepath.Join(l.Dir, d.name+".sock"))
	fmt.Fprintf(&b, "[announce]\nbird_socket = %q\n\n", filepath.Join(l.Dir, d.name+"-bird.ctl"))
	fmt.Fprintf(&b, "[[service]]\nname = \"echo\"\nvip = %q\nport = %d\nscheduler = \"mh\"\nsched_flags = [\"mh-port\", \"mh-fallback\"]\nforwarding = \"dr\"\nannounce = true\n", vip, port)
	// As bench/connsync's pair in events mode: evicted within 2.5 s.
	b.WriteString("  [[service.check]]\n  type = \"tcp\"\n  interval = \"1s\"\n  timeout = \"500ms\"\n  rise = 1\n  fall = 2\n")
	for i := range l.reals {
		fmt.Fprintf(&b, "  [[service.realserver]]\n  address = \"10.50.0.%d\"\n", 21+i)
	}
	return b.String()
}

func (l *lab) startBIRD(ns, name, config string) error {
	path := filepath.Join(l.Dir, name+"-bird.conf")
	if err := os.WriteFile(path, []byte(config), 0o644); err != nil {
		return err
	}
	cmd, err := l.Start(ns, name+"-bird.log", l.o.bird, "-f", "-c", path, "-s", filepath.Join(l.Dir, name+"-bird.ctl"))
	if err == nil && name != "rt" {
		for _, d := range l.dirs {
			if d.name == name {
				d.bird = cmd
			}
		}
	}
	return err
}

func (l *lab) startDirector(d *director) error {
	if err := l.startBIRD(d.ns, d.name, directorBIRD(d)); err != nil {
		return err
	}
	path := filepath.Join(l.Dir, d.name+".toml")
	if err := os.WriteFile(path, []byte(l.lvsdConfig(d)), 0o644); err != nil {
		return err
	}
	var err error
	d.lvsd, err = l.Start(d.ns, d.name+".log", l.o.lvsd, "run", "-config", path)
	return err
}

// nexthops is the set of directors the router spreads the VIP over, read
// over netlink: polling with ip(8) costs most of a second per exec under
// the VM's emulated CPU, which would blur every time measured here.
func (l *lab) nexthops() []string {
	h, err := netlinkAt(l.rt)
	if err != nil {
		return nil
	}
	defer h.Close()
	routes, err := h.RouteListFiltered(netlink.FAMILY_V4, &netlink.Route{Dst: &net.IPNet{IP: net.ParseIP(vip).To4(), Mask: net.CIDRMask(32, 32)}}, netlink.RT_FILTER_DST)
	if err != nil {
		return nil
	}
	var hops []string
	add := func(gw net.IP) {
		for _, d := range l.dirs {
			if gw != nil && d.ip == gw.String() {
				hops = append(hops, d.name)
			}
		}
	}
	for _, r := range routes {
		add(r.Gw)
		for _, nh := range r.MultiPath {
			add(nh.Gw)
		}
	}
	slices.Sort(hops)
	return hops
}

func netlinkAt(ns string) (*netlink.Handle, error) {
	fd, err := netns.GetFromName(ns)
	if err != nil {
		return nil, err
	}
	defer fd.Close()
	return netlink.NewHandleAt(fd, unix.NETLINK_ROUTE)
}

// weight is the kernel weight of real server rip on d (-1: not there).
func (l *lab) weight(d *director, rip string) int {
	k, err := lvsdir.OpenKernelAt("/run/netns/" + d.ns)
	if err != nil {
		return -1
	}
	defer k.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	svcs, err := k.Dump(ctx)
	if err != nil {
		return -1
	}
	for _, s := range svcs {
		for _, dst := range s.Dests {
			if s.Key.Addr.String() == vip && dst.Addr.Addr().String() == rip {
				return dst.Weight
			}
		}
	}
	return -1
}
