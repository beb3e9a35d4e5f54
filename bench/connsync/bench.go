package main

// The orchestrator: for each trial it builds a fresh lab of network
// namespaces (two directors, a client, two real servers on one bridge),
// starts a director pair (lvsd or keepalived with lvs_sync_daemon), lets
// the client hold connections through the VIP, SIGKILLs the master and
// collects the client's report. The arms alternate so both see the same VM.

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/lvsd/lvsd/bench/internal/heldconns"
	"github.com/lvsd/lvsd/bench/internal/iplab"
	"github.com/lvsd/lvsd/bench/internal/median"
)

const (
	benchVIP  = "10.7.0.10"
	benchPort = 80
)

type benchOpts struct {
	rounds     int
	conns      int
	forwarding string // dr | nat
	advert     time.Duration
	kill       string // process | host
	lvsd       string
	keepalived string
	self       string
	workdir    string
	verbose    bool
	reals      int
	// events, when set, runs the lvsd pair through these events instead
	// of one failover (see events.go); json prints one line per event.
	events []string
	json   bool
}

type trialResult struct {
	arm      string
	report   heldconns.Report
	takeover time.Duration // SIGKILL to the VIP on the backup
	err      error
}

func runBench(args []string) error {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	var o benchOpts
	fs.IntVar(&o.rounds, "rounds", 4, "trials per arm (arms alternate)")
	fs.IntVar(&o.conns, "conns", 50, "long-lived connections held through the VIP")
	fs.StringVar(&o.forwarding, "forwarding", "dr", "dr or nat")
	// 100 ms as in the field measurement: keepalived loses connections when
	// its takeover (about 3.5 adverts) beats the dead master's 2-3 s sync
	// flush; with 1 s adverts it does not. Under the VM's emulated CPU a
	// backup can also take over early during the burst; such a trial is
	// reported as an error (the client cannot open its connections).
	fs.DurationVar(&o.advert, "advert", 100*time.Millisecond, "VRRP advert interval of both pairs")
	fs.StringVar(&o.kill, "kill", "process", `"process": SIGKILL the master daemon only (its kernel keeps forwarding and flushing sync); "host": also cut it off the segment at once, like a power loss`)
	fs.StringVar(&o.lvsd, "lvsd", "bin/lvsd", "lvsd binary")
	fs.StringVar(&o.keepalived, "keepalived", "/usr/sbin/keepalived", "keepalived binary")
	fs.BoolVar(&o.verbose, "v", false, "print each trial's director logs")
	fs.IntVar(&o.reals, "reals", 2, "real servers")
	events := fs.String("events", "", "comma-separated events for the lvsd pair only, one client report each: rs (a real server dies), kill (the master dies, cut off), join (it comes back fresh and preempts), quorum (the master's probes are dropped: track_services); see events.go")
	fs.BoolVar(&o.json, "json", false, "with -events: print each event's row as one JSON line")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *events != "" {
		o.events = strings.Split(*events, ",")
	}
	if os.Geteuid() != 0 {
		return fmt.Errorf("needs root: run it through make bench-connsync (inside the IPVS VM)")
	}
	if _, err := os.Stat("/proc/net/ip_vs"); err != nil {
		return fmt.Errorf("this kernel has no IPVS: run it through make bench-connsync (inside the IPVS VM)")
	}
	var err error
	if o.self, err = os.Executable(); err != nil {
		return err
	}
	if o.lvsd, err = filepath.Abs(o.lvsd); err != nil {
		return err
	}
	if o.workdir, err = os.MkdirTemp("", "connsync"); err != nil {
		return err
	}
	defer os.RemoveAll(o.workdir)
	if len(o.events) > 0 {
		return runEvents(o)
	}

	fmt.Printf("connsync: %d connections, %s, advert %v, kill=%s, %d rounds\n", o.conns, o.forwarding, o.advert, o.kill, o.rounds)
	results := map[string][]trialResult{}
	n := 0
	for round := 0; round < o.rounds; round++ {
		arms := []string{"lvsd", "keepalived"}
		if round%2 == 1 {
			slices.Reverse(arms)
		}
		for _, arm := range arms {
			n++
			r := runTrial(o, arm, n)
			results[arm] = append(results[arm], r)
			if r.err != nil {
				fmt.Printf("  trial %d %-10s error: %v\n", n, arm, r.err)
				continue
			}
			fmt.Printf("  trial %d %-10s survivors %2d/%d  takeover %6.0f ms  stream gap %6.0f ms  stream reconnects %d  lost %v\n",
				n, arm, r.report.Survivors, r.report.Total, ms(r.takeover), r.report.GapMS, r.report.Reconnect, r.report.Lost)
		}
	}
	return summarize(results)
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func summarize(results map[string][]trialResult) error {
	type agg struct{ surv, total, gap, takeover []float64 }
	a := map[string]*agg{}
	for arm, rs := range results {
		g := &agg{}
		for _, r := range rs {
			if r.err != nil {
				continue
			}
			g.surv = append(g.surv, float64(r.report.Survivors))
			g.total = append(g.total, float64(r.report.Total))
			g.gap = append(g.gap, r.report.GapMS)
			g.takeover = append(g.takeover, ms(r.takeover))
		}
		a[arm] = g
	}
	fmt.Println("summary (medians over successful trials):")
	for _, arm := range []string{"lvsd", "keepalived"} {
		g := a[arm]
		if g == nil || len(g.surv) == 0 {
			fmt.Printf("  %-10s no successful trial\n", arm)
			continue
		}
		fmt.Printf("  %-10s survivors %4.1f/%.0f (min %.0f)  takeover %6.0f ms  stream gap %6.0f ms\n",
			arm, median.Of(g.surv), median.Of(g.total), slices.Min(g.surv), median.Of(g.takeover), median.Of(g.gap))
	}
	l, k := a["lvsd"], a["keepalived"]
	if l == nil || k == nil || len(l.surv) == 0 || len(k.surv) == 0 {
		return fmt.Errorf("an arm has no successful trial")
	}
	if median.Of(k.surv) > 0 {
		fmt.Printf("  ratio lvsd/keepalived: survivors %.2f  stream gap %.2f\n", median.Of(l.surv)/median.Of(k.surv), median.Of(l.gap)/median.Of(k.gap))
	}
	return nil
}

// lab is one trial's namespaces and processes.
type lab struct {
	iplab.Lab
	o      benchOpts
	id     int
	d1, d2 string
	client string
	rs     []string
	echo   []*exec.Cmd // the real servers' echo servers
}

func (l *lab) name(role string) string { return fmt.Sprintf("cs%d-%s", l.id, role) }

func (l *lab) build() error {
	sw := l.name("sw")
	l.d1, l.d2, l.client = l.name("d1"), l.name("d2"), l.name("c")
	for i := range max(l.o.reals, 1) {
		l.rs = append(l.rs, l.name(fmt.Sprintf("r%d", i+1)))
	}
	all := append([]string{sw, l.d1, l.d2, l.client}, l.rs...)
	for _, ns := range all {
		if err := l.AddNS(ns); err != nil {
			return err
		}
		if err := iplab.IP("-n", ns, "link", "set", "lo", "up"); err != nil {
			return err
		}
	}
	steps := [][]string{
		{"-n", sw, "link", "add", "br0", "type", "bridge", "mcast_snooping", "0"},
		{"-n", sw, "link", "set", "br0", "up"},
	}
	addrs := map[string][]string{
		l.d1: {"10.7.0.1/24"}, l.d2: {"10.7.0.2/24"}, l.client: {"10.7.0.100/24"},
	}
	for i, r := range l.rs {
		if l.o.forwarding == "dr" {
			addrs[r] = []string{fmt.Sprintf("10.7.0.%d/24", 11+i)}
		} else {
			addrs[r] = []string{fmt.Sprintf("10.7.1.%d/24", 11+i)}
		}
	}
	if l.o.forwarding == "nat" {
		addrs[l.d1] = append(addrs[l.d1], "10.7.1.1/24")
		addrs[l.d2] = append(addrs[l.d2], "10.7.1.2/24")
	}
	for i, ns := range all[1:] {
		port := fmt.Sprintf("p%d", i)
		steps = append(steps,
			[]string{"-n", sw, "link", "add", port, "type", "veth", "peer", "name", "eth0", "netns", ns},
			[]string{"-n", sw, "link", "set", port, "master", "br0", "up"},
			[]string{"-n", ns, "link", "set", "eth0", "up"})
		for _, a := range addrs[ns] {
			steps = append(steps, []string{"-n", ns, "addr", "add", a, "dev", "eth0"})
		}
	}
	for _, r := range l.rs {
		if l.o.forwarding == "dr" {
			steps = append(steps, []string{"-n", r, "addr", "add", benchVIP + "/32", "dev", "lo"})
		} else {
			steps = append(steps, []string{"-n", r, "route", "add", "default", "via", "10.7.1.254"})
		}
	}
	for _, s := range steps {
		if err := iplab.IP(s...); err != nil {
			return err
		}
	}
	sysctls := map[string][]string{}
	for _, r := range l.rs {
		if l.o.forwarding == "dr" {
			sysctls[r] = []string{"net.ipv4.conf.all.arp_ignore=1", "net.ipv4.conf.all.arp_announce=2"}
		}
	}
	for _, d := range []string{l.d1, l.d2} {
		// keepalived does not turn on forwarding for NAT; lvsd does.
		sysctls[d] = []string{"net.ipv4.ip_forward=1", "net.ipv4.conf.all.send_redirects=0", "net.ipv4.conf.eth0.send_redirects=0"}
	}
	for ns, kv := range sysctls {
		if _, err := iplab.In(ns, append([]string{"sysctl", "-qw"}, kv...)...); err != nil {
			return err
		}
	}
	for i, r := range l.rs {
		cmd, err := l.Start(r, fmt.Sprintf("echo%d.log", i), l.o.self, "echo", "-listen", fmt.Sprintf(":%d", benchPort))
		if err != nil {
			return err
		}
		l.echo = append(l.echo, cmd)
	}
	return nil
}

func (l *lab) realAddrs() []string {
	var out []string
	for i := range l.rs {
		if l.o.forwarding == "dr" {
			out = append(out, fmt.Sprintf("10.7.0.%d", 11+i))
		} else {
			out = append(out, fmt.Sprintf("10.7.1.%d", 11+i))
		}
	}
	return out
}

func (l *lab) vips() []string {
	v := []string{benchVIP + "/32"}
	if l.o.forwarding == "nat" {
		v = append(v, "10.7.1.254/24")
	}
	return v
}

func (l *lab) lvsdConfig(name string, priority int) string {
	var b strings.Builder
	fmt.Fprintf(&b, "[director]\nname = %q\ninterface = \"eth0\"\ncontrol_socket = %q\n\n", name, filepath.Join(l.Dir, name+".sock"))
	fmt.Fprintf(&b, "[[vrrp]]\nname = \"front\"\nvrid = 71\npriority = %d\nadvert_interval = %q\n", priority, l.o.advert.String())
	if len(l.o.events) > 0 {
		// The quorum event: a master whose checks fail gives the VIPs up.
		b.WriteString("track_services = [\"echo\"]\n")
	}
	b.WriteString("vips = [")
	for i, v := range l.vips() {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%q", v)
	}
	b.WriteString("]\n  [vrrp.sync]\n\n")
	fmt.Fprintf(&b, "[[service]]\nname = \"echo\"\nvip = %q\nport = %d\nscheduler = \"rr\"\nforwarding = %q\nalpha = false\n", benchVIP, benchPort, l.o.forwarding)
	b.WriteString("  [[service.check]]\n  type = \"tcp\"\n  interval = \"1s\"\n")
	if len(l.o.events) > 0 {
		// As bench/ecmp's directors: evicted within fall × interval + timeout = 2.5 s.
		b.WriteString("  timeout = \"500ms\"\n  rise = 1\n  fall = 2\n")
	}
	for _, a := range l.realAddrs() {
		fmt.Fprintf(&b, "  [[service.realserver]]\n  address = %q\n", a)
	}
	return b.String()
}

// keepalivedConfig is the same pair for keepalived 2.2: VRRPv3, the same
// VRID and interval, lvs_sync_daemon following the instance.
func (l *lab) keepalivedConfig(name string, priority int) string {
	var b strings.Builder
	fmt.Fprintf(&b, "global_defs {\n  router_id %s\n  vrrp_version 3\n  lvs_sync_daemon eth0 front\n}\n", name)
	fmt.Fprintf(&b, "vrrp_instance front {\n  state BACKUP\n  interface eth0\n  virtual_router_id 71\n  priority %d\n  advert_int %g\n  virtual_ipaddress {\n", priority, l.o.advert.Seconds())
	for _, v := range l.vips() {
		fmt.Fprintf(&b, "    %s dev eth0\n", v)
	}
	b.WriteString("  }\n}\n")
	fmt.Fprintf(&b, "virtual_server %s %d {\n  lb_algo rr\n  lb_kind %s\n  protocol TCP\n", benchVIP, benchPort, strings.ToUpper(l.o.forwarding))
	for _, a := range l.realAddrs() {
		fmt.Fprintf(&b, "  real_server %s %d {\n    weight 1\n    TCP_CHECK {\n      connect_timeout 1\n      delay_loop 1\n    }\n  }\n", a, benchPort)
	}
	b.WriteString("}\n")
	return b.String()
}

func (l *lab) startDirector(arm, ns, name string, priority int) (*exec.Cmd, error) {
	if arm == "lvsd" {
		path := filepath.Join(l.Dir, name+".toml")
		if err := os.WriteFile(path, []byte(l.lvsdConfig(name, priority)), 0o644); err != nil {
			return nil, err
		}
		return l.Start(ns, name+".log", l.o.lvsd, "run", "-config", path)
	}
	path := filepath.Join(l.Dir, name+".conf")
	if err := os.WriteFile(path, []byte(l.keepalivedConfig(name, priority)), 0o644); err != nil {
		return nil, err
	}
	pid := func(s string) string { return filepath.Join(l.Dir, name+s+".pid") }
	return l.Start(ns, name+".log", l.o.keepalived, "-n", "-D", "-f", path,
		"-p", pid(""), "-r", pid("-vrrp"), "-c", pid("-chk"))
}

// holds reads ns's addresses over netlink: an exec of ip(8) costs most of
// a second under the VM's emulated CPU, which would blur the takeover time.
func holds(ns string) bool {
	fd, err := netns.GetFromName(ns)
	if err != nil {
		return false
	}
	defer fd.Close()
	h, err := netlink.NewHandleAt(fd, unix.NETLINK_ROUTE)
	if err != nil {
		return false
	}
	defer h.Close()
	link, err := h.LinkByName("eth0")
	if err != nil {
		return false
	}
	addrs, err := h.AddrList(link, netlink.FAMILY_V4)
	if err != nil {
		return false
	}
	for _, a := range addrs {
		if a.IP.String() == benchVIP {
			return true
		}
	}
	return false
}

func runTrial(o benchOpts, arm string, id int) (res trialResult) {
	res.arm = arm
	l := &lab{o: o, id: id, Lab: iplab.Lab{Dir: filepath.Join(o.workdir, fmt.Sprintf("trial%d", id))}}
	defer l.Close()
	defer func() {
		if o.verbose || res.err != nil {
			for _, f := range []string{"d1.log", "d2.log"} {
				b, _ := os.ReadFile(filepath.Join(l.Dir, f))
				fmt.Printf("--- trial %d %s %s\n%s", id, arm, f, b)
			}
		}
	}()
	if err := os.MkdirAll(l.Dir, 0o755); err != nil {
		res.err = err
		return
	}
	if err := l.build(); err != nil {
		res.err = err
		return
	}
	d1, err := l.startDirector(arm, l.d1, "d1", 150)
	if err != nil {
		res.err = err
		return
	}
	if res.err = iplab.WaitUntil(30*time.Second, "d1 to hold the VIP", func() bool { return holds(l.d1) }); res.err != nil {
		return
	}
	if _, res.err = l.startDirector(arm, l.d2, "d2", 100); res.err != nil {
		return
	}
	res.err = iplab.WaitUntil(30*time.Second, "a backup sync daemon and the service on d2", func() bool {
		d, _ := iplab.In(l.d2, "ipvsadm", "-L", "-n", "--daemon")
		t, _ := iplab.In(l.d2, "ipvsadm", "-L", "-n")
		return strings.Contains(d, "backup sync daemon") && strings.Count(t, "-> 10.7.") == len(l.rs)
	})
	if res.err != nil {
		return
	}
	if res.err = iplab.WaitUntil(30*time.Second, "d1 to still hold the VIP", func() bool { return holds(l.d1) && !holds(l.d2) }); res.err != nil {
		return
	}

	cmd := exec.Command("ip", "netns", "exec", l.client, o.self, "client",
		"-target", fmt.Sprintf("%s:%d", benchVIP, benchPort), "-n", fmt.Sprint(o.conns), "-probe", "0", "-stream", "10ms", "-settle", "4s")
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		res.err = err
		return
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if res.err = cmd.Start(); res.err != nil {
		return
	}
	defer func() {
		cmd.Process.Kill()
		if res.err != nil && stderr.Len() > 0 {
			res.err = fmt.Errorf("%w; client: %s", res.err, strings.TrimSpace(stderr.String()))
		}
	}()
	lines := bufio.NewScanner(stdout)
	if !lines.Scan() || lines.Text() != "READY" {
		cmd.Wait()
		res.err = fmt.Errorf("client could not open its connections before any failover (did the backup take over early? see d2.log): %q", lines.Text())
		return
	}

	// The master dies right after the burst, with its last sync records
	// still queued: the moment keepalived loses connections.
	killed := time.Now()
	iplab.KillGroup(d1)
	if o.kill == "host" {
		if err := iplab.IP("-n", l.name("sw"), "link", "set", "p0", "down"); err != nil {
			res.err = err
			return
		}
	}
	if res.err = iplab.WaitUntil(30*time.Second, "d2 to take the VIP", func() bool { return holds(l.d2) }); res.err != nil {
		return
	}
	res.takeover = time.Since(killed)
	// Held connections stay idle until the dead master's kernel has had
	// its flush time (2 s + 1 s check period) and then some.
	time.Sleep(5 * time.Second)
	cmd.Process.Signal(syscall.SIGUSR1)
	if !lines.Scan() {
		cmd.Wait()
		res.err = fmt.Errorf("client gave no report")
		return
	}
	if res.err = json.Unmarshal(lines.Bytes(), &res.report); res.err != nil {
		return
	}
	cmd.Wait()
	return
}
