package main

import (
	"context"
	"fmt"
	"net/netip"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/lvsd/lvsd/checks"
	"github.com/lvsd/lvsd/config"
	ilab "github.com/lvsd/lvsd/internal/lab"
	"github.com/vishvananda/netlink"
)

// The lab is one Ethernet segment, a bridge in a namespace of its own, with
// every machine plugged into it. The examples' addresses must fall inside it.
var (
	segment     = netip.MustParsePrefix("192.0.2.0/24")
	clientAddr  = netip.MustParseAddr("192.0.2.100")
	directorIPs = []netip.Addr{netip.MustParseAddr("192.0.2.2"), netip.MustParseAddr("192.0.2.3")}
)

const bridgeName = "br0"

// director is one lvsd node of the pair.
type director struct {
	name    string // director.name from its config
	cfgPath string
	cfg     *config.Config
	addr    netip.Addr
	host    *host
	lvsd    *proc
	ctl     *controlClient
}

func (d *director) vrrp() *config.VRRP { return &d.cfg.VRRP[0] }

// realServer is one backend machine.
type realServer struct {
	name    string
	service string // name of the service it serves
	addr    netip.AddrPort
	host    *host
	proc    *proc
	argv    []string // how to start its server
}

func (rs *realServer) key() string { return rs.addr.String() }

type lab struct {
	bin, logDir string
	n           *narrator
	procs       procs
	journal     *journal
	lan, client *host
	dirs        []*director // dirs[0] is the preferred master
	web         []*realServer
	dns         *realServer
	vip         netip.Addr
	machines    ilab.Lab // deletes every namespace, last created first
}

// plan reads the two example configs and lays the lab out to match them:
// the web service's real servers become rs1..rsN, the DNS service's first
// real server becomes dns1.
func plan(bin, logDir string, n *narrator, configs [2]string) (*lab, error) {
	l := &lab{bin: bin, logDir: logDir, n: n, journal: &journal{}}
	for i, path := range configs {
		cfg, err := config.Load(path)
		if err != nil {
			return nil, fmt.Errorf("%s:\n%w", path, err)
		}
		if len(cfg.VRRP) != 1 || len(cfg.VRRP[0].VIPs) != 1 {
			return nil, fmt.Errorf("%s: the demo needs exactly one vrrp instance with one VIP", path)
		}
		if cfg.Director.ControlSocket == "" {
			return nil, fmt.Errorf("%s: the demo reads status over the control socket; set director.control_socket", path)
		}
		l.dirs = append(l.dirs, &director{
			name: cfg.Director.Name, cfgPath: path, cfg: cfg, addr: directorIPs[i],
			ctl: newControlClient(cfg.Director.ControlSocket),
		})
	}
	a, b := l.dirs[0], l.dirs[1]
	if a.cfg.Director.ControlSocket == b.cfg.Director.ControlSocket {
		return nil, fmt.Errorf("%s and %s use the same control socket; the demo runs both on one machine", a.cfgPath, b.cfgPath)
	}
	if a.vrrp().Priority <= b.vrrp().Priority {
		return nil, fmt.Errorf("%s must have the higher VRRP priority: the demo expects it to be master", a.cfgPath)
	}
	l.vip = a.vrrp().VIPs[0].Addr()
	if !segment.Contains(l.vip) {
		return nil, fmt.Errorf("%s: VIP %s is outside the lab's segment %s", a.cfgPath, l.vip, segment)
	}
	web, dns := a.service("web"), a.service("dns")
	if web == nil || dns == nil || len(web.RealServers) == 0 || len(dns.RealServers) == 0 {
		return nil, fmt.Errorf("%s: the demo needs services named web and dns, each with real servers", a.cfgPath)
	}
	for i, r := range web.RealServers {
		name := fmt.Sprintf("rs%d", i+1)
		rs := &realServer{name: name, service: web.Name, addr: r.AddrPort()}
		rs.argv = []string{"nice", "-n", "10", filepath.Join(bin, "testserver"), "-name", name, "-http", fmt.Sprintf(":%d", r.Port)}
		l.web = append(l.web, rs)
	}
	if len(l.web) < 2 {
		return nil, fmt.Errorf("%s: the demo kills one web server, so it needs at least two", a.cfgPath)
	}
	d := dns.RealServers[0]
	l.dns = &realServer{name: "dns1", service: dns.Name, addr: d.AddrPort()}
	name, answer := dnsRecord(dns)
	if name == "" {
		return nil, fmt.Errorf("%s: service dns needs a dns check with query_name and expect_answer (an address)", a.cfgPath)
	}
	l.dns.argv = []string{"nice", "-n", "10", "dnsmasq", "--keep-in-foreground", "--conf-file=/dev/null", "--no-resolv", "--no-hosts",
		"--bind-interfaces", "--listen-address=" + d.Address.IP.String(), "--listen-address=" + l.vip.String(),
		fmt.Sprintf("--port=%d", d.Port), "--host-record=" + name + "," + answer,
		"--pid-file=" + filepath.Join(logDir, "dnsmasq.pid"), "--log-facility=-"}
	for _, rs := range append(l.web, l.dns) {
		if !segment.Contains(rs.addr.Addr()) {
			return nil, fmt.Errorf("%s: real server %s is outside the lab's segment %s", a.cfgPath, rs.addr, segment)
		}
	}
	return l, nil
}

