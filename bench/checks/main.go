// Command checks benchmarks lvsd's health-check scheduler: N TCP checks at a
// fixed interval against loopback listeners, beside keepalived's TCP_CHECK
// on the same listeners in the same run.
//
// The parent process starts the listeners in a child process (so their
// accept work is not billed to the checker), then runs each checker in turn:
//
//   - lvsd: checks.Scheduler with real TCP checks, in a child process;
//   - goroutines: the naive design, one goroutine and ticker per check, to
//     show what the timer heap saves;
//   - keepalived: TCP_CHECK with the same targets. keepalived's checker needs
//     IPVS, so it runs only where /proc/net/ip_vs exists (the VM of
//     e2e/vm/run.sh); elsewhere the bench says the anchor could not run.
//
// It prints probes done / scheduled, CPU seconds per 1,000 probes, peak RSS
// and the lag between a probe's due time and its start.
package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/lvsd/lvsd/internal/daemon"
)

type options struct {
	role       string
	addrs      int
	ports      int
	basePort   int
	interval   time.Duration
	timeout    time.Duration
	duration   time.Duration
	settle     time.Duration
	keepalived string
	modes      string
	cpuProfile string
	memProfile string
	rounds     int
}

func main() {
	var o options
	flag.StringVar(&o.role, "role", "", "internal: serve | lvsd | goroutines")
	flag.IntVar(&o.addrs, "addrs", 100, "loopback addresses 127.1.x.y to listen on")
	flag.IntVar(&o.ports, "ports", 100, "ports per address; checks = addrs × ports")
	flag.IntVar(&o.basePort, "base-port", 21000, "first listening port")
	flag.DurationVar(&o.interval, "interval", time.Second, "check interval")
	flag.DurationVar(&o.timeout, "timeout", 500*time.Millisecond, "check timeout (keepalived: connect_timeout rounded up to 1s)")
	flag.DurationVar(&o.duration, "duration", 30*time.Second, "measured window per checker")
	flag.DurationVar(&o.settle, "settle", 3*time.Second, "time before the window, for first runs to spread")
	flag.StringVar(&o.keepalived, "keepalived", "/usr/sbin/keepalived", "keepalived binary for the anchor")
	flag.StringVar(&o.modes, "modes", "lvsd,goroutines,keepalived", "checkers to run, in order")
	flag.StringVar(&o.cpuProfile, "cpuprofile", "", "write a CPU profile of the window; when orchestrating, each lvsd and goroutines run writes FILE.MODE.ROUND")
	flag.StringVar(&o.memProfile, "memprofile", "", "write a heap profile at the end of the window; when orchestrating, FILE.MODE.ROUND as for -cpuprofile")
	flag.IntVar(&o.rounds, "rounds", 1, "repeat the modes this many times, alternating, and report median ratios")
	flag.Parse()

	raiseFileLimit()
	var err error
	switch o.role {
	case "serve":
		err = serve(o, os.Stdin, os.Stdout)
	case "lvsd", "goroutines":
		if o.role == "lvsd" {
			daemon.KeepTimingHeadroom() // as `lvsd run` has it
		}
		var r result
		r, err = measure(o)
		if err == nil {
			err = json.NewEncoder(os.Stdout).Encode(r)
		}
	case "":
		err = orchestrate(o)
	default:
		err = fmt.Errorf("unknown role %q", o.role)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench/checks:", err)
		os.Exit(1)
	}
}

// result is one checker's figures over the measured window.
type result struct {
	Mode      string  `json:"mode"`
	Checks    int     `json:"checks"`
	Scheduled int     `json:"scheduled"`
	Done      int     `json:"done"`
	Healthy   int     `json:"healthy"`
	CPUSec    float64 `json:"cpu_s"`
	MaxRSSKB  int64   `json:"max_rss_kb"`
	LagP50    float64 `json:"lag_p50_ms"` // -1 when not measurable
	LagP99    float64 `json:"lag_p99_ms"`
	LagMax    float64 `json:"lag_max_ms"`
	EarlyMax  float64 `json:"early_max_ms"` // the most a probe started before its due time
	Accepted  int64   `json:"accepted"`     // connections the listeners saw in the window
	// Every listener stays up for the whole run, so every failed probe is
	// a false failure and every transition to down a false down: a server
	// that is up taken out of the table.
	Failed   int `json:"failed"`      // failed probes in the window (keepalived: logged failures, whole run)
	Downs    int `json:"false_downs"` // transitions to down over the whole run, settle included
	FewestUp int `json:"fewest_up"`   // fewest targets up (keepalived: in the IPVS table) in the window; -1 unknown
	// lvsd only: probes voided because lvsd was late (whole run), and the
	// most checks Scheduler.Backlog said were behind at once, by how much
	// at worst (BehindMax -1: not measured).
	Inconclusive int `json:"inconclusive"`
	// ListenerCPUSec is the listeners' CPU in the window: the servers' side
	// of the handshakes, part of which the kernel bills to the checker.
	ListenerCPUSec float64 `json:"listener_cpu_s"`
	BehindMax      int     `json:"behind_max"`
	BehindByMS     float64 `json:"behind_by_max_ms"`
	Note           string  `json:"note,omitempty"`
}

