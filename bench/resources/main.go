// Command resources measures how long after a master's SIGKILL a stateful
// service answers on its twin, in network namespaces on this host, for
//
//   - lvsd with the service as a [[vrrp.resource]],
//   - keepalived with notify_master / notify_backup scripts (the usual
//     keepalived way to run a service with the VIP), and
//   - Debian's heartbeat with haresources "d1 IPaddr2::VIP statesvc" (the
//     Linux-HA setup of our users' MyProxy and OAR pairs),
//
// with the same service (e2e/statesvc: a store whose master replicates
// every write to its twin, and whose start copies the peer's state), the
// same 100 ms heartbeat and about the same detection time, rounds
// alternating between them so all see the same machine load.
//
// Each round starts the pair (d1 preferred), waits until the service
// answers as d1 on the VIP, writes 20 keys, SIGKILLs d1's HA daemon (its
// whole process group; heartbeat's processes all) and times, from the
// kill, the first answer "PONG d2" a client gets on VIP:7000, polling every
// 5 ms. Then it reads the 20 keys back from d2. The service that d1's HA
// daemon started keeps running, as it would after a daemon crash.
//
// Needs root, ip(8), unshare(1), keepalived and heartbeat. Run it with
// `make bench-resources`.
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

const (
	vip      = "10.9.0.10"
	interval = 100 * time.Millisecond
)

func main() {
	lvsd := flag.String("lvsd", "bin/lvsd", "lvsd binary")
	svc := flag.String("statesvc", "bin/statesvc", "statesvc binary (e2e/statesvc)")
	keepalived := flag.String("keepalived", "/usr/sbin/keepalived", "keepalived binary")
	heartbeat := flag.String("heartbeat", "/usr/libexec/heartbeat/heartbeat", "heartbeat binary")
	rounds := flag.Int("rounds", 10, "rounds per implementation")
	only := flag.String("impl", "lvsd,keepalived,heartbeat", "implementations to run")
	flag.BoolVar(&verbose, "v", false, "print every sample")
	flag.BoolVar(&keep, "keep", false, "keep the directory with the daemons' configs and logs")
	flag.Parse()
	if err := run(abs(*lvsd), abs(*svc), *keepalived, *heartbeat, *rounds, strings.Split(*only, ",")); err != nil {
		fmt.Fprintln(os.Stderr, "resources:", err)
		os.Exit(1)
	}
}

var verbose, keep bool

func abs(p string) string {
	a, err := filepath.Abs(p)
	if err != nil {
		return p
	}
	return a
}

// series is one implementation's lab and samples.
type series struct {
	impl    impl
	lab     *lab
	samples []time.Duration
	starts  []time.Duration // the service's own start on d2 (statesvc's ha.log)
	failed  int
	lost    int // keys not read back from d2
}