func (d *director) service(name string) *config.Service {
	for _, s := range d.cfg.Services {
		if s.Name == name {
			return s
		}
	}
	return nil
}

// dnsRecord is the record the dns check asks for, which dnsmasq then serves.
func dnsRecord(s *config.Service) (name, answer string) {
	for _, c := range s.RealServers[0].Checks {
		if d, ok := c.Settings.(*checks.DNSSettings); ok && d.QueryName != "" {
			if _, err := netip.ParseAddr(d.ExpectAnswer); err == nil {
				return strings.TrimSuffix(d.QueryName, "."), d.ExpectAnswer
			}
		}
	}
	return "", ""
}

func (l *lab) newHost(name string) (*host, error) {
	return ilab.NewNS(&l.machines, name)
}

// build creates every namespace and cable and starts the real servers.
func (l *lab) build() error {
	var err error
	if l.lan, err = l.newHost("lan"); err != nil {
		return err
	}
	if err := l.lan.Bridge(bridgeName); err != nil {
		return err
	}
	mask := segment.Bits()
	if l.client, err = l.newHost("client"); err != nil {
		return err
	}
	if err := l.attach(l.client, clientAddr, mask); err != nil {
		return err
	}
	for _, d := range l.dirs {
		if err := l.bootDirectorHost(d); err != nil {
			return err
		}
	}
	for _, rs := range append(l.web, l.dns) {
		if rs.host, err = l.newHost(rs.name); err != nil {
			return err
		}
		if err := l.attach(rs.host, rs.addr.Addr(), mask); err != nil {
			return err
		}
		// Direct routing: the real server accepts packets for the VIP,
		// but must never answer ARP for it, or it would steal the VIP
		// from the director.
		if err := rs.host.Addr("lo", l.vip.String()+"/32"); err != nil {
			return err
		}
		for _, dev := range []string{"all", "eth0"} {
			if err := rs.host.Sysctl("net.ipv4.conf."+dev+".arp_ignore", "1"); err != nil {
				return err
			}
			if err := rs.host.Sysctl("net.ipv4.conf."+dev+".arp_announce", "2"); err != nil {
				return err
			}
		}
		if err := l.startServer(rs); err != nil {
			return err
		}
	}
	for _, rs := range l.web {
		if err := waitTCP(l.client, rs.addr.String(), 10*time.Second); err != nil {
			return fmt.Errorf("%s: %w", rs.name, err)
		}
	}
	c := newClient(l.client, l.vip.String(), time.Second)
	name, answer := dnsRecord(l.dirs[0].service(l.dns.service))
	deadline := time.Now().Add(10 * time.Second)
	for {
		got, err := c.queryDNS(l.dns.addr.String(), name, 500*time.Millisecond)
		if err == nil && len(got) > 0 && got[0] == answer {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("dns1: dnsmasq does not answer %s A on %s: %v (log: %s)", name, l.dns.addr, err, l.dns.proc.Tail(5))
		}
		time.Sleep(100 * time.Millisecond)
	}
	return nil
}