func (r result) per1000() float64 {
	if r.Done == 0 {
		return 0
	}
	return r.CPUSec / float64(r.Done) * 1000
}

// perAccepted is CPU seconds per 1,000 connections the listeners accepted:
// the one count measured the same way for every checker (a timed-out probe
// is a probe done, but keepalived's are only visible when they connect).
func (r result) perAccepted() float64 {
	if r.Accepted <= 0 {
		return 0
	}
	return r.CPUSec / float64(r.Accepted) * 1000
}

func orchestrate(o options) error {
	if os.Getenv("LVSD_IN_VM") != "" {
		// The VM boots with lo down: 127.1.x.y would not be local, and IPVS
		// refuses NAT destinations it cannot route.
		if out, err := exec.Command("ip", "link", "set", "lo", "up").CombinedOutput(); err != nil {
			return fmt.Errorf("ip link set lo up: %v: %s", err, out)
		}
	}
	if cs, err := os.ReadFile("/sys/devices/system/clocksource/clocksource0/current_clocksource"); err == nil {
		// hpet makes every clock read an exit to the emulator in the VM.
		fmt.Printf("bench/checks: clocksource %s\n", strings.TrimSpace(string(cs)))
	}
	n := o.addrs * o.ports
	fmt.Printf("bench/checks: %d TCP checks (%d addresses × %d ports) every %s, timeout %s, window %s after %s settle\n",
		n, o.addrs, o.ports, o.interval, o.timeout, o.duration, o.settle)
	lis, err := startListeners(o)
	if err != nil {
		return err
	}
	defer lis.stop()

	var rounds [][]result
	for round := 1; round <= max(o.rounds, 1); round++ {
		if o.rounds > 1 {
			fmt.Printf("--- round %d of %d\n", round, o.rounds)
		}
		var results []result
		for _, mode := range strings.Split(o.modes, ",") {
			var r result
			switch mode {
			case "lvsd", "goroutines":
				r, err = runChild(o, mode, round, lis)
			case "keepalived":
				r, err = runKeepalived(o, lis)
			default:
				err = fmt.Errorf("unknown mode %q", mode)
			}
			if err != nil {
				fmt.Printf("%-11s could not run: %v\n", mode, err)
				continue
			}
			results = append(results, r)
			printResult(r)
			time.Sleep(time.Second) // let TIME_WAIT and accept queues drain between runs
		}
		rounds = append(rounds, results)
	}
	printTable(rounds)
	printRatios(rounds)
	return nil
}

func runChild(o options, mode string, round int, lis *listeners) (result, error) {
	self, err := os.Executable()
	if err != nil {
		return result{}, err
	}
	args := []string{"-role", mode, "-addrs", fmt.Sprint(o.addrs), "-ports", fmt.Sprint(o.ports),
		"-base-port", fmt.Sprint(o.basePort), "-interval", o.interval.String(), "-timeout", o.timeout.String(),
		"-duration", o.duration.String(), "-settle", o.settle.String()}
	if o.memProfile != "" {
		args = append(args, "-memprofile", fmt.Sprintf("%s.%s.%d", o.memProfile, mode, round))
	}
	if o.cpuProfile != "" {
		args = append(args, "-cpuprofile", fmt.Sprintf("%s.%s.%d", o.cpuProfile, mode, round))
	}
	cmd := exec.Command(self, args...)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return result{}, err
	}
	if err := cmd.Start(); err != nil {
		return result{}, err
	}
	// The child prints "window" when its measured window opens, "end" when
	// it closes, then its result: the listeners' count is read at both.
	rd := bufio.NewReader(out)
	var a0, a1 int64
	var l0, l1 time.Duration
	for _, mark := range []string{"window", "end"} {
		line, err := rd.ReadString('\n')
		if err != nil || strings.TrimSpace(line) != mark {
			cmd.Process.Kill()
			cmd.Wait()
			return result{}, fmt.Errorf("child %s: %q %v, want %q", mode, line, err, mark)
		}
		a0, a1 = a1, lis.accepted()
		l0, l1 = l1, lis.cpu()
	}
	var r result
	decErr := json.NewDecoder(rd).Decode(&r)
	io.Copy(io.Discard, rd)
	if err := cmd.Wait(); err != nil {
		return result{}, fmt.Errorf("child %s: %w", mode, err)
	}
	if decErr != nil {
		return result{}, fmt.Errorf("child %s result: %w", mode, decErr)
	}
	r.Accepted = a1 - a0
	r.ListenerCPUSec = (l1 - l0).Seconds()
	return r, nil
}

