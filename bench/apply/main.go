// Command bench-apply compares `lvsd apply` with `ipvsadm-restore` building
// the same IPVS table of S services x R real servers, alternating the two in
// one run (timings under emulation vary a lot from run to run, so only
// their ratio in the same run means anything), and then counts the kernel
// ops of a reload that changes one weight.
//
// It runs inside a network namespace of its own, so it never touches the
// table of the host it runs on; it needs root and a kernel with IPVS, which
// `make bench-apply` provides by running it inside the e2e VM.
package main

import (
	"bufio"
	"bytes"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

func main() {
	services := flag.Int("services", 2000, "virtual services (S)")
	reals := flag.Int("reals", 10, "real servers per service (R)")
	rounds := flag.Int("rounds", 3, "A/B rounds")
	lvsd := flag.String("lvsd", "bin/lvsd", "lvsd binary")
	flag.BoolVar(&withMoby, "with-moby", false, "also time lvsd on its moby/ipvs backend (one netlink round trip per op), to show what batching buys")
	flag.StringVar(&before, "lvsd-before", "", "also time this other lvsd build (e.g. one from before a change) in the same rounds")
	flag.Parse()
	if err := run(*services, *reals, *rounds, *lvsd); err != nil {
		fmt.Fprintln(os.Stderr, "bench-apply:", err)
		os.Exit(1)
	}
}

const netns = "lvsd-bench-apply"

var (
	withMoby bool
	before   string
)

func run(nSvc, nReal, rounds int, lvsd string) error {
	if _, err := os.Stat("/proc/net/ip_vs"); err != nil {
		return fmt.Errorf("kernel has no IPVS: run it with `make bench-apply` (inside the VM)")
	}
	lvsd, _ = filepath.Abs(lvsd)
	dir, err := os.MkdirTemp("", "bench-apply")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	// Run lvsd from local storage: in the VM the repository is a 9p mount
	// read without caching, and re-reading a 15 MB static binary over it on
	// every exec (ipvsadm is 100 KB) would measure the VM, not lvsd.
	local := filepath.Join(dir, "lvsd")
	if err := copyFile(lvsd, local); err != nil {
		return err
	}
	lvsd = local
	if before != "" {
		local := filepath.Join(dir, "lvsd-before")
		if err := copyFile(before, local); err != nil {
			return err
		}
		before = local
	}
	exec.Command("ip", "netns", "del", netns).Run()
	if err := sh("ip", "netns", "add", netns); err != nil {
		return err
	}
	defer exec.Command("ip", "netns", "del", netns).Run()
	for _, c := range [][]string{
		{"ip", "link", "set", "lo", "up"},
		{"ip", "link", "add", "dummy0", "type", "dummy"},
		{"ip", "link", "set", "dummy0", "up"},
		{"ip", "addr", "add", "10.1.0.1/16", "dev", "dummy0"},
	} {
		if err := inNS(nil, c...); err != nil {
			return err
		}
	}

	cfgPath := filepath.Join(dir, "lvsd.toml")
	cfg2Path := filepath.Join(dir, "lvsd-one-weight.toml")
	rulesPath := filepath.Join(dir, "rules.ipvsadm")
	if err := os.WriteFile(cfgPath, config(nSvc, nReal, -1), 0o644); err != nil {
		return err
	}
	if err := os.WriteFile(cfg2Path, config(nSvc, nReal, nSvc/2), 0o644); err != nil {
		return err
	}
	if err := os.WriteFile(rulesPath, rules(nSvc, nReal), 0o644); err != nil {
		return err
	}
	want := nSvc * (1 + nReal)
	fmt.Printf("table: %d services x %d real servers = %d kernel objects; %d rounds, alternating\n", nSvc, nReal, want, rounds)

	// lvsd's own line ("N kernel ops (...) in T") says how much of the
	// wall time was the reconcile pass; the rest is process start and config.
	var lastOut string
	applyLvsd := func() (time.Duration, error) {
		return timed(func() (err error) { lastOut, err = inNSOut(lvsd, "apply", "-config", cfgPath); return err })
	}
	applyMoby := func() (time.Duration, error) {
		return timed(func() (err error) {
			lastOut, err = inNSOut("env", "LVSD_IPVS_BACKEND=moby", lvsd, "apply", "-config", cfgPath)
			return err
		})
	}
	applyBefore := func() (time.Duration, error) {
		return timed(func() (err error) { lastOut, err = inNSOut(before, "apply", "-config", cfgPath); return err })
	}
	applyRestore := func() (time.Duration, error) {
		rules, err := os.Open(rulesPath)
		if err != nil {
			return 0, err
		}
		defer rules.Close()
		return timed(func() error { return inNS(rules, "ipvsadm-restore") })
	}
	var ratios, beforeRatios []float64
	for r := range rounds {
		var tl, tr, tm, tb time.Duration
		order := []string{"lvsd", "ipvsadm-restore"}
		if r%2 == 1 {
			order[0], order[1] = order[1], order[0]
		}
		if withMoby {
			order = append(order, "lvsd-moby")
		}
		if before != "" {
			// First in odd rounds, last in even ones, so neither build
			// always runs right after ipvsadm-restore.
			if r%2 == 0 {
				order = append([]string{"lvsd-before"}, order...)
			} else {
				order = append(order, "lvsd-before")
			}
		}
		for _, which := range order {
			if err := inNS(nil, "ipvsadm", "-C"); err != nil {
				return err
			}
			var d time.Duration
			var err error
			switch which {
			case "lvsd":
				d, err = applyLvsd()
				tl = d
			case "lvsd-moby":
				d, err = applyMoby()
				tm = d
			case "lvsd-before":
				d, err = applyBefore()
				tb = d
			default:
				d, err = applyRestore()
				tr = d
			}
			if err != nil {
				return fmt.Errorf("%s: %w", which, err)
			}
			if which != "ipvsadm-restore" {
				fmt.Printf("  %s: %s", which, lastOut)
			}
			if n, err := tableSize(); err != nil || n != want {
				return fmt.Errorf("%s built %d kernel objects, want %d (%v)", which, n, want, err)
			}
		}
		ratio := tl.Seconds() / tr.Seconds()
		ratios = append(ratios, ratio)
		fmt.Printf("round %d: lvsd apply %8.3fs   ipvsadm-restore %8.3fs   ratio %.3f", r+1, tl.Seconds(), tr.Seconds(), ratio)
		if withMoby {
			fmt.Printf("   (lvsd on moby/ipvs %8.3fs, ratio %.3f)", tm.Seconds(), tm.Seconds()/tr.Seconds())
		}
		if before != "" {
			beforeRatios = append(beforeRatios, tb.Seconds()/tr.Seconds())
			fmt.Printf("   (lvsd-before %8.3fs, ratio %.3f)", tb.Seconds(), tb.Seconds()/tr.Seconds())
		}
		fmt.Println()
	}
	slices.Sort(ratios)
	fmt.Printf("median ratio lvsd/ipvsadm-restore: %.3f (< 1 means lvsd is faster)\n", ratios[len(ratios)/2])
	if before != "" {
		slices.Sort(beforeRatios)
		fmt.Printf("median ratio lvsd-before/ipvsadm-restore: %.3f\n", beforeRatios[len(beforeRatios)/2])
	}

	// Reload that changes one weight, against the table lvsd built.
	if err := inNS(nil, "ipvsadm", "-C"); err != nil {
		return err
	}
	if _, err := applyLvsd(); err != nil {
		return err
	}
	var out bytes.Buffer
	start := time.Now()
	cmd := exec.Command("ip", "netns", "exec", netns, lvsd, "apply", "-config", cfg2Path)
	cmd.Stdout, cmd.Stderr = &out, os.Stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("one-weight reload: %w", err)
	}
	took := time.Since(start)
	m := regexp.MustCompile(`^(\d+) kernel ops`).FindSubmatch(out.Bytes())
	if m == nil {
		return fmt.Errorf("cannot read the op count from %q", out.String())
	}
	ops, _ := strconv.Atoi(string(m[1]))
	fmt.Printf("reload changing one weight: %d kernel op(s) in %.3fs (whole process, including a dump of the %d-object table): %s",
		ops, took.Seconds(), want, out.String())
	if ops != 1 {
		return fmt.Errorf("one-weight reload made %d kernel ops, want 1", ops)
	}
	return nil
}

