// Command failover measures VRRP takeover time in network namespaces, for
// lvsd and for keepalived with the same settings in the same run: two
// directors and a client on a bridge, advert_interval 100 ms, priorities
// 200 (master) and 100 (backup), preempt on. Each runs with authenticated
// adverts too (lvsd's [vrrp.auth], keepalived 2.4's auth_hmac: HMAC-SHA256
// trailer, enforce, anti_replay time) when -keepalived24 names a keepalived
// 2.4; Debian's keepalived 2.2.7 has no auth and is the unsigned anchor.
// Each round stops the master
// (SIGKILL, or SIGTERM which resigns with priority 0) and times, from the
// signal, the first gratuitous ARP for the VIP from the backup's MAC as the
// client's AF_PACKET socket timestamps it. The backup adds the VIP before it
// announces, so that is "holds the VIP and has told the link".
//
// Needs root, ip(8), keepalived. Run it with `make bench-failover`.
// The rounds of every implementation alternate, so all see the same load.
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/lvsd/lvsd/bench/internal/vrrppair"
	"github.com/lvsd/lvsd/internal/lab"
)

const (
	interval = 100 * time.Millisecond
	backupPr = 100
)

func main() {
	node := flag.String("lvsd", "bin/lvsd run -config", "lvsd command; the config file path is appended")
	keepalived := flag.String("keepalived", "/usr/sbin/keepalived", "keepalived binary (2.2: no auth)")
	keepalived24 := flag.String("keepalived24", "/work/shared/peers/keepalived-2.4.3/keepalived",
		"keepalived 2.4 binary with auth_hmac; \"\" or missing: no keepalived auth rows")
	rounds := flag.Int("rounds", 20, "rounds per implementation and signal")
	flag.BoolVar(&verbose, "v", false, "print every sample")
	flag.Parse()
	if _, err := os.Stat(*keepalived24); *keepalived24 != "" && err != nil {
		fmt.Fprintf(os.Stderr, "failover: no keepalived 2.4 at %s (%v): running without its auth_hmac rows\n", *keepalived24, err)
		*keepalived24 = ""
	}
	if err := run(strings.Fields(*node), *keepalived, *keepalived24, *rounds); err != nil {
		fmt.Fprintln(os.Stderr, "failover:", err)
		os.Exit(1)
	}
}

var verbose bool

// variant is one column of the table: an implementation and its options.
type variant struct {
	name string
	impl vrrppair.Impl
	o    vrrppair.Options
}