func printResult(r result) {
	lag := "n/a (not observable)"
	if r.LagP99 >= 0 {
		lag = fmt.Sprintf("p50 %.2f ms, p99 %.2f ms, max %.1f ms", r.LagP50, r.LagP99, r.LagMax)
		if r.EarlyMax > 0 {
			lag += fmt.Sprintf(" (probes sharing a wakeup started up to %.1f ms early)", r.EarlyMax)
		}
	}
	fmt.Printf("%-11s probes %d / scheduled %d (%.1f%%), healthy %d, listeners accepted %d\n",
		r.Mode, r.Done, r.Scheduled, 100*float64(r.Done)/float64(max(r.Scheduled, 1)), r.Healthy, r.Accepted)
	fmt.Printf("%-11s CPU %.2f s = %.4f s per 1,000 probes, %.4f s per 1,000 accepted connections; peak RSS %.1f MB; due→start lag %s\n",
		"", r.CPUSec, r.per1000(), r.perAccepted(), float64(r.MaxRSSKB)/1024, lag)
	fmt.Printf("%-11s false failures %d, false downs %d, fewest up %s of %d; the listeners used %.2f CPU-s\n", "", r.Failed, r.Downs, fewest(r), r.Checks, r.ListenerCPUSec)
	if r.BehindMax >= 0 {
		fmt.Printf("%-11s behind schedule: up to %d checks, by up to %.0f ms; %d probes inconclusive (lvsd late, not counted)\n",
			"", r.BehindMax, r.BehindByMS, r.Inconclusive)
	}
	if r.Note != "" {
		fmt.Printf("%-11s note: %s\n", "", r.Note)
	}
}

func fewest(r result) string {
	if r.FewestUp < 0 {
		return "?"
	}
	return fmt.Sprint(r.FewestUp)
}

// printTable prints each checker's medians over the rounds, as the README
// table has them.
func printTable(rounds [][]result) {
	var modes []string
	byMode := map[string][]result{}
	for _, results := range rounds {
		for _, r := range results {
			if byMode[r.Mode] == nil {
				modes = append(modes, r.Mode)
			}
			byMode[r.Mode] = append(byMode[r.Mode], r)
		}
	}
	if len(modes) == 0 {
		return
	}
	fmt.Printf("\nmedians over %d rounds (false downs and failures: the sum over all rounds; every listener stays up, so each is false)\n", len(rounds))
	fmt.Println("| checker | checks | probes made, by the listeners (% of schedule) | CPU-s per 1,000 probes | fewest up | false downs | failed probes |")
	fmt.Println("|---|---|---|---|---|---|---|")
	for _, m := range modes {
		rs := byMode[m]
		var done, share, cpu, up []float64
		downs, failed := 0, 0
		for _, r := range rs {
			// Probes as the listeners counted them, the one count taken
			// the same way for every checker (a checker far behind may not
			// have reported a probe it started before the window closed).
			done = append(done, float64(r.Accepted))
			share = append(share, 100*float64(r.Accepted)/float64(max(r.Scheduled, 1)))
			cpu = append(cpu, r.perAccepted())
			up = append(up, float64(r.FewestUp))
			downs += r.Downs
			failed += r.Failed
		}
		fmt.Printf("| %s | %d | %.0f (%.0f%%) | %.3f | %.0f | %d | %d |\n", m, rs[0].Checks, median(done), median(share), median(cpu), median(up), downs, failed)
	}
}

// printRatios prints, for each other checker, the median over rounds of
// lvsd's figure divided by that checker's in the same round.
func printRatios(rounds [][]result) {
	anchorRan := false
	for _, other := range []string{"goroutines", "keepalived"} {
		var cpu, rss []float64
		for _, results := range rounds {
			byMode := map[string]result{}
			for _, r := range results {
				byMode[r.Mode] = r
			}
			l, okL := byMode["lvsd"]
			r, okR := byMode[other]
			if !okL || !okR || r.perAccepted() == 0 {
				continue
			}
			cpu = append(cpu, l.perAccepted()/r.perAccepted())
			rss = append(rss, float64(l.MaxRSSKB)/float64(max(r.MaxRSSKB, 1)))
		}
		if len(cpu) == 0 {
			continue
		}
		if other == "keepalived" {
			anchorRan = true
		}
		fmt.Printf("ratio lvsd/%s (median of %d rounds): CPU per accepted connection %.2f %s, peak RSS %.2f\n",
			other, len(cpu), median(cpu), fmtList(cpu), median(rss))
	}
	if !anchorRan {
		fmt.Println("anchor: keepalived TCP_CHECK did NOT run in this invocation (see above); no lvsd/keepalived ratio")
	}
}

func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func fmtList(v []float64) string {
	parts := make([]string, len(v))
	for i, x := range v {
		parts[i] = fmt.Sprintf("%.2f", x)
	}
	return "[" + strings.Join(parts, " ") + "]"
}

// raiseFileLimit makes room for 10,000 listeners (and keepalived's
// sockets, which inherit the limit); root may raise the hard limit too.
func raiseFileLimit() {
	want := syscall.Rlimit{Cur: 1 << 17, Max: 1 << 17}
	if syscall.Setrlimit(syscall.RLIMIT_NOFILE, &want) == nil {
		return
	}
	var lim syscall.Rlimit
	if syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim) == nil {
		lim.Cur = lim.Max
		syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim)
	}
}
