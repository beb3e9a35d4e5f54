package e2e

// The active-active lab: a router running BIRD with ECMP, directors each
// running lvsd and BIRD, DR real servers, and a client behind the router.
//
//	client 10.41.0.2 ── rt (BIRD, ECMP, L4 hash) 10.41.0.1 / 10.40.0.1
//	                          │ br0 (switch namespace)
//	      d1..d4 10.40.0.11-14 (lvsd + BIRD)   r1..r3 10.40.0.21-23 (VIP on lo)
//
// Each director's BIRD exports the addresses of its lvsd-anycast device
// (protocol direct) to the router over eBGP, with BFD; the router merges
// the routes into one multipath route for the VIP. Replies go from the real
// servers to the router directly (DR). d4 starts unplugged: it is the
// director that joins.

import (
	"bufio"
	"context"
	"encoding/hex"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/lvsd/lvsd/director"
	"github.com/lvsd/lvsd/e2e/lab"
)

const (
	ecmpVIP  = "10.42.0.10"
	ecmpPort = 80
	// BFD: 500 ms × 6, the bound on noticing a director that is gone
	// without a word. Production configs use 100 ms × 3; under the VM's
	// emulated CPU on a loaded host, BIRD can stall for seconds, and at
	// 200 ms × 5 every session flapped at once (the VIP unrouted for 4 s).
	// The hold time is long on purpose, so a withdrawal by BFD cannot be
	// mistaken for one by the hold timer.
	ecmpBFDInterval = 500 * time.Millisecond
	ecmpBFDMult     = 6
	ecmpHoldTime    = 30 * time.Second
	// Checks: a dead real server is evicted within fall × interval + timeout.
	ecmpCheckInterval = time.Second
	ecmpCheckTimeout  = 500 * time.Millisecond
	ecmpCheckFall     = 2
)

type ecmpDirector struct {
	name, ip string
	ns       *lab.NS
	bird     *lab.Proc
	lvsd     *lab.Proc
}

type ecmpLab struct {
	t      *testing.T
	dir    string // configs and sockets, under /run (unix sockets cannot live on the VM's 9p)
	sw     *lab.NS
	rt     *lab.NS
	client *lab.NS
	dirs   []*ecmpDirector
	reals  []*lab.NS
	rsProc []*lab.Proc
	rtBird *lab.Proc
}

func ecmpBIRD(t *testing.T) string {
	t.Helper()
	for _, p := range []string{"/usr/sbin/bird", "/usr/bin/bird"} {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	t.Skip("BIRD 2 is not installed (make deps installs bird2)")
	return ""
}

func newECMPLab(t *testing.T) *ecmpLab {
	t.Helper()
	lab.RequireIPVS(t)
	ecmpBIRD(t)
	l := &ecmpLab{t: t, dir: fmt.Sprintf("/run/lvsd-e2e-ecmp-%d", os.Getpid())}
	if err := os.MkdirAll(l.dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(l.dir) })
	l.sw = lab.NewNS(t, "esw")
	l.rt = lab.NewNS(t, "ert")
	l.client = lab.NewNS(t, "ecl")
	var ports []string
	l.rt.Veth("eth0", l.sw, "rt")
	ports = append(ports, "rt")
	l.rt.Veth("eth1", l.client, "eth0")
	for i := 1; i <= 4; i++ {
		d := &ecmpDirector{name: fmt.Sprintf("d%d", i), ip: fmt.Sprintf("10.40.0.%d", 10+i), ns: lab.NewNS(t, fmt.Sprintf("ed%d", i))}
		d.ns.Veth("eth0", l.sw, d.name)
		ports = append(ports, d.name)
		d.ns.Addr("eth0", d.ip+"/24")
		d.ns.Route("default", "via", "10.40.0.1")
		// The VIP is local on the director's lvsd-anycast device: answer
		// ARP only for addresses of the asking interface.
		d.ns.Sysctl("net.ipv4.conf.all.arp_ignore", "1")
		l.dirs = append(l.dirs, d)
	}
	for i := 1; i <= 3; i++ {
		r := lab.NewNS(t, fmt.Sprintf("er%d", i))
		name := fmt.Sprintf("r%d", i)
		r.Veth("eth0", l.sw, name)
		ports = append(ports, name)
		r.Addr("eth0", fmt.Sprintf("10.40.0.%d/24", 20+i))
		r.Addr("lo", ecmpVIP+"/32")
		r.Sysctl("net.ipv4.conf.all.arp_ignore", "1")
		r.Sysctl("net.ipv4.conf.all.arp_announce", "2")
		r.Route("default", "via", "10.40.0.1")
		l.reals = append(l.reals, r)
		l.rsProc = append(l.rsProc, r.Start(lab.Bin(t, "testserver"), "-name", name, "-tcp-echo", fmt.Sprintf(":%d", ecmpPort)))
	}
	l.sw.Bridge("br0", ports...)
	l.unplug(l.dirs[3]) // d4 joins later
	l.rt.Addr("eth0", "10.40.0.1/24")
	l.rt.Addr("eth1", "10.41.0.1/24")
	l.client.Addr("eth0", "10.41.0.2/24")
	l.client.Route("default", "via", "10.41.0.1")
	l.rt.Sysctl("net.ipv4.ip_forward", "1")
	// ECMP over the directors by the 5-tuple, so the client's connections
	// spread although they all come from one address.
	l.rt.Sysctl("net.ipv4.fib_multipath_hash_policy", "1")
	l.rt.Sysctl("net.ipv4.conf.all.rp_filter", "0")
	l.rt.Sysctl("net.ipv4.conf.eth0.rp_filter", "0")
	l.rtBird = l.startBIRD(l.rt, "rt", l.routerBIRDConfig())
	return l
}