func run(node []string, keepalived, keepalived24 string, rounds int) error {
	if os.Geteuid() != 0 {
		return fmt.Errorf("needs root (network namespaces)")
	}
	dir, err := os.MkdirTemp("", "bench-failover")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	machines := &lab.Lab{}
	defer machines.Close()
	o := vrrppair.Options{Interval: interval, Lvsd: node, Keepalived: keepalived, KeepalivedDetail: true}
	signed := o
	signed.Auth = true
	ka24 := signed
	ka24.Keepalived = keepalived24
	variants := []variant{{"lvsd", vrrppair.Lvsd, o}, {"lvsd+auth", vrrppair.Lvsd, signed}, {"keepalived", vrrppair.Keepalived, o}}
	if keepalived24 != "" {
		variants = append(variants, variant{"ka2.4+auth", vrrppair.Keepalived, ka24})
	}
	sk := vrrppair.Skew(interval, backupPr)
	fmt.Printf("VRRP failover, advert_interval %v, master priority 200, backup %d, %d rounds each\n", interval, backupPr, rounds)
	fmt.Printf("targets: SIGKILL p99 <= 3*interval + skew + 20ms = %v; SIGTERM p99 <= skew + 20ms = %v\n\n",
		ms(3*interval+sk+20*time.Millisecond), ms(sk+20*time.Millisecond))
	fmt.Printf("%-10s %-8s %9s %9s %9s %9s %s\n", "impl", "signal", "p50", "p99", "min", "max", "failed")
	fmt.Println("  (keepalived: Debian's 2.2.7, unsigned; +auth: HMAC-SHA256 trailer, enforce, anti_replay time)")
	// One lab per variant, rounds alternating between them, so all see
	// the same machine load (the CPU is shared).
	var runs []*series
	for _, v := range variants {
		p, err := vrrppair.New(machines, v.impl, filepath.Join(dir, v.name), v.o)
		if err != nil {
			return fmt.Errorf("%s: %w", v.name, err)
		}
		runs = append(runs, &series{name: v.name, pair: p, signed: v.o.Auth})
	}
	results := map[string][2]time.Duration{}
	for _, sig := range []syscall.Signal{syscall.SIGKILL, syscall.SIGTERM} {
		for _, s := range runs {
			if err := s.begin(); err != nil {
				return fmt.Errorf("%s: %w", s.name, err)
			}
		}
		for r := 0; r < rounds; r++ {
			for _, s := range runs {
				if err := s.round(sig); err != nil {
					return fmt.Errorf("%s %v: %w", s.name, sig, err)
				}
			}
		}
		for _, s := range runs {
			s.end()
			samples := s.samples
			sort.Slice(samples, func(i, j int) bool { return samples[i] < samples[j] })
			if len(samples) == 0 {
				fmt.Printf("%-10s %-8s no successful rounds (%d failed)\n", s.name, sigName(sig), s.failed)
				continue
			}
			if verbose {
				fmt.Printf("%-10s %-8s samples %v\n", s.name, sigName(sig), samples)
			}
			p50, p99 := percentile(samples, 50), percentile(samples, 99)
			results[s.name+sigName(sig)] = [2]time.Duration{p50, p99}
			fmt.Printf("%-10s %-8s %9s %9s %9s %9s %d\n", s.name, sigName(sig), ms(p50), ms(p99),
				ms(samples[0]), ms(samples[len(samples)-1]), s.failed)
		}
	}
	fmt.Println()
	ratio := func(sig, what, a, b string) {
		x, y := results[a+sig], results[b+sig]
		if x[0] > 0 && y[0] > 0 {
			fmt.Printf("%s %-34s p50 %.2f  p99 %.2f\n", sig, what, float64(x[0])/float64(y[0]), float64(x[1])/float64(y[1]))
		}
	}
	for _, sig := range []string{"SIGKILL", "SIGTERM"} {
		ratio(sig, "lvsd/keepalived:", "lvsd", "keepalived")
		ratio(sig, "lvsd+auth/lvsd (auth's cost):", "lvsd+auth", "lvsd")
		ratio(sig, "lvsd+auth/keepalived 2.4+auth:", "lvsd+auth", "ka2.4+auth")
	}
	fmt.Println()
	fmt.Println("takeover p50/p99     auth off: lvsd      auth off: keepalived  auth on: lvsd       keepalived 2.4.3 auth_hmac")
	for _, sig := range []string{"SIGKILL", "SIGTERM"} {
		cell := func(name string) string {
			r, ok := results[name+sig]
			if !ok {
				return "-"
			}
			return ms(r[0]) + " / " + ms(r[1])
		}
		fmt.Printf("%-20s %-19s %-21s %-19s %s\n", sig, cell("lvsd"), cell("keepalived"), cell("lvsd+auth"), cell("ka2.4+auth"))
	}
	return nil
}

// series is the rounds of one implementation for one signal: the backup
// stays up; the master is restarted each round and preempts back.
type series struct {
	name    string
	signed  bool // its adverts must carry an HMAC trailer
	checked bool // they were seen to
	pair    *vrrppair.Pair
	backup  *lab.Proc
	samples []time.Duration
	failed  int
}

func (s *series) begin() error {
	var err error
	s.samples, s.failed = nil, 0
	s.backup, err = s.pair.Start(s.pair.D2, backupPr)
	return err
}

func (s *series) end() { s.backup.Stop() }

// round: master up and settled, signal it, time the backup's first GARP.
func (s *series) round(sig syscall.Signal) error {
	master, err := s.pair.Start(s.pair.D1, 200)
	if err != nil {
		return err
	}
	defer master.Stop()
	if !s.checked {
		// The master's first advert says whether the pair signs as its
		// column claims.
		n, err := s.pair.TrailerOf(vrrppair.MasterAddr, 5*time.Second)
		if err != nil {
			return err
		}
		if want := map[bool]int{true: 28, false: 0}[s.signed]; n != want {
			return fmt.Errorf("the master's adverts carry %d bytes after their addresses, want %d", n, want)
		}
		s.checked = true
	}
	d, ok := s.pair.Takeover(master, sig, 5*time.Second)
	if !ok {
		s.failed++
		return nil
	}
	s.samples = append(s.samples, d)
	return nil
}

// percentile is the nearest-rank percentile of sorted samples.
func percentile(sorted []time.Duration, p int) time.Duration {
	i := (p*len(sorted)+99)/100 - 1
	return sorted[max(0, min(i, len(sorted)-1))]
}

func ms(d time.Duration) string { return fmt.Sprintf("%.1fms", float64(d)/float64(time.Millisecond)) }

func sigName(s syscall.Signal) string {
	if s == syscall.SIGKILL {
		return "SIGKILL"
	}
	return "SIGTERM"
}
