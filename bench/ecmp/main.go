// Command ecmp measures active-active directors announced over BGP beside a
// VRRP pair with connection sync, through the same events in one VM run:
//
//   - rs: a real server dies (its echo server SIGKILLed);
//   - kill: a director dies, cut off its link, lvsd (and BIRD) SIGKILLed;
//   - join: that director comes back as a fresh machine;
//   - quorum: one director's probes are dropped, so it alone loses quorum.
//
// For each event: the held connections (200) that still exchange data, the
// time from the event until the routers (or VRRP) moved, and the longest
// gap a 10 ms request stream and a stream of new connections (one every
// 50 ms) saw. The client, the real servers' echo servers and the whole VRRP
// arm are bench/connsync's (its -events mode): the two designs meet the same
// client on the same day.
//
// It runs inside the IPVS VM (make bench-ecmp).
package main

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

	"github.com/lvsd/lvsd/bench/internal/heldconns"
	"github.com/lvsd/lvsd/bench/internal/median"
)

type options struct {
	rounds   int
	conns    int
	advert   time.Duration
	lvsd     string
	connsync string
	bird     string
	workdir  string
	verbose  bool
}

// events are the events of both arms, in order.
var events = []string{"rs", "kill", "join", "quorum"}

func main() {
	if err := runBench(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "ecmp:", err)
		os.Exit(1)
	}
}

func runBench(args []string) error {
	fs := flag.NewFlagSet("ecmp", flag.ContinueOnError)
	var o options
	fs.IntVar(&o.rounds, "rounds", 3, "trials per arm (arms alternate)")
	fs.IntVar(&o.conns, "conns", 200, "long-lived connections held through the VIP")
	// 1 s: the pair then notices a dead master in about 3.6 s, the same
	// budget as the directors' BFD (500 ms × 6); at 100 ms the pair flaps
	// under the VM's emulated CPU while the client opens its connections.
	fs.DurationVar(&o.advert, "advert", time.Second, "VRRP advert interval of the pair")
	fs.StringVar(&o.lvsd, "lvsd", "bin/lvsd", "lvsd binary")
	fs.StringVar(&o.connsync, "connsync", "bin/connsync", "bench/connsync binary (client, echo servers, the VRRP arm)")
	fs.StringVar(&o.bird, "bird", "/usr/sbin/bird", "BIRD 2 binary")
	fs.BoolVar(&o.verbose, "v", false, "print each trial's logs")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if os.Geteuid() != 0 {
		return fmt.Errorf("needs root: run it through make bench-ecmp (inside the IPVS VM)")
	}
	if _, err := os.Stat("/proc/net/ip_vs"); err != nil {
		return fmt.Errorf("this kernel has no IPVS: run it through make bench-ecmp (inside the IPVS VM)")
	}
	var err error
	for _, p := range []*string{&o.lvsd, &o.connsync} {
		if *p, err = filepath.Abs(*p); err != nil {
			return err
		}
	}
	// Unix sockets cannot be bound on the VM's 9p /tmp: work under /run.
	if o.workdir, err = os.MkdirTemp("/run", "bench-ecmp"); err != nil {
		return err
	}
	defer os.RemoveAll(o.workdir)

	fmt.Printf("ecmp: %d held connections, events %s, %d rounds; ECMP: 3 directors, mh + sloppy_tcp, DR, BFD %v × %d; VRRP: lvsd pair with sync, adverts %v\n",
		o.conns, strings.Join(events, ","), o.rounds, bfdInterval, bfdMult, o.advert)
	results := map[string][]heldconns.Event{}
	for round := 0; round < o.rounds; round++ {
		arms := []string{"ecmp", "vrrp"}
		if round%2 == 1 {
			slices.Reverse(arms)
		}
		for _, arm := range arms {
			var rows []heldconns.Event
			var err error
			if arm == "ecmp" {
				rows, err = runECMPTrial(o, round+1)
			} else {
				rows, err = runVRRPTrial(o, round+1)
			}
			for _, r := range rows {
				fmt.Printf("  round %d %-4s %-6s survivors %3d/%-3d (%d silent)  moved after %6.0f ms  stream gap %6.0f ms  new connections %3d/%-3d failed, gap %6.0f ms %s\n",
					round+1, arm, r.Event, r.Report.Survivors, r.Report.Total, r.Report.Timeouts, r.TookMS, r.Report.GapMS, r.Report.NewFailed, r.Report.NewConns, r.Report.NewGapMS, r.Err)
			}
			if err != nil {
				fmt.Printf("  round %d %-4s error: %v\n", round+1, arm, err)
			}
			results[arm] = append(results[arm], rows...)
		}
	}
	return summarize(results)
}

// runVRRPTrial runs one trial of bench/connsync's lvsd pair in events mode
// and reads its rows.
func runVRRPTrial(o options, id int) ([]heldconns.Event, error) {
	cmd := exec.Command(o.connsync, "bench", "-lvsd", o.lvsd, "-rounds", "1", "-conns", fmt.Sprint(o.conns), "-reals", "3",
		"-advert", o.advert.String(), "-events", strings.Join(events, ","), "-json")
	if o.verbose {
		cmd.Args = append(cmd.Args, "-v")
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	var rows []heldconns.Event
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		line, ok := strings.CutPrefix(sc.Text(), heldconns.EventPrefix)
		if !ok {
			if o.verbose || strings.Contains(sc.Text(), "error") {
				fmt.Println("    connsync:", sc.Text())
			}
			continue
		}
		var r heldconns.Event
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			return rows, err
		}
		r.Trial = id
		rows = append(rows, r)
	}
	if err := cmd.Wait(); err != nil {
		return rows, fmt.Errorf("connsync: %w", err)
	}
	return rows, nil
}

// summarize prints one line per event and arm: survivors summed over the
// trials in which the event completed, times as medians.
func summarize(results map[string][]heldconns.Event) error {
	fmt.Println("\nsummary (held connections surviving each event, summed over trials; times are medians):")
	fmt.Printf("  %-7s %-5s %14s %12s %12s %16s %12s\n", "event", "arm", "survivors", "moved after", "stream gap", "new conns failed", "new gap")
	ok := false
	for _, ev := range events {
		for _, arm := range []string{"ecmp", "vrrp"} {
			var surv, total, silent, newFail, newN int
			var took, gap, newGap []float64
			for _, r := range results[arm] {
				if r.Event != ev || r.Err != "" {
					continue
				}
				surv += r.Report.Survivors
				total += r.Report.Total
				silent += r.Report.Timeouts
				newFail += r.Report.NewFailed
				newN += r.Report.NewConns
				took = append(took, r.TookMS)
				gap = append(gap, r.Report.GapMS)
				newGap = append(newGap, r.Report.NewGapMS)
			}
			if len(took) == 0 {
				fmt.Printf("  %-7s %-5s no completed trial\n", ev, arm)
				continue
			}
			ok = true
			pct := 0.0
			if total > 0 {
				pct = 100 * float64(surv) / float64(total)
			}
			fmt.Printf("  %-7s %-5s %5d/%-4d %3.0f%% %9.0f ms %9.0f ms %9d/%-6d %9.0f ms\n",
				ev, arm, surv, total, pct, median.Of(took), median.Of(gap), newFail, newN, median.Of(newGap))
			if silent > 0 {
				fmt.Printf("  %-7s %-5s   (%d of the lost went silent for 15 s rather than being reset)\n", "", "", silent)
			}
		}
	}
	if !ok {
		return fmt.Errorf("no trial completed")
	}
	return nil
}