func (l *ecmpLab) path(name string) string { return filepath.Join(l.dir, name) }

func (l *ecmpLab) write(name, text string) string {
	l.t.Helper()
	p := l.path(name)
	if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
		l.t.Fatal(err)
	}
	return p
}

func (l *ecmpLab) bfdBlock() string {
	ms := ecmpBFDInterval.Milliseconds()
	return fmt.Sprintf(`protocol bfd {
  debug { states };
  interface "eth0" { min rx interval %d ms; min tx interval %d ms; multiplier %d; };
}`, ms, ms, ecmpBFDMult)
}

// routerBIRDConfig: one eBGP session per director, BFD on each, and the
// kernel protocol merging equal routes into one multipath route.
func (l *ecmpLab) routerBIRDConfig() string {
	var b strings.Builder
	fmt.Fprintf(&b, `log stderr all;
router id 10.40.0.1;
protocol device { scan time 10; }
protocol kernel { ipv4 { import none; export all; }; merge paths on; }
%s
# Passive: the directors connect, so the two sides never collide.
template bgp director {
  local 10.40.0.1 as 65000;
  passive on;
  debug { states };
  bfd on;
  hold time %d;
  connect retry time 1;
  error wait time 1, 2;
  ipv4 { import all; export none; };
}
`, l.bfdBlock(), int(ecmpHoldTime.Seconds()))
	for _, d := range l.dirs {
		fmt.Fprintf(&b, "protocol bgp %s from director { neighbor %s as 65010; }\n", d.name, d.ip)
	}
	return b.String()
}

// directorBIRDConfig exports the addresses of lvsd's device and nothing else.
func (l *ecmpLab) directorBIRDConfig(d *ecmpDirector) string {
	return fmt.Sprintf(`log stderr all;
router id %[1]s;
protocol device { scan time 10; }
protocol direct lvsd_vips { ipv4; interface "lvsd-anycast"; }
%[2]s
protocol bgp router1 {
  local %[1]s as 65010;
  neighbor 10.40.0.1 as 65000;
  debug { states };
  bfd on;
  hold time %[3]d;
  connect retry time 1;
  error wait time 1, 2;
  ipv4 { import none; export where proto = "lvsd_vips"; };
}
`, d.ip, l.bfdBlock(), int(ecmpHoldTime.Seconds()))
}

func (l *ecmpLab) lvsdConfig(d *ecmpDirector) string {
	var reals strings.Builder
	for i := range l.reals {
		fmt.Fprintf(&reals, "\n  [[service.realserver]]\n  address = \"10.40.0.%d\"\n", 21+i)
	}
	return fmt.Sprintf(`[director]
name = %[1]q
interface = "eth0"
metrics_listen = ""
control_socket = %[2]q

[announce]
bird_socket = %[3]q

[[service]]
name = "echo"
vip = %[4]q
port = %[5]d
scheduler = "mh"
sched_flags = ["mh-port", "mh-fallback"]
forwarding = "dr"
announce = true

  [[service.check]]
  type = "tcp"
  interval = %[6]q
  timeout = %[7]q
  rise = 1
  fall = %[8]d
%[9]s`, d.name, l.path(d.name+".sock"), l.path(d.name+"-bird.ctl"), ecmpVIP, ecmpPort,
		ecmpCheckInterval.String(), ecmpCheckTimeout.String(), ecmpCheckFall, reals.String())
}

func (l *ecmpLab) startBIRD(ns *lab.NS, name, config string) *lab.Proc {
	l.t.Helper()
	cfg := l.write(name+"-bird.conf", config)
	return ns.Start(ecmpBIRD(l.t), "-f", "-c", cfg, "-s", l.path(name+"-bird.ctl"))
}

