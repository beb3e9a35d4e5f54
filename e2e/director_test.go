package e2e

// The director against the real kernel, with real traffic: a client
// namespace, a director namespace running the director package in-process
// (its IPVS handle opened in that namespace), and real servers in their own
// namespaces answering HTTP with their names. Health is driven straight
// through Director.SetHealth so each step is deterministic; the checks
// package is proved elsewhere.

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/lvsd/lvsd/config"
	"github.com/lvsd/lvsd/director"
	"github.com/lvsd/lvsd/e2e/lab"
)

type dirLab struct {
	t       *testing.T
	client  *lab.NS
	dir     *lab.NS
	d       *director.Director
	kernel  director.IPVS
	vip     string
	reals   map[string]string // name -> ip
	sorryIP string
}

func ca(s string) config.Addr {
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return config.Addr{IP: ap.Addr(), Port: int(ap.Port())}
	}
	return config.Addr{IP: netip.MustParseAddr(s)}
}

// natPlan is the addressing of a NAT lab in one address family.
type natPlan struct {
	client, gateway, vip string // the client's leg, /bits included on client
	realFmt, realGW      string // real server addresses (%d from 11), their gateway
	bits                 string // prefix length of both legs
	forwarding           string // the sysctl that makes the director a router
}

var (
	natV4 = natPlan{client: "10.0.1.2", gateway: "10.0.1.1", vip: "10.0.1.100",
		realFmt: "10.0.2.%d", realGW: "10.0.2.1", bits: "/24", forwarding: "net.ipv4.ip_forward"}
	natV6 = natPlan{client: "fd00:1::2", gateway: "fd00:1::1", vip: "fd00:1::100",
		realFmt: "fd00:2::%d", realGW: "fd00:2::1", bits: "/64", forwarding: "net.ipv6.conf.all.forwarding"}
)

// natLab: client -> director (VIP, two legs) -> rs1, rs2, sorry behind a
// bridge whose gateway is the director.
func natLab(t *testing.T) *dirLab { return natLabWith(t, natV4) }

func natLabWith(t *testing.T, p natPlan) *dirLab {
	lab.RequireIPVS(t)
	testserver := lab.Bin(t, "testserver")
	l := &dirLab{t: t, vip: p.vip, reals: map[string]string{}, client: lab.NewNS(t, "client"), dir: lab.NewNS(t, "dir")}
	l.client.Veth("eth0", l.dir, "eth0")
	l.client.Addr("eth0", p.client+p.bits)
	l.client.Route("default", "via", p.gateway)
	l.dir.Addr("eth0", p.gateway+p.bits)
	l.dir.Sysctl(p.forwarding, "1")
	var ports []string
	for i, name := range []string{"rs1", "rs2", "sorry"} {
		ns := lab.NewNS(t, name)
		l.dir.Veth(name, ns, "eth0")
		ports = append(ports, name)
		ip := fmt.Sprintf(p.realFmt, 11+i)
		ns.Addr("eth0", ip+p.bits)
		ns.Route("default", "via", p.realGW)
		ns.Start(testserver, "-name", name, "-http", ":80")
		l.reals[name] = ip
	}
	l.dir.Bridge("br0", ports...)
	l.dir.Addr("br0", p.realGW+p.bits)
	for _, ip := range l.reals {
		l.dir.WaitTCP(net.JoinHostPort(ip, "80"), 10*time.Second)
	}
	l.sorryIP = l.reals["sorry"]
	delete(l.reals, "sorry")
	return l
}

func (l *dirLab) webConfig(mut func(s *config.Service)) *config.Config {
	s := &config.Service{Name: "web", VIP: ca(l.vip), Port: 80, Protocol: "tcp", Scheduler: "rr", Forwarding: "nat"}
	for _, name := range []string{"rs1", "rs2"} {
		s.RealServers = append(s.RealServers, &config.RealServer{Address: ca(l.reals[name]), Port: 80, Weight: 1})
	}
	if mut != nil {
		mut(s)
	}
	return &config.Config{Director: config.Director{Interface: "eth0"}, Services: []*config.Service{s}}
}

// start opens the kernel table of the director namespace and puts the VIP
// on its interface, as lvsd does for a VIP no VRRP instance covers.
func (l *dirLab) start(cfg *config.Config) {
	t := l.t
	k, err := director.OpenKernelAt("/run/netns/" + l.dir.Name)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { k.Close() })
	l.kernel = k
	l.d, err = director.New(cfg, k)
	if err != nil {
		t.Fatal(err)
	}
	err = l.dir.Do(func() error {
		return director.VIPs{}.AddVIPs(context.Background(), "eth0", director.StaticVIPs(cfg))
	})
	if err != nil {
		t.Fatal(err)
	}
}

