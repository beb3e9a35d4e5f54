// Command bench-eviction measures how long a director takes to take a dead
// real server out of the kernel's IPVS table: lvsd with a tcp check and
// keepalived 2.2's TCP_CHECK, set to the same semantics, in the same run.
//
// Each implementation gets a director namespace of its own (IPVS tables are
// per namespace, so both run side by side and share the CPU alike) and a
// namespace per real server (a testserver each). A round SIGKILLs one
// testserver (-fail kill: probes are refused) or makes its namespace drop
// all it sends (-fail drop, netem loss 100%: probes time out) at a random
// phase of the check interval, polls the director's table over netlink
// every few milliseconds until the server is gone, then restores it and
// waits for it to come back. Rounds alternate between the
// two implementations; the summary gives p50/p99 of each, their ratio, and
// the bound the project promises: fall × interval + timeout. Before each
// kill the table is watched for a live server leaving it (a false eviction:
// probes timing out against a server that answers), and lvsd's own probe
// duration and start-lag histograms say how close its probes came to the
// timeout.
//
// keepalived has no fall: after a failed probe it retries `retry` times,
// each `delay_before_retry` later, and removes the server when the last
// fails. retry = fall-1 with delay_before_retry = delay_loop = interval is
// lvsd's fall at the same spacing; connect_timeout is the timeout.
//
// Needs root, a kernel with IPVS, ip(8), tc(8) for -fail drop, curl and keepalived; `make bench-eviction`
// runs it inside the e2e VM when this kernel has no IPVS.
package main

import (
	"context"
	"flag"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/lvsd/lvsd/director"
	ilab "github.com/lvsd/lvsd/internal/lab"
)

var (
	verbose  bool
	failMode string
)

type settings struct {
	interval, timeout time.Duration
	fall, rise        int
}

// bound is the eviction time the project promises: the probe that first
// fails may start up to one interval after the death, fall-1 more follow
// one interval apart, and the last may take a whole timeout.
func (s settings) bound() time.Duration {
	return time.Duration(s.fall)*s.interval + s.timeout
}

func main() {
	rounds := flag.Int("rounds", 10, "kills per implementation")
	lvsd := flag.String("lvsd", "bin/lvsd", "lvsd binary")
	keepalived := flag.String("keepalived", "/usr/sbin/keepalived", "keepalived binary")
	testserver := flag.String("testserver", "bin/testserver", "real server binary (e2e/testserver)")
	var s settings
	flag.DurationVar(&s.interval, "interval", time.Second, "check interval (keepalived: delay_loop and delay_before_retry)")
	flag.DurationVar(&s.timeout, "timeout", 500*time.Millisecond, "probe timeout (keepalived: connect_timeout)")
	flag.IntVar(&s.fall, "fall", 2, "consecutive failures that evict (keepalived: retry = fall-1)")
	flag.IntVar(&s.rise, "rise", 2, "consecutive passes that restore (lvsd only: keepalived restores on the first)")
	flag.StringVar(&failMode, "fail", "kill", "how the real server fails: kill (SIGKILL: probes are refused) or drop (it stops sending: probes time out)")
	flag.BoolVar(&verbose, "v", false, "print each round's kill/evict/restart/restore times and, at the end, each daemon's log")
	flag.Parse()
	if failMode != "kill" && failMode != "drop" {
		fmt.Fprintln(os.Stderr, "bench-eviction: -fail is kill or drop")
		os.Exit(2)
	}
	if err := run(*rounds, *lvsd, *keepalived, *testserver, s); err != nil {
		fmt.Fprintln(os.Stderr, "bench-eviction:", err)
		os.Exit(1)
	}
}