// startDirector starts BIRD and lvsd on d.
func (l *ecmpLab) startDirector(d *ecmpDirector) {
	l.t.Helper()
	d.bird = l.startBIRD(d.ns, d.name, l.directorBIRDConfig(d))
	cfg := l.write(d.name+".toml", l.lvsdConfig(d))
	d.lvsd = d.ns.Start(lab.Bin(l.t, "lvsd"), "run", "-config", cfg)
}

func (l *ecmpLab) unplug(d *ecmpDirector) {
	l.t.Helper()
	link, err := l.sw.Netlink().LinkByName(d.name)
	if err == nil {
		err = l.sw.Netlink().LinkSetDown(link)
	}
	if err != nil {
		l.t.Fatalf("unplug %s: %v", d.name, err)
	}
}

func (l *ecmpLab) plug(d *ecmpDirector) {
	l.t.Helper()
	link, err := l.sw.Netlink().LinkByName(d.name)
	if err == nil {
		err = l.sw.Netlink().LinkSetUp(link)
	}
	if err != nil {
		l.t.Fatalf("plug %s: %v", d.name, err)
	}
}

// nexthops is the set of directors the router's kernel spreads the VIP over.
func (l *ecmpLab) nexthops() []string {
	_, dst, _ := net.ParseCIDR(ecmpVIP + "/32")
	routes, err := l.rt.Netlink().RouteListFiltered(netlink.FAMILY_V4, &netlink.Route{Dst: dst}, netlink.RT_FILTER_DST)
	if err != nil {
		return nil
	}
	var out []string
	for _, r := range routes {
		if r.Gw != nil {
			out = append(out, l.directorAt(r.Gw.String()))
		}
		for _, nh := range r.MultiPath {
			out = append(out, l.directorAt(nh.Gw.String()))
		}
	}
	slices.Sort(out)
	return out
}

func (l *ecmpLab) directorAt(ip string) string {
	for _, d := range l.dirs {
		if d.ip == ip {
			return d.name
		}
	}
	return ip
}

// waitNexthops waits until the router spreads the VIP over exactly want
// and returns how long that took.
func (l *ecmpLab) waitNexthops(timeout time.Duration, want ...string) time.Duration {
	l.t.Helper()
	slices.Sort(want)
	start := time.Now()
	waitFor(l.t, timeout, fmt.Sprintf("router next hops %v (have %v)", want, l.nexthops()), func() bool {
		return slices.Equal(l.nexthops(), want)
	})
	return time.Since(start)
}

// routeChange is the router's next hops for the VIP from a moment on.
type routeChange struct {
	at       time.Time
	nexthops []string
}

// watchRoute samples the router's route every 20 ms and records every
// change, so a report can tell what the client's connections went
// through. It stops when the test ends.
func (l *ecmpLab) watchRoute() func() []routeChange {
	var mu sync.Mutex
	var changes []routeChange
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		var last []string
		for first := true; ; first = false {
			now := l.nexthops()
			if first || !slices.Equal(now, last) {
				mu.Lock()
				changes = append(changes, routeChange{time.Now(), now})
				mu.Unlock()
				last = now
			}
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
		}
	}()
	l.t.Cleanup(func() { close(stop); <-done })
	return func() []routeChange {
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(changes)
	}
}

// ipvsConn is one entry of a director's IPVS connection table.
type ipvsConn struct {
	clientPort int
	realServer string
	state      string
	expires    int // seconds left; a used entry is refreshed to its state's timeout
}

// conns reads d's IPVS connection table for the VIP, by client port.
func (l *ecmpLab) conns(d *ecmpDirector) map[int]ipvsConn {
	l.t.Helper()
	var data []byte
	err := d.ns.Do(func() error {
		var err error
		data, err = os.ReadFile("/proc/thread-self/net/ip_vs_conn")
		return err
	})
	if err != nil {
		l.t.Fatalf("%s: ip_vs_conn: %v", d.name, err)
	}
	out := map[int]ipvsConn{}
	sc := bufio.NewScanner(strings.NewReader(string(data)))
	for sc.Scan() {
		// Pro FromIP FPrt ToIP TPrt DestIP DPrt State Expires ...
		f := strings.Fields(sc.Text())
		if len(f) < 9 || f[0] != "TCP" || hexIP(f[3]) != ecmpVIP {
			continue
		}
		port, _ := strconv.ParseUint(f[2], 16, 16)
		expires, _ := strconv.Atoi(f[8])
		out[int(port)] = ipvsConn{clientPort: int(port), realServer: hexIP(f[5]), state: f[7], expires: expires}
	}
	return out
}

func hexIP(h string) string {
	b, err := hex.DecodeString(h)
	if err != nil || len(b) != 4 {
		return ""
	}
	return netip.AddrFrom4([4]byte(b)).String()
}