func (l *dirLab) rs(name string) string { return net.JoinHostPort(l.reals[name], "80") }

func (l *dirLab) health(name string, ok bool) {
	l.d.SetHealth("web", l.rs(name), director.Health{Known: true, Healthy: ok, Weight: -1})
}

// pass runs one reconcile and returns it; it fails the test on error.
func (l *dirLab) pass() director.Result {
	l.t.Helper()
	res, err := l.d.Reconcile(context.Background())
	if err != nil {
		l.t.Fatalf("reconcile: %v\n%s", err, l.dir.Run("ipvsadm", "-Ln"))
	}
	return res
}

// landing sends n requests, each on a new connection, and counts who answered.
func (l *dirLab) landing(n int) map[string]int {
	l.t.Helper()
	got := map[string]int{}
	for range n {
		got[httpGet(l.t, l.client, "http://"+net.JoinHostPort(l.vip, "80")+"/")]++
	}
	return got
}

func (l *dirLab) expectOnly(n int, servers ...string) {
	l.t.Helper()
	got := l.landing(n)
	for _, s := range servers {
		if got[s] == 0 {
			l.t.Fatalf("%s never answered: %v\n%s", s, got, l.dir.Run("ipvsadm", "-Ln"))
		}
		delete(got, s)
	}
	if len(got) > 0 {
		l.t.Fatalf("answers from %v, want only %v\n%s", got, servers, l.dir.Run("ipvsadm", "-Ln"))
	}
}

func (l *dirLab) dump() []director.KernelService {
	l.t.Helper()
	tab, err := l.kernel.Dump(context.Background())
	if err != nil {
		l.t.Fatal(err)
	}
	return tab
}

// alphaEvictRestore drives a fresh web service: the service exists with no
// server before a healthy verdict; both serve once healthy; an evicted one
// gets no requests (one del_dest); a restored one gets them again.
func (l *dirLab) alphaEvictRestore() {
	t := l.t
	t.Helper()
	if res := l.pass(); len(res.Ops) != 1 {
		t.Fatalf("first pass: %v", res.Ops)
	}
	l.health("rs1", true)
	l.health("rs2", true)
	l.pass()
	l.expectOnly(6, "rs1", "rs2")
	l.health("rs1", false)
	if res := l.pass(); len(res.Ops) != 1 || res.Ops[0].Kind != director.OpDelDest {
		t.Fatalf("evict: %v", res.Ops)
	}
	l.expectOnly(6, "rs2")
	l.health("rs1", true)
	l.pass()
	l.expectOnly(6, "rs1", "rs2")
}

