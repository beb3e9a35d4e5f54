// Command failover measures VRRP takeover time in network namespaces, for
// lvsd and for keepalived with the same settings in the same run: two
// directors and a client on a bridge, advert_interval 100 ms, priorities
// 200 (master) and 100 (backup), preempt on. Each round stops the master
// (SIGKILL, or SIGTERM which resigns with priority 0) and times, from the
// signal, the first gratuitous ARP for the VIP from the backup's MAC as the
// client's AF_PACKET socket timestamps it. The backup adds the VIP before it
// announces, so that is "holds the VIP and has told the link".
//
// Needs root, ip(8), keepalived. Run it with `make bench-failover`.
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
	keepalived := flag.String("keepalived", "/usr/sbin/keepalived", "keepalived binary")
	rounds := flag.Int("rounds", 20, "rounds per implementation and signal")
	flag.BoolVar(&verbose, "v", false, "print every sample")
	flag.Parse()
	if err := run(strings.Fields(*node), *keepalived, *rounds); err != nil {
		fmt.Fprintln(os.Stderr, "failover:", err)
		os.Exit(1)
	}
}

var verbose bool

func run(node []string, keepalived string, rounds int) error {
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
	sk := vrrppair.Skew(interval, backupPr)
	fmt.Printf("VRRP failover, advert_interval %v, master priority 200, backup %d, %d rounds each\n", interval, backupPr, rounds)
	fmt.Printf("targets: SIGKILL p99 <= 3*interval + skew + 20ms = %v; SIGTERM p99 <= skew + 20ms = %v\n\n",
		ms(3*interval+sk+20*time.Millisecond), ms(sk+20*time.Millisecond))
	fmt.Printf("%-10s %-8s %9s %9s %9s %9s %s\n", "impl", "signal", "p50", "p99", "min", "max", "failed")
	// One lab per implementation, rounds alternating between them, so
	// both see the same machine load (the CPU is shared).
	var runs []*series
	for _, impl := range []vrrppair.Impl{vrrppair.Lvsd, vrrppair.Keepalived} {
		p, err := vrrppair.New(machines, impl, filepath.Join(dir, string(impl)), o)
		if err != nil {
			return err
		}
		runs = append(runs, &series{pair: p})
	}
	results := map[string][2]time.Duration{}
	for _, sig := range []syscall.Signal{syscall.SIGKILL, syscall.SIGTERM} {
		for _, s := range runs {
			if err := s.begin(); err != nil {
				return fmt.Errorf("%s: %w", s.pair.Impl, err)
			}
		}
		for r := 0; r < rounds; r++ {
			for _, s := range runs {
				if err := s.round(sig); err != nil {
					return fmt.Errorf("%s %v: %w", s.pair.Impl, sig, err)
				}
			}
		}
		for _, s := range runs {
			s.end()
			samples := s.samples
			sort.Slice(samples, func(i, j int) bool { return samples[i] < samples[j] })
			if len(samples) == 0 {
				fmt.Printf("%-10s %-8s no successful rounds (%d failed)\n", s.pair.Impl, sigName(sig), s.failed)
				continue
			}
			if verbose {
				fmt.Printf("%-10s %-8s samples %v\n", s.pair.Impl, sigName(sig), samples)
			}
			p50, p99 := percentile(samples, 50), percentile(samples, 99)
			results[string(s.pair.Impl)+sigName(sig)] = [2]time.Duration{p50, p99}
			fmt.Printf("%-10s %-8s %9s %9s %9s %9s %d\n", s.pair.Impl, sigName(sig), ms(p50), ms(p99),
				ms(samples[0]), ms(samples[len(samples)-1]), s.failed)
		}
	}
	fmt.Println()
	for _, sig := range []string{"SIGKILL", "SIGTERM"} {
		a, b := results["lvsd"+sig], results["keepalived"+sig]
		if a[0] > 0 && b[0] > 0 {
			fmt.Printf("%s lvsd/keepalived: p50 %.2f  p99 %.2f\n", sig, float64(a[0])/float64(b[0]), float64(a[1])/float64(b[1]))
		}
	}
	return nil
}

// series is the rounds of one implementation for one signal: the backup
// stays up; the master is restarted each round and preempts back.
type series struct {
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