// weights is d's kernel table for the VIP: real server -> weight.
func (l *ecmpLab) weights(d *ecmpDirector) map[string]int {
	l.t.Helper()
	k, err := director.OpenKernelAt("/run/netns/" + d.ns.Name)
	if err != nil {
		l.t.Fatalf("%s: %v", d.name, err)
	}
	defer k.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	svcs, err := k.Dump(ctx)
	if err != nil {
		l.t.Fatalf("%s: dump: %v", d.name, err)
	}
	out := map[string]int{}
	for _, s := range svcs {
		if s.Key.Addr.String() == ecmpVIP {
			for _, dst := range s.Dests {
				out[dst.Addr.Addr().String()] = dst.Weight
			}
		}
	}
	return out
}

// heldConns are the client's long-lived connections through the VIP.
type heldConns struct {
	conns []net.Conn
	alive []bool
	ports []int
}

func (l *ecmpLab) openHeld(n int) *heldConns {
	l.t.Helper()
	h := &heldConns{conns: make([]net.Conn, n), alive: make([]bool, n), ports: make([]int, n)}
	errs := make([]error, n)
	var wg sync.WaitGroup
	sem := make(chan struct{}, 20)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			c, err := l.client.Dial("tcp", fmt.Sprintf("%s:%d", ecmpVIP, ecmpPort), 10*time.Second)
			if err == nil {
				err = echoLine(c, fmt.Sprintf("hello %d", i), 10*time.Second)
			}
			if err != nil {
				errs[i] = err
				return
			}
			h.conns[i], h.alive[i], h.ports[i] = c, true, c.LocalAddr().(*net.TCPAddr).Port
		}()
	}
	wg.Wait()
	l.t.Cleanup(func() {
		for _, c := range h.conns {
			if c != nil {
				c.Close()
			}
		}
	})
	for i, err := range errs {
		if err != nil {
			l.t.Fatalf("held connection %d: %v", i, err)
		}
	}
	return h
}

// exchange has every live connection echo a line (within timeout, so a
// packet lost while the routers converge is retransmitted) and returns
// the ones that failed; they are dead from now on.
func (h *heldConns) exchange(label string, timeout time.Duration) (alive int, lost []int) {
	var mu sync.Mutex
	var wg sync.WaitGroup
	for i, c := range h.conns {
		if !h.alive[i] {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := echoLine(c, fmt.Sprintf("%s %d", label, i), timeout)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				h.alive[i] = false
				lost = append(lost, i)
				return
			}
			alive++
		}()
	}
	wg.Wait()
	slices.Sort(lost)
	return alive, lost
}

// stream opens a new connection through the VIP every interval, each in a
// goroutine of its own so a slow one never delays the next, and records
// when each started and whether it echoed.
type stream struct {
	mu       sync.Mutex
	attempts []attempt
	stop     chan struct{}
	done     sync.WaitGroup
}

type attempt struct {
	start time.Time
	port  int // the client's source port, to find the attempt in the directors' tables
	err   error
}

func (l *ecmpLab) startStream(interval time.Duration) *stream {
	s := &stream{stop: make(chan struct{})}
	s.done.Add(1)
	go func() {
		defer s.done.Done()
		t := time.NewTicker(interval)
		defer t.Stop()
		// Source ports of their own, away from the kernel's ephemeral
		// range, so a failed attempt can be found in the IPVS tables.
		for port := 20000; ; port++ {
			select {
			case <-s.stop:
				return
			case <-t.C:
			}
			s.done.Add(1)
			go func() {
				defer s.done.Done()
				a := attempt{start: time.Now(), port: port}
				var c net.Conn
				err := l.client.Do(func() error {
					var err error
					d := net.Dialer{Timeout: 3 * time.Second, LocalAddr: &net.TCPAddr{Port: port}}
					c, err = d.Dial("tcp", net.JoinHostPort(ecmpVIP, strconv.Itoa(ecmpPort)))
					return err
				})
				if err == nil {
					err = echoLine(c, "new", 3*time.Second)
					c.Close()
				}
				a.err = err
				s.mu.Lock()
				s.attempts = append(s.attempts, a)
				s.mu.Unlock()
			}()
		}
	}()
	l.t.Cleanup(s.close)
	return s
}

func (s *stream) close() {
	select {
	case <-s.stop:
	default:
		close(s.stop)
	}
	s.done.Wait()
}

// since lists the attempts started at or after from.
func (s *stream) since(from time.Time) []attempt {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []attempt
	for _, a := range s.attempts {
		if !a.start.Before(from) {
			out = append(out, a)
		}
	}
	return out
}

// failures counts the attempts started in [from, to) and lists those that
// failed.
func (s *stream) failures(from, to time.Time) (n int, failed []attempt) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, a := range s.attempts {
		if a.start.Before(from) || !a.start.Before(to) {
			continue
		}
		n++
		if a.err != nil {
			failed = append(failed, a)
		}
	}
	return n, failed
}