func run(rounds int, lvsd, keepalived, testserver string, s settings) error {
	if os.Geteuid() != 0 {
		return fmt.Errorf("needs root (network namespaces)")
	}
	if _, err := os.Stat("/proc/net/ip_vs"); err != nil {
		return fmt.Errorf("kernel has no IPVS: run it with `make bench-eviction` (inside the VM)")
	}
	for _, p := range []*string{&lvsd, &testserver} {
		abs, err := filepath.Abs(*p)
		if err != nil {
			return err
		}
		*p = abs
	}
	dir, err := os.MkdirTemp("", "bench-eviction")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	// Run the binaries from local storage: in the VM the repository is a 9p
	// mount, and re-reading a static binary over it on every restart would
	// add its cost to the wrong side.
	for _, p := range []*string{&lvsd, &testserver} {
		local := filepath.Join(dir, filepath.Base(*p))
		if err := copyFile(*p, local); err != nil {
			return err
		}
		*p = local
	}

	fmt.Printf("settings: interval %v, timeout %v, fall %d, rise %d; bound fall×interval+timeout = %v\n",
		s.interval, s.timeout, s.fall, s.rise, s.bound())
	fmt.Printf("  lvsd:       [[service.check]] type=\"tcp\" interval=%q timeout=%q fall=%d rise=%d\n", s.interval, s.timeout, s.fall, s.rise)
	fmt.Printf("  keepalived: TCP_CHECK delay_loop %s, connect_timeout %s, retry %d, delay_before_retry %s\n",
		secs(s.interval), secs(s.timeout), s.fall-1, secs(s.interval))
	fmt.Printf("    (retry N = N more probes after a failure before DOWN, each delay_before_retry later: fall = retry+1 at the same spacing)\n")

	impls := []*impl{
		{name: "lvsd", subnet: 77, start: func(i *impl) (*proc, error) { return startLvsd(i, lvsd, dir, s) }},
		{name: "keepalived", subnet: 78, start: func(i *impl) (*proc, error) { return startKeepalived(i, keepalived, dir, s) }},
	}
	machines := &ilab.Lab{}
	defer machines.Close()
	for _, i := range impls {
		if err := i.setup(machines, testserver); err != nil {
			return fmt.Errorf("%s lab: %w", i.name, err)
		}
	}
	for _, i := range impls {
		p, err := i.start(i)
		if err != nil {
			return fmt.Errorf("start %s: %w", i.name, err)
		}
		i.daemon = p
		defer p.stop()
	}
	for _, i := range impls {
		for _, a := range i.reals() {
			if err := i.waitIn(a, true, 60*time.Second); err != nil {
				return fmt.Errorf("%s: a real server never entered the table: %w\n%s", i.name, err, i.daemon.tail())
			}
		}
	}

	limit := 10 * s.bound()
	for r := range rounds {
		order := impls
		if r%2 == 1 {
			order = []*impl{impls[1], impls[0]}
		}
		for _, i := range order {
			// Watch the table for a while first: a server that leaves it
			// while alive is a false eviction. The random part sets a
			// random phase against the check timer for the kill.
			if err := i.watch(s.interval+rand.N(s.interval), limit); err != nil {
				return fmt.Errorf("%s round %d: %w\n%s", i.name, r+1, err, i.daemon.tail())
			}
			evict, restore, err := i.round(limit)
			if err != nil {
				return fmt.Errorf("%s round %d: %w\n%s", i.name, r+1, err, i.daemon.tail())
			}
			i.evictions = append(i.evictions, evict)
			i.restores = append(i.restores, restore)
			fmt.Printf("round %2d %-10s  evicted %6.0f ms (%.2f of the bound)  restored %6.0f ms after restart\n",
				r+1, i.name, ms(evict), evict.Seconds()/s.bound().Seconds(), ms(restore))
		}
	}

	if verbose {
		for _, i := range impls {
			fmt.Printf("\n%s log:\n%s\n", i.name, i.daemon.Output())
		}
	}
	what := "SIGKILL of the real server (probes refused)"
	if failMode == "drop" {
		what = "the real server drops all it sends (probes time out)"
	}
	fmt.Printf("\neviction, %s -> gone from the IPVS table, %d rounds each (bound %v):\n", what, rounds, s.bound())
	for _, i := range impls {
		fmt.Printf("  %-10s  p50 %6.0f ms  p99 %6.0f ms  max %6.0f ms   p99/bound %.2f\n", i.name,
			ms(pct(i.evictions, 50)), ms(pct(i.evictions, 99)), ms(pct(i.evictions, 100)), pct(i.evictions, 99).Seconds()/s.bound().Seconds())
	}
	l, k := impls[0], impls[1]
	fmt.Printf("  lvsd/keepalived: p50 %.2f, p99 %.2f\n",
		pct(l.evictions, 50).Seconds()/pct(k.evictions, 50).Seconds(), pct(l.evictions, 99).Seconds()/pct(k.evictions, 99).Seconds())
	fmt.Printf("false evictions (a live server left the table; watched %v+ before each kill):", s.interval)
	for _, i := range impls {
		fmt.Printf("  %s %d", i.name, i.falseEvictions)
	}
	fmt.Println()
	if stats, err := lvsdProbeStats(impls[0]); err != nil {
		fmt.Println("lvsd probe stats:", err)
	} else {
		fmt.Printf("lvsd's own histograms, whole run (timeout %v):\n%s", s.timeout, stats)
	}
	// The restore follows the eviction at once, so it is phase-locked to
	// the check timer: these are not samples of a random phase.
	fmt.Printf("restore -> back in the table (starts right after the evicting probe, so phase-locked to the check timer; lvsd needs rise=%d passes, keepalived one):\n", s.rise)
	for _, i := range impls {
		fmt.Printf("  %-10s  p50 %6.0f ms  p99 %6.0f ms\n", i.name, ms(pct(i.restores, 50)), ms(pct(i.restores, 99)))
	}
	return nil
}