// rebootDirectorHost replaces d's machine by a fresh one, as after a power
// cycle: the old namespace (its stale VIP, IPVS table and sync daemons) stays
// unreachable until teardown.
func (l *lab) rebootDirectorHost(d *director) error {
	if err := d.host.Detach(); err != nil {
		return err
	}
	return l.bootDirectorHost(d)
}

// bootDirectorHost gives d a fresh machine: its own namespace (an empty
// IPVS table, no VIP) plugged into the segment.
func (l *lab) bootDirectorHost(d *director) error {
	var err error
	if d.host, err = l.newHost(d.name); err != nil {
		return err
	}
	return l.attach(d.host, d.addr, segment.Bits())
}

func (l *lab) attach(h *host, addr netip.Addr, bits int) error {
	if err := h.Plug(l.lan, bridgeName, h.Role); err != nil {
		return err
	}
	return h.Addr("eth0", netip.PrefixFrom(addr, bits).String())
}

func (l *lab) startServer(rs *realServer) error {
	p, err := start(rs.host, rs.name, l.logDir, nil, rs.argv...)
	if err != nil {
		return err
	}
	rs.proc = l.procs.add(p)
	return nil
}

// startLvsd starts lvsd on d with its example config, JSON logs feeding the
// journal. lvsd runs at a higher priority (nice -10) than the real servers
// (nice 10), the client and this driver: the lab packs seven machines into
// one (often emulated) CPU, where a real director has its own box, and the
// VRRP adverts of one director must not wait behind another machine's HTTP
// requests.
func (l *lab) startLvsd(d *director) error {
	l.journal.forget(d.name)
	p, err := start(d.host, "lvsd-"+d.name, l.logDir, func(line string) {
		if e, ok := parseEvent(d.name, line); ok {
			l.journal.add(e)
		}
	}, "nice", "-n", "-10", filepath.Join(l.bin, "lvsd"), "run", "-config", d.cfgPath, "-log-format", "json")
	if err != nil {
		return err
	}
	d.lvsd = l.procs.add(p)
	return nil
}

// lvsdCommand runs `lvsd ARGS...` against d's control socket and returns
// its output.
func (l *lab) lvsdCommand(d *director, args ...string) (string, error) {
	args = append(args, "-socket", d.cfg.Director.ControlSocket)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, filepath.Join(l.bin, "lvsd"), args...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("lvsd %s: %w: %s", strings.Join(args, " "), err, out)
	}
	return string(out), nil
}

// teardown stops every process and deletes every namespace.
func (l *lab) teardown() {
	l.procs.stopAll()
	l.machines.Close()
}

// arpOfVIP says which machine the client's neighbour entry for the VIP
// points at, for explaining a failure.
func (l *lab) arpOfVIP() string {
	link, err := l.client.Netlink().LinkByName("eth0")
	if err != nil {
		return err.Error()
	}
	neighs, err := l.client.Netlink().NeighList(link.Attrs().Index, netlink.FAMILY_V4)
	if err != nil {
		return err.Error()
	}
	for _, nb := range neighs {
		if !nb.IP.Equal(l.vip.AsSlice()) {
			continue
		}
		owner := "an unknown machine"
		for _, d := range l.dirs {
			if dl, err := d.host.Netlink().LinkByName("eth0"); err == nil && dl.Attrs().HardwareAddr.String() == nb.HardwareAddr.String() {
				owner = d.name
			}
		}
		return fmt.Sprintf("%s (%s), state %s", nb.HardwareAddr, owner, neighState(nb.State))
	}
	return "none"
}

func neighState(s int) string {
	names := map[int]string{netlink.NUD_INCOMPLETE: "incomplete", netlink.NUD_REACHABLE: "reachable", netlink.NUD_STALE: "stale",
		netlink.NUD_DELAY: "delay", netlink.NUD_PROBE: "probe", netlink.NUD_FAILED: "failed", netlink.NUD_NOARP: "noarp", netlink.NUD_PERMANENT: "permanent"}
	if n, ok := names[s]; ok {
		return n
	}
	return fmt.Sprintf("%#x", s)
}