// TestDirectorNAT walks one NAT topology through everything the director
// does, in order (one topology: building one costs tens of seconds under
// the VM's emulation).
func TestDirectorNAT(t *testing.T) {
	l := natLab(t)
	l.start(l.webConfig(nil))
	step := func(name string) { t.Logf("--- %s (%s)", name, time.Now().Format("15:04:05")) }

	step("alpha, then eviction seen in where requests land, then restore")
	l.alphaEvictRestore()

	step("drift: flushed table, deleted real server, changed weight")
	for _, tc := range []struct {
		cmd   []string
		drift int
	}{
		{[]string{"ipvsadm", "-C"}, 3},
		{[]string{"ipvsadm", "-d", "-t", l.vip + ":80", "-r", l.rs("rs2")}, 1},
		{[]string{"ipvsadm", "-e", "-t", l.vip + ":80", "-r", l.rs("rs1"), "-m", "-w", "7"}, 1},
	} {
		l.dir.Run(tc.cmd...)
		res := l.pass()
		if res.Drift != tc.drift || len(res.Ops) != tc.drift {
			t.Errorf("%s: drift %d, ops %v; want %d", strings.Join(tc.cmd, " "), res.Drift, res.Ops, tc.drift)
		}
		l.expectOnly(6, "rs1", "rs2")
	}

	step("a service we do not own is left alone")
	l.dir.Run("ipvsadm", "-A", "-t", "10.0.1.200:443", "-s", "wlc")
	if res := l.pass(); len(res.Ops) != 0 {
		t.Errorf("foreign service: ops %v", res.Ops)
	}
	if !strings.Contains(l.dir.Run("ipvsadm", "-Ln"), "10.0.1.200:443") {
		t.Error("foreign service deleted")
	}

	step("hitless reload: one weight, one op, counters kept")
	l.expectOnly(6, "rs1", "rs2")
	time.Sleep(2500 * time.Millisecond) // the kernel folds per-CPU counters every 2 s
	before := l.dump()
	if err := l.d.Update(l.webConfig(func(s *config.Service) { s.RealServers[1].Weight = 3 })); err != nil {
		t.Fatal(err)
	}
	res := l.pass()
	if len(res.Ops) != 1 || res.Ops[0].Kind != director.OpUpdateDest {
		t.Fatalf("one-weight reload: ops %v, want exactly 1 update_dest", res.Ops)
	}
	after := l.dump()
	web := func(tab []director.KernelService) director.KernelService {
		for _, s := range tab {
			if s.Key.Port == 80 {
				return s
			}
		}
		t.Fatalf("no web service in %v", tab)
		return director.KernelService{}
	}
	b, a := web(before), web(after)
	if a.Stats.Conns != b.Stats.Conns || a.Stats.Conns == 0 {
		t.Errorf("service connection counter %d after reload, %d before", a.Stats.Conns, b.Stats.Conns)
	}
	for i, d := range a.Dests {
		if d.Stats.Conns != b.Dests[i].Stats.Conns || d.Stats.Conns == 0 {
			t.Errorf("%s: connection counter %d after reload, %d before", d.Addr, d.Stats.Conns, b.Dests[i].Stats.Conns)
		}
	}
	if w := a.Dests[1].Weight; w != 3 {
		t.Errorf("weight %d, want 3", w)
	}
	step("a reload that fails validation changes nothing")
	bad := l.webConfig(func(s *config.Service) { s.RealServers[0].Address = ca("2001:db8::1") })
	if err := l.d.Update(bad); err == nil {
		t.Fatal("invalid config accepted")
	}
	if res := l.pass(); len(res.Ops) != 0 {
		t.Errorf("rejected reload made ops %v", res.Ops)
	}

	step("operator drain: an open connection survives, new ones avoid the server")
	conn := l.connTo("rs1")
	defer conn.Close()
	if err := l.d.Drain("web", l.rs("rs1"), true); err != nil {
		t.Fatal(err)
	}
	l.pass()
	l.expectOnly(6, "rs2")
	if st := l.status("rs1"); !st.InKernel || st.KernelWeight != 0 {
		t.Errorf("drained rs1: %+v", st)
	}
	if _, err := fmt.Fprint(conn, "GET / HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
		t.Errorf("open connection to a drained server broke: %v", err)
	}
	l.d.Drain("web", l.rs("rs1"), false)
	l.pass()
	l.expectOnly(6, "rs1", "rs2")

	step("on_failure = drain: weight 0 while connections remain")
	l.d.Update(l.webConfig(func(s *config.Service) { s.RealServers[1].Weight = 3; s.OnFailure = "drain" }))
	l.health("rs1", false)
	l.pass()
	l.expectOnly(6, "rs2")
	if st := l.status("rs1"); !st.InKernel || st.KernelWeight != 0 || st.ActiveConns+st.InactConns == 0 {
		t.Errorf("failed rs1 with connections: %+v", st)
	}
	l.health("rs1", true)
	l.pass()

	step("quorum lost -> the sorry server alone; regained -> the pool")
	l.d.Update(l.webConfig(func(s *config.Service) {
		s.Quorum, s.Hysteresis = 2, 0
		s.SorryServer = ca(l.sorryIP)
	}))
	l.pass()
	l.expectOnly(6, "rs1", "rs2")
	l.health("rs2", false)
	l.pass()
	l.expectOnly(4, "sorry")
	l.health("rs2", true)
	l.pass()
	l.expectOnly(6, "rs1", "rs2")

	step("warmup: after a restore the Run loop steps the weight from 1 up to the configured one")
	l.d.Update(l.webConfig(func(s *config.Service) {
		s.RealServers[0].Weight = 5
		s.RealServers[0].Warmup = config.Duration{Duration: 4 * time.Second}
	}))
	l.health("rs1", false)
	l.pass()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go l.d.Run(ctx)
	l.health("rs1", true)
	var seen []int
	for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); time.Sleep(150 * time.Millisecond) {
		// Status, not a dump of our own: Run owns the netlink socket now.
		w := -1
		if st := l.status("rs1"); st.InKernel {
			w = st.KernelWeight
		}
		if w >= 0 && (len(seen) == 0 || seen[len(seen)-1] != w) {
			seen = append(seen, w)
		}
		if w == 5 {
			break
		}
	}
	t.Logf("weights of rs1 seen during its warmup: %v", seen)
	if len(seen) < 3 || seen[0] > 2 || seen[len(seen)-1] != 5 || !slices.IsSorted(seen) {
		t.Errorf("weights seen during warmup %v: want a rise from 1 to 5 in steps", seen)
	}
}

