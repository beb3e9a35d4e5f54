// Command bench-stress runs an lvsd VRRP pair and a keepalived pair with
// the same timers side by side, in network namespaces on this host (VRRP
// needs no IPVS), under load, and counts what the load did to each:
//
//   - false failovers: runs of adverts the backup sent as master while the
//     master was alive, seen on the backup's own link;
//   - advert lateness: the gaps between the master's adverts as the
//     backup's link received them (kernel timestamps on an AF_PACKET
//     socket), minus the advert interval: p50, p99 and max;
//   - false evictions: lvsd health transitions to down (its metric
//     lvsd_check_transitions_total{to="down"}) while every listener it
//     checks stays up;
//   - SIGKILL takeover: from the SIGKILL of the master's process group to
//     the backup's first gratuitous ARP for the VIP, as bench/failover
//     times it, for several rounds after the window, load still on.
//
// The load, for a window of -duration at each advert interval (100 ms,
// 30 ms, 10 ms by default): stress-ng on the host with CPU and
// memory-allocation stressors on every core (-stress); each lvsd node
// running -checks connect-only TCP checks against loopback listeners in
// its namespace (the config lists them as services on the VIP; the IPVS
// table is the in-memory one, LVSD_IPVS_BACKEND=memory, as this host's
// kernel has no IPVS) and reloading its config every -reload; optionally
// the e2e qemu TCG VM running beside (-vm). keepalived runs VRRP only.
//
// -lvsd-director, -lvsd-vrrp and -lvsd-env pass extra lvsd config lines
// and environment (a real-time priority, GOGC, ...), -keepalived-global
// extra keepalived global_defs lines, so each option can be measured on
// and off. No figure decides a pass or a failure: the bench prints a
// table and says which of issue 11's goals the run met.
//
// Needs root, keepalived and stress-ng (`make deps`); `make bench-stress`.
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// listFlag is a repeatable string flag.
type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, "; ") }
func (l *listFlag) Set(v string) error { *l = append(*l, v); return nil }

type options struct {
	lvsd, keepalived string
	intervals        []time.Duration
	duration         time.Duration
	settle           time.Duration
	killRounds       int
	checks           checkLoad
	checksOn         string
	reload           time.Duration
	stress           string
	vm               string
	lvsdDirector     listFlag
	lvsdVRRP         listFlag
	lvsdEnv          listFlag
	lvsdNice         int
	keepalivedGlobal listFlag
	keepalivedDetail bool
	logs             string
	verbose          bool
}

func main() {
	var o options
	var intervals string
	role := flag.String("role", "", "internal: listen (the loopback listeners of one lvsd node)")
	flag.StringVar(&o.lvsd, "lvsd", "bin/lvsd", "lvsd binary")
	flag.StringVar(&o.keepalived, "keepalived", "/usr/sbin/keepalived", "keepalived binary")
	flag.StringVar(&intervals, "intervals", "100ms,30ms,10ms", "advert intervals, one window each")
	flag.DurationVar(&o.duration, "duration", time.Minute, "window per advert interval (issue 11's full run: 10m)")
	flag.DurationVar(&o.settle, "settle", 5*time.Second, "time under load before each window starts")
	flag.IntVar(&o.killRounds, "kill-rounds", 5, "SIGKILL takeovers per implementation after each window, load still on")
	flag.IntVar(&o.checks.n, "checks", 10000, "connect-only TCP checks per lvsd node (0: VRRP only)")
	flag.StringVar(&o.checksOn, "checks-on", "both", "lvsd nodes that run the checks: both, master or backup")
	flag.DurationVar(&o.checks.interval, "check-interval", time.Second, "check interval")
	flag.DurationVar(&o.checks.timeout, "check-timeout", 900*time.Millisecond, "check timeout")
	flag.IntVar(&o.checks.fall, "check-fall", 1, "failed probes that take a real server down")
	flag.IntVar(&o.checks.rise, "check-rise", 1, "passed probes that bring it back")
	flag.IntVar(&o.checks.basePort, "base-port", 21000, "first port of the listeners")
	flag.DurationVar(&o.reload, "reload", 10*time.Second, "SIGHUP each lvsd node this often, a weight changed each time (0: never)")
	flag.StringVar(&o.stress, "stress", "--cpu 0 --vm 0 --vm-bytes 512M --malloc 0", "stress-ng arguments (0 = a worker per core); \"\" runs no stress-ng")
	flag.StringVar(&o.vm, "vm", "none", "run the e2e qemu TCG VM beside, its guest doing: none, idle, cpu (stress-ng in the guest) or exec (programs and namespaces, as the e2e tests)")
	flag.Var(&o.lvsdDirector, "lvsd-director", "extra line for lvsd's [director] table, e.g. 'vrrp_rt_priority = 50' (repeatable)")
	flag.Var(&o.lvsdVRRP, "lvsd-vrrp", "extra line for lvsd's [[vrrp]] table (repeatable)")
	flag.Var(&o.lvsdEnv, "lvsd-env", "extra environment for lvsd, e.g. GOGC=400 (repeatable)")
	flag.IntVar(&o.lvsdNice, "lvsd-nice", 0, "run lvsd, and the listeners its checks probe, at this nice value (-20..19), as lvsd's systemd unit's Nice= would")
	flag.Var(&o.keepalivedGlobal, "keepalived-global", "extra line for keepalived's global_defs, e.g. 'vrrp_rt_priority 50' (repeatable)")
	flag.BoolVar(&o.keepalivedDetail, "keepalived-detail", false, "run keepalived with -D (it then logs every gratuitous ARP, which costs it CPU under load; its packaged service runs without)")
	flag.StringVar(&o.logs, "logs", "", "keep configs and logs in this directory (default: a temporary one, removed)")
	flag.BoolVar(&o.verbose, "v", false, "print each window's details as it ends")
	flag.Parse()

	if *role == "listen" {
		if err := serveListeners(&o.checks, os.Stdout); err != nil {
			fmt.Fprintln(os.Stderr, "bench-stress listen:", err)
			os.Exit(1)
		}
		return
	}
	var err error
	if o.intervals, err = parseIntervals(intervals); err == nil {
		err = o.check()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench-stress:", err)
		os.Exit(2)
	}
	if err := run(&o); err != nil {
		fmt.Fprintln(os.Stderr, "bench-stress:", err)
		os.Exit(1)
	}
}