// round kills the victim, times its eviction, restarts it and times its
// return to the table.
func (i *impl) round(limit time.Duration) (evict, restore time.Duration, err error) {
	var failed time.Time
	switch failMode {
	case "kill":
		failed = time.Now()
		err = i.servers[i.victim].kill()
	case "drop":
		// Timed from when tc returns, when the loss is surely in place:
		// an eviction can only look shorter for it, by the exec's tail.
		err = i.cutOff(i.victim, true)
		failed = time.Now()
	}
	if err != nil {
		return 0, 0, err
	}
	if err := i.waitIn(i.victim, false, limit); err != nil {
		return 0, 0, fmt.Errorf("not evicted: %w", err)
	}
	evict = time.Since(failed)
	restarted := time.Now()
	if verbose {
		fmt.Printf("  %s: failed %s, evicted %s, restart %s\n", i.name, stamp(failed), stamp(failed.Add(evict)), stamp(restarted))
	}
	if failMode == "kill" {
		err = i.startServer(i.victim)
	} else {
		err = i.cutOff(i.victim, false)
	}
	if err != nil {
		return 0, 0, err
	}
	if err := i.waitIn(i.victim, true, 60*time.Second); err != nil {
		return 0, 0, fmt.Errorf("not restored: %w", err)
	}
	if verbose {
		fmt.Printf("  %s: restored %s\n", i.name, stamp(time.Now()))
	}
	return evict, time.Since(restarted), nil
}

// watch polls the table for d while every server is alive, counting each
// server that leaves it, and waits for any that left to come back.
func (i *impl) watch(d, limit time.Duration) error {
	gone := map[netip.AddrPort]bool{}
	for end := time.Now().Add(d); time.Now().Before(end); time.Sleep(5 * time.Millisecond) {
		tab, err := i.kernel.Dump(context.Background())
		if err != nil {
			return err
		}
		for _, a := range i.reals() {
			if !in(tab, a) && !gone[a] {
				gone[a] = true
				i.falseEvictions++
				fmt.Printf("  %s: %s left the table while alive (%s)\n", i.name, a, stamp(time.Now()))
			}
		}
	}
	for a := range gone {
		if err := i.waitIn(a, true, limit); err != nil {
			return fmt.Errorf("after a false eviction: %w", err)
		}
	}
	return nil
}

// waitIn polls the director's table until addr is (or is not) in it.
func (i *impl) waitIn(addr netip.AddrPort, want bool, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for {
		tab, err := i.kernel.Dump(context.Background())
		if err != nil {
			return err
		}
		if in(tab, addr) == want {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s in the table: %v after %v", addr, !want, limit)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func in(tab []director.KernelService, addr netip.AddrPort) bool {
	for _, s := range tab {
		for _, d := range s.Dests {
			if d.Addr == addr {
				return true
			}
		}
	}
	return false
}

func pct(d []time.Duration, p int) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := slices.Clone(d)
	slices.Sort(s)
	i := (len(s)*p + 99) / 100
	return s[max(0, min(len(s)-1, i-1))]
}

func stamp(t time.Time) string { return t.UTC().Format("15:04:05.000") }

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// secs writes a duration the way keepalived's <TIMER> reads it: seconds,
// with a fraction when needed.
func secs(d time.Duration) string { return fmt.Sprintf("%g", d.Seconds()) }

func copyFile(from, to string) error {
	data, err := os.ReadFile(from)
	if err != nil {
		return err
	}
	return os.WriteFile(to, data, 0o755)
}