// connTo opens connections to the VIP until one lands on name, and returns it.
// TestDirectorNATIPv6 sends real IPv6 traffic through a table lvsd
// programmed: alpha, spread, eviction seen in where requests land, restore.
func TestDirectorNATIPv6(t *testing.T) {
	l := natLabWith(t, natV6)
	l.start(l.webConfig(nil))
	l.alphaEvictRestore()
	if out := l.dir.Run("ipvsadm", "-Ln"); !strings.Contains(out, "[fd00:1::100]:80") || !strings.Contains(out, "[fd00:2::11]:80") {
		t.Errorf("ipvsadm does not show the IPv6 service and real server:\n%s", out)
	}
}

func (l *dirLab) connTo(name string) net.Conn {
	l.t.Helper()
	for range 20 {
		c, err := l.client.Dial("tcp", l.vip+":80", 5*time.Second)
		if err != nil {
			l.t.Fatal(err)
		}
		fmt.Fprint(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
		buf := make([]byte, 512)
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		n, _ := c.Read(buf)
		c.SetReadDeadline(time.Time{})
		if strings.Contains(string(buf[:n]), name) {
			return c
		}
		c.Close()
	}
	l.t.Fatalf("no connection landed on %s", name)
	return nil
}

func (l *dirLab) status(rs string) director.RealServerStatus {
	for _, st := range l.d.Status() {
		for _, r := range st.RealServers {
			if r.Name == l.rs(rs) {
				return r
			}
		}
	}
	l.t.Fatalf("no status for %s", rs)
	return director.RealServerStatus{}
}

// TestDirectorDR: one L2 segment; the real servers hold the VIP on lo.
func TestDirectorDR(t *testing.T) {
	lab.RequireIPVS(t)
	testserver := lab.Bin(t, "testserver")
	lan := lab.NewNS(t, "lan")
	l := &dirLab{t: t, vip: "10.0.3.100", client: lab.NewNS(t, "client"), dir: lab.NewNS(t, "dir"),
		reals: map[string]string{"rs1": "10.0.3.11", "rs2": "10.0.3.12"}}
	hosts := map[string]*lab.NS{"client": l.client, "dir": l.dir}
	ips := map[string]string{"client": "10.0.3.2", "dir": "10.0.3.1"}
	for name, ip := range l.reals {
		hosts[name], ips[name] = lab.NewNS(t, name), ip
	}
	var ports []string
	for name, ns := range hosts {
		lan.Veth(name, ns, "eth0")
		ns.Addr("eth0", ips[name]+"/24")
		ports = append(ports, name)
	}
	lan.Bridge("br0", ports...)
	for name := range l.reals {
		rs := hosts[name]
		rs.Addr("lo", l.vip+"/32")
		for _, dev := range []string{"all", "eth0"} {
			rs.Sysctl("net.ipv4.conf."+dev+".arp_ignore", "1")
			rs.Sysctl("net.ipv4.conf."+dev+".arp_announce", "2")
		}
		rs.Start(testserver, "-name", name, "-http", ":80")
		l.dir.WaitTCP(l.reals[name]+":80", 10*time.Second)
	}
	cfg := l.webConfig(func(s *config.Service) { s.Forwarding = "dr" })
	l.start(cfg)
	l.pass()
	l.health("rs1", true)
	l.health("rs2", true)
	l.pass()
	l.expectOnly(6, "rs1", "rs2")
	l.health("rs2", false)
	l.pass()
	l.expectOnly(6, "rs1")
	l.health("rs2", true)
	l.pass()
	l.expectOnly(6, "rs1", "rs2")
	if out := l.dir.Run("ipvsadm", "-Ln"); strings.Count(out, "Route") != 2 {
		t.Errorf("want 2 DR destinations:\n%s", out)
	}
}

// TestDirectorKernelRoundTrip programs every kind of service the config
// allows and checks that the kernel's dump reads back equal, so a second
// pass makes no op (no flapping from a misread netmask, flag or family).
func TestDirectorKernelRoundTrip(t *testing.T) {
	lab.RequireIPVS(t)
	dir := lab.NewNS(t, "dir")
	dir.Link("add", "dummy0", "type", "dummy")
	dir.Run("ip", "link", "set", "dummy0", "up")
	dir.Addr("dummy0", "10.0.5.1/24")
	dir.Addr("dummy0", "fd00:5::1/64")
	yes := true
	rs := func(a string, w int, fwd string) *config.RealServer {
		ap := ca(a)
		return &config.RealServer{Address: config.Addr{IP: ap.IP}, Port: ap.Port, Weight: w, Forwarding: fwd, UpperThreshold: 100, LowerThreshold: 10}
	}
	no := new(bool)
	cfg := &config.Config{Services: []*config.Service{
		{Name: "tcp4-persist", VIP: ca("10.0.5.100"), Port: 2170, Protocol: "tcp", Scheduler: "wlc", Persistence: config.Duration{Duration: 300 * time.Second},
			PersistenceNetmask: "255.255.255.0", Alpha: no, RealServers: []*config.RealServer{rs("10.0.5.11:2170", 3, "nat"), rs("10.0.5.12:2170", 1, "nat")}},
		{Name: "udp6-onepacket", VIP: ca("fd00:5::100"), Port: 53, Protocol: "udp", Scheduler: "rr", OnePacket: true,
			Alpha: no, RealServers: []*config.RealServer{rs("[fd00:5::11]:53", 2, "nat")}},
		{Name: "tcp6-persist", VIP: ca("fd00:5::100"), Port: 443, Protocol: "tcp", Scheduler: "lc", Persistence: config.Duration{Duration: 60 * time.Second},
			PersistenceNetmask: "64", Alpha: no, RealServers: []*config.RealServer{rs("[fd00:5::11]:443", 1, "dr")}},
		{Name: "sctp4", VIP: ca("10.0.5.100"), Port: 3868, Protocol: "sctp", Scheduler: "rr", Alpha: no,
			RealServers: []*config.RealServer{rs("10.0.5.11:3868", 1, "tun")}},
		{Name: "fwmark4-sh", FWMark: 10, Scheduler: "sh", SchedFlags: []string{"sh-fallback", "sh-port"}, Alpha: no,
			RealServers: []*config.RealServer{rs("10.0.5.11:0", 1, "dr"), rs("10.0.5.12:0", 1, "dr")}},
		{Name: "fwmark6-mh", FWMark: 11, Family: "inet6", Scheduler: "mh", SchedFlags: []string{"mh-port"}, Alpha: &yes,
			RealServers: []*config.RealServer{rs("[fd00:5::12]:0", 1, "dr")}},
	}}
	k, err := director.OpenKernelAt("/run/netns/" + dir.Name)
	if err != nil {
		t.Fatal(err)
	}
	defer k.Close()
	d, err := director.New(cfg, k)
	if err != nil {
		t.Fatal(err)
	}
	d.SetHealth("fwmark6-mh", "[fd00:5::12]:0", director.Health{Known: true, Healthy: true, Weight: -1})
	res, err := d.Reconcile(context.Background())
	if err != nil {
		t.Fatalf("first pass: %v\n%s", err, dir.Run("ipvsadm", "-Ln"))
	}
	if len(res.Ops) != 14 {
		t.Errorf("first pass made %d ops, want 6 services + 8 dests", len(res.Ops))
	}
	out := dir.Run("ipvsadm", "-Ln")
	t.Log(out)
	for _, want := range []string{
		"TCP 10.0.5.100:2170 wlc persistent 300 mask 255.255.255.0",
		"UDP [fd00:5::100]:53 rr ops",
		"TCP [fd00:5::100]:443 lc persistent 60 mask 64",
		"SCTP 10.0.5.100:3868 rr",
		"FWM 10 sh (sh-fallback,sh-port)",
		"FWM 11 IPv6 mh (mh-port)",
		"-> 10.0.5.11:2170 Masq 3",
		"-> 10.0.5.11:3868 Tunnel 1",
	} {
		if !strings.Contains(strings.Join(strings.Fields(out), " "), want) {
			t.Errorf("ipvsadm -Ln lacks %q", want)
		}
	}
	for i := range 2 {
		res, err := d.Reconcile(context.Background())
		if err != nil || len(res.Ops) != 0 || res.Drift != 0 {
			t.Errorf("pass %d after programming: ops %v, drift %d, err %v", i+2, res.Ops, res.Drift, err)
		}
	}
}

// TestDirectorKernelLargeTable: a table whose dump spans many netlink
// reads reads back whole, so a one-weight reload of it is one op.
func TestDirectorKernelLargeTable(t *testing.T) {
	lab.RequireIPVS(t)
	dir := lab.NewNS(t, "dir")
	dir.Link("add", "dummy0", "type", "dummy")
	dir.Run("ip", "link", "set", "dummy0", "up")
	dir.Addr("dummy0", "10.1.0.1/16")
	build := func(changed int) *config.Config {
		cfg := &config.Config{}
		for i := range 400 {
			s := &config.Service{Name: fmt.Sprintf("s%d", i), VIP: ca(fmt.Sprintf("10.60.%d.%d", i/250, 1+i%250)), Port: 80, Protocol: "tcp", Scheduler: "wlc", Alpha: new(bool)}
			for j := range 3 {
				w := 1
				if i == changed && j == 0 {
					w = 2
				}
				s.RealServers = append(s.RealServers, &config.RealServer{Address: ca(fmt.Sprintf("10.1.1.%d", 10+j)), Port: 80, Weight: w})
			}
			cfg.Services = append(cfg.Services, s)
		}
		return cfg
	}
	k, err := director.OpenKernelAt("/run/netns/" + dir.Name)
	if err != nil {
		t.Fatal(err)
	}
	defer k.Close()
	d, err := director.New(build(-1), k)
	if err != nil {
		t.Fatal(err)
	}
	if res, err := d.Reconcile(context.Background()); err != nil || len(res.Ops) != 1600 {
		t.Fatalf("first pass: %d ops, %v", len(res.Ops), err)
	}
	tab, err := k.Dump(context.Background())
	if err != nil || len(tab) != 400 {
		t.Fatalf("dump: %d services, %v", len(tab), err)
	}
	seen := map[director.ServiceKey]bool{}
	for _, s := range tab {
		if seen[s.Key] || len(s.Dests) != 3 {
			t.Fatalf("dump garbled at %s: duplicate=%v, %d dests", s.Key, seen[s.Key], len(s.Dests))
		}
		seen[s.Key] = true
	}
	if err := d.Update(build(123)); err != nil {
		t.Fatal(err)
	}
	if res, err := d.Reconcile(context.Background()); err != nil || len(res.Ops) != 1 {
		t.Fatalf("one-weight reload of a 1600-object table: ops %v, %v", res.Ops, err)
	}
}

// TestDirectorDrainThenDelete: on_failure = drain keeps a failed server at
// weight 0 while the kernel counts connections on it, and deletes it once
// they are gone (as kube-proxy's graceful termination does). The one
// connection ends with a reset, which IPVS expires in 10 s; a normal close
// would sit in TIME_WAIT for 2 minutes.
func TestDirectorDrainThenDelete(t *testing.T) {
	l := natLab(t)
	l.start(l.webConfig(func(s *config.Service) { s.Alpha = new(bool); s.OnFailure = "drain" }))
	l.pass()
	conn := l.connTo("rs1")
	l.health("rs1", false)
	l.pass()
	if st := l.status("rs1"); !st.InKernel || st.KernelWeight != 0 || st.ActiveConns == 0 {
		t.Fatalf("failed rs1 with an open connection: %+v", st)
	}
	l.expectOnly(4, "rs2")
	tcp, ok := conn.(*net.TCPConn)
	if !ok {
		t.Fatalf("connection is a %T, not TCP", conn)
	}
	tcp.SetLinger(0)
	tcp.Close()
	start := time.Now()
	for l.status("rs1").InKernel {
		if time.Since(start) > 60*time.Second {
			t.Fatalf("rs1 still in the table 60 s after its last connection ended: %+v\n%s", l.status("rs1"), l.dir.Run("ipvsadm", "-Lnc"))
		}
		time.Sleep(time.Second)
		l.pass()
	}
	t.Logf("drained rs1 deleted %.1fs after its last connection was reset", time.Since(start).Seconds())
	if res := l.pass(); len(res.Ops) != 0 {
		t.Errorf("deleted server came back: %v", res.Ops)
	}
}