func parseIntervals(s string) ([]time.Duration, error) {
	var out []time.Duration
	for _, f := range strings.Split(s, ",") {
		d, err := time.ParseDuration(strings.TrimSpace(f))
		if err != nil {
			return nil, fmt.Errorf("-intervals: %w", err)
		}
		if d < 10*time.Millisecond || d%(10*time.Millisecond) != 0 {
			return nil, fmt.Errorf("-intervals: %v: VRRPv3 adverts are whole centiseconds, 10ms or more", d)
		}
		out = append(out, d)
	}
	return out, nil
}

func (o *options) check() error {
	switch {
	case o.lvsdNice < -20 || o.lvsdNice > 19:
		return fmt.Errorf("-lvsd-nice is -20..19, not %d", o.lvsdNice)
	case o.checksOn != "both" && o.checksOn != "master" && o.checksOn != "backup":
		return fmt.Errorf("-checks-on is both, master or backup, not %q", o.checksOn)
	case vmScripts[o.vm] == "" && o.vm != "none":
		return fmt.Errorf("-vm is none, idle, cpu or exec, not %q", o.vm)
	case o.checks.n < 0 || o.checks.n > 25000:
		return fmt.Errorf("-checks: 0..25000")
	case o.duration < 10*time.Second:
		return fmt.Errorf("-duration: at least 10s")
	}
	return nil
}

func run(o *options) error {
	if os.Geteuid() != 0 {
		return fmt.Errorf("needs root (network namespaces)")
	}
	o.checks.nice = o.lvsdNice
	for _, p := range []*string{&o.lvsd} {
		abs, err := filepath.Abs(*p)
		if err != nil {
			return err
		}
		*p = abs
	}
	dir := o.logs
	if dir == "" {
		var err error
		if dir, err = os.MkdirTemp("", "bench-stress"); err != nil {
			return err
		}
		defer os.RemoveAll(dir)
	}
	printSetup(o)
	var rows []*row
	for _, iv := range o.intervals {
		r, err := measure(o, iv, filepath.Join(dir, iv.String()))
		if err != nil {
			return fmt.Errorf("%v adverts: %w", iv, err)
		}
		rows = append(rows, r)
		if o.verbose {
			printDetails(os.Stdout, r)
		}
	}
	fmt.Println()
	printTable(os.Stdout, rows)
	fmt.Println()
	for _, r := range rows {
		printDetails(os.Stdout, r)
	}
	fmt.Println()
	printGoals(os.Stdout, rows)
	return nil
}

func printSetup(o *options) {
	fmt.Printf("bench-stress: an lvsd pair and a keepalived pair (priorities 200/100, VRRPv3), side by side in netns\n")
	stress := "none"
	if strings.TrimSpace(o.stress) != "" {
		stress = "stress-ng " + o.stress
	}
	fmt.Printf("  load: %s; VM beside: %s\n", stress, o.vm)
	if o.checks.n > 0 {
		fmt.Printf("  lvsd: %d connect checks on the %s node(s) (interval %v, timeout %v, fall %d, rise %d), in-memory IPVS table",
			o.checks.n, o.checksOn, o.checks.interval, o.checks.timeout, o.checks.fall, o.checks.rise)
	} else {
		fmt.Printf("  lvsd: VRRP only")
	}
	if o.reload > 0 {
		fmt.Printf("; a reload every %v", o.reload)
	}
	fmt.Println()
	for _, l := range o.lvsdDirector {
		fmt.Printf("  lvsd [director] %s\n", l)
	}
	for _, l := range o.lvsdVRRP {
		fmt.Printf("  lvsd [[vrrp]] %s\n", l)
	}
	for _, l := range o.lvsdEnv {
		fmt.Printf("  lvsd env %s\n", l)
	}
	if o.lvsdNice != 0 {
		fmt.Printf("  lvsd nice %d\n", o.lvsdNice)
	}
	for _, l := range o.keepalivedGlobal {
		fmt.Printf("  keepalived global_defs %s\n", l)
	}
	fmt.Printf("  window %v per advert interval (%v of load first); then %d SIGKILL takeovers each, load still on\n",
		o.duration, o.settle, o.killRounds)
}