func vip(i int) string { return fmt.Sprintf("10.%d.%d.%d", 50+i/65536, (i/256)%256, i%256) }
func rip(j int) string { return fmt.Sprintf("10.1.%d.%d", 1+j/250, 2+j%250) }

// config is the lvsd config of the table; service changed gets weight 2 on
// its first real server (-1: none).
func config(nSvc, nReal, changed int) []byte {
	var b bytes.Buffer
	b.WriteString("[director]\nexpire_nodest_conn = false\nexpire_quiescent_template = false\nip_forward = false\n\n")
	for i := range nSvc {
		fmt.Fprintf(&b, "[[service]]\nname = \"s%d\"\nvip = %q\nport = 80\nscheduler = \"wlc\"\nforwarding = \"nat\"\nalpha = false\n", i, vip(i))
		for j := range nReal {
			w := 1
			if i == changed && j == 0 {
				w = 2
			}
			fmt.Fprintf(&b, "[[service.realserver]]\naddress = %q\nweight = %d\n", rip(j), w)
		}
	}
	return b.Bytes()
}

func rules(nSvc, nReal int) []byte {
	var b bytes.Buffer
	for i := range nSvc {
		fmt.Fprintf(&b, "-A -t %s:80 -s wlc\n", vip(i))
		for j := range nReal {
			fmt.Fprintf(&b, "-a -t %s:80 -r %s:80 -m -w 1\n", vip(i), rip(j))
		}
	}
	return b.Bytes()
}

func tableSize() (int, error) {
	out, err := exec.Command("ip", "netns", "exec", netns, "ipvsadm", "-Sn").Output()
	if err != nil {
		return 0, err
	}
	n := 0
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		if strings.HasPrefix(sc.Text(), "-A") || strings.HasPrefix(sc.Text(), "-a") {
			n++
		}
	}
	return n, sc.Err()
}

func timed(fn func() error) (time.Duration, error) {
	start := time.Now()
	err := fn()
	return time.Since(start), err
}

func inNS(stdin *os.File, argv ...string) error {
	cmd := exec.Command("ip", append([]string{"netns", "exec", netns}, argv...)...)
	if stdin != nil {
		cmd.Stdin = stdin
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s: %w: %s", strings.Join(argv, " "), err, bytes.TrimSpace(out))
	}
	return nil
}

func inNSOut(argv ...string) (string, error) {
	cmd := exec.Command("ip", append([]string{"netns", "exec", netns}, argv...)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("%s: %w: %s", strings.Join(argv, " "), err, bytes.TrimSpace(stderr.Bytes()))
	}
	return string(out), nil
}

func copyFile(from, to string) error {
	b, err := os.ReadFile(from)
	if err != nil {
		return err
	}
	return os.WriteFile(to, b, 0o755)
}

func sh(argv ...string) error {
	out, err := exec.Command(argv[0], argv[1:]...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s: %w: %s", strings.Join(argv, " "), err, bytes.TrimSpace(out))
	}
	return nil
}