func run(lvsd, svc, keepalived, heartbeat string, rounds int, only []string) error {
	if os.Geteuid() != 0 {
		return fmt.Errorf("needs root (network namespaces)")
	}
	for _, p := range []string{lvsd, svc} {
		if _, err := os.Stat(p); err != nil {
			return fmt.Errorf("%s: %w (run `make build`)", p, err)
		}
	}
	// The service's state on tmpfs: its fsyncs would otherwise measure the
	// disk, which other jobs on the machine share, more than the HA daemons.
	dir, err := os.MkdirTemp("/dev/shm", "bench-resources")
	if err != nil {
		return err
	}
	if keep {
		fmt.Println("logs and configs in", dir)
	} else {
		defer os.RemoveAll(dir)
	}
	all := []impl{lvsdImpl(lvsd, svc), keepalivedImpl(keepalived, svc), heartbeatImpl(heartbeat, svc)}
	var runs []*series
	for i, im := range all {
		if !contains(only, im.name) {
			continue
		}
		l, err := newLab(filepath.Join(dir, im.name), i, svc)
		if err != nil {
			return fmt.Errorf("%s: %w", im.name, err)
		}
		defer l.close()
		runs = append(runs, &series{impl: im, lab: l})
	}
	fmt.Printf("Stateful service failover: SIGKILL of the master's HA daemon until the service answers on the twin\n")
	fmt.Printf("heartbeat every %v; %d rounds each, alternating; 20 keys written before each kill\n\n", interval, rounds)
	for r := 0; r < rounds; r++ {
		for _, s := range runs {
			d, lost, err := s.round()
			if err != nil {
				s.failed++
				fmt.Fprintf(os.Stderr, "%s round %d: %v\n", s.impl.name, r+1, err)
				continue
			}
			s.samples = append(s.samples, d)
			s.lost += lost
			if st, ok := s.lab.lastStart(); ok {
				s.starts = append(s.starts, st)
			}
			if verbose {
				fmt.Printf("%-10s round %2d: %v\n", s.impl.name, r+1, d.Round(time.Millisecond))
			}
		}
	}
	fmt.Printf("%-10s %9s %9s %9s %9s %11s %15s %15s %6s %5s\n", "impl", "p50", "p90", "min", "max", "detection", "p50-detection", "service start", "failed", "lost")
	p50s := map[string]time.Duration{}
	for _, s := range runs {
		sm := s.samples
		sort.Slice(sm, func(i, j int) bool { return sm[i] < sm[j] })
		if len(sm) == 0 {
			fmt.Printf("%-10s no successful rounds (%d failed)\n", s.impl.name, s.failed)
			continue
		}
		p50 := percentile(sm, 50)
		p50s[s.impl.name] = p50
		start := "-"
		if st := s.starts; len(st) > 0 {
			sort.Slice(st, func(i, j int) bool { return st[i] < st[j] })
			start = ms(percentile(st, 50))
		}
		fmt.Printf("%-10s %9s %9s %9s %9s %11s %15s %15s %6d %5d\n", s.impl.name, ms(p50), ms(percentile(sm, 90)), ms(sm[0]), ms(sm[len(sm)-1]),
			ms(s.impl.detection), ms(p50-s.impl.detection), start, s.failed, s.lost)
	}
	fmt.Println()
	for _, peer := range []string{"keepalived", "heartbeat"} {
		if a, b := p50s["lvsd"], p50s[peer]; a > 0 && b > 0 {
			fmt.Printf("lvsd/%s p50: %.2f\n", peer, float64(a)/float64(b))
		}
	}
	fmt.Println("service start: p50 of the resource script's own start on d2 (copy the peer's state, start, answer)")
	fmt.Println("reference: the MyProxy pair on Linux-HA took about 2 s after detection")
	fmt.Println("detection is the nominal one: Master_Down_Interval (3 x 100 ms + skew) for VRRP, deadtime for heartbeat;")
	fmt.Println("it runs from d1's last heartbeat, up to one interval before the kill, so p50-detection can be below 0")
	return nil
}

// round starts the pair, kills d1's HA daemon and times the service's
// first answer from d2. It returns the time and the keys d2 lacks.
func (s *series) round() (time.Duration, int, error) {
	l, im := s.lab, s.impl
	l.reset()
	d1, err := im.start(l, 0)
	if err != nil {
		return 0, 0, err
	}
	defer im.stop(l, 0, d1)
	if !l.waitAnswer("PONG d1", 30*time.Second) {
		return 0, 0, fmt.Errorf("d1 never served (log in %s)", l.dir)
	}
	d2, err := im.start(l, 1)
	if err != nil {
		return 0, 0, err
	}
	defer im.stop(l, 1, d2)
	time.Sleep(im.settle) // d2 hears d1 and settles as its backup
	if !l.waitAnswer("PONG d1", 5*time.Second) {
		return 0, 0, fmt.Errorf("d1 lost the service when d2 started")
	}
	for i := range 20 {
		if r, err := l.ask(fmt.Sprintf("SET k%d v%d", i, i)); err != nil || r != "OK" {
			return 0, 0, fmt.Errorf("SET k%d: %q %v", i, r, err)
		}
	}
	t0 := time.Now()
	im.kill(l, 0, d1)
	if !l.waitAnswer("PONG d2", 20*time.Second) {
		return 0, 0, fmt.Errorf("d2 never served after the kill")
	}
	took := time.Since(t0)
	lost := 0
	for i := range 20 {
		if r, err := l.ask(fmt.Sprintf("GET k%d", i)); err != nil || r != fmt.Sprintf("VAL v%d", i) {
			lost++
		}
	}
	return took, lost, nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// percentile is the nearest-rank percentile of sorted samples.
func percentile(sorted []time.Duration, p int) time.Duration {
	i := (p*len(sorted)+99)/100 - 1
	return sorted[max(0, min(i, len(sorted)-1))]
}

func ms(d time.Duration) string { return fmt.Sprintf("%.0fms", float64(d)/float64(time.Millisecond)) }
