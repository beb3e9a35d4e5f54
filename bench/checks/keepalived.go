package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// runKeepalived measures keepalived's TCP_CHECK on the same targets. Its
// checker process programs IPVS, so it needs a kernel with IPVS.
func runKeepalived(o options, lis *listeners) (result, error) {
	if _, err := os.Stat("/proc/net/ip_vs"); err != nil {
		return result{}, errors.New("this kernel has no IPVS (/proc/net/ip_vs missing), which keepalived's checker needs; " +
			"`make bench-checks` then runs this binary in the VM (e2e/vm/run.sh) for the anchor")
	}
	if _, err := os.Stat(o.keepalived); err != nil {
		return result{}, fmt.Errorf("keepalived not installed: %w", err)
	}
	dir, err := os.MkdirTemp("", "bench-keepalived")
	if err != nil {
		return result{}, err
	}
	defer os.RemoveAll(dir)
	conf := filepath.Join(dir, "keepalived.conf")
	if err := os.WriteFile(conf, []byte(keepalivedConf(o)), 0o644); err != nil {
		return result{}, err
	}
	pids := []string{filepath.Join(dir, "keepalived.pid"), filepath.Join(dir, "checkers.pid"), filepath.Join(dir, "vrrp.pid")}
	for _, p := range pids {
		os.Remove(p) // a stale pid file of a zombie makes keepalived refuse to start
	}
	logFile, err := os.Create(filepath.Join(dir, "keepalived.log"))
	if err != nil {
		return result{}, err
	}
	defer logFile.Close()
	// -C: checkers only; -n: stay in the foreground; -l -G: log to the
	// file, not syslog, so its failures and removals can be counted. Past
	// start-up (a line per activated checker) it logs only failures and
	// state changes, none of which a healthy run has.
	cmd := exec.Command(o.keepalived, "-n", "-C", "-l", "-G", "-f", conf, "-p", pids[0], "-c", pids[1], "-r", pids[2])
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		return result{}, err
	}
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			cmd.Process.Kill()
			<-done
		}
	}
	defer stop()

	// Its start-up (programming every real server into IPVS, which takes
	// seconds in the VM) is not part of the window: wait for the whole
	// table, then settle as lvsd does.
	n := o.addrs * o.ports
	for deadline := time.Now().Add(2 * time.Minute); ; time.Sleep(200 * time.Millisecond) {
		if got, err := ipvsRealServers(); err == nil && got >= n {
			break
		}
		if time.Now().After(deadline) || cmd.Process.Signal(syscall.Signal(0)) != nil {
			return result{}, fmt.Errorf("keepalived did not put the %d real servers in IPVS; log:\n%s", n, tail(logFile.Name()))
		}
	}
	time.Sleep(o.settle)
	if err := cmd.Process.Signal(syscall.Signal(0)); err != nil {
		return result{}, fmt.Errorf("keepalived exited during settle; log:\n%s", tail(logFile.Name()))
	}
	cpu0 := treeCPU(cmd.Process.Pid)
	a0, l0 := lis.accepted(), lis.cpu()
	// The fewest real servers in the kernel table, read once a second
	// (reading it costs the shared CPU too, so not more often).
	fewest := -1
	for end := time.Now().Add(o.duration); time.Now().Before(end); time.Sleep(min(time.Second, time.Until(end))) {
		if n, err := ipvsRealServers(); err == nil && (fewest < 0 || n < fewest) {
			fewest = n
		}
	}
	a1, l1 := lis.accepted(), lis.cpu()
	cpu1 := treeCPU(cmd.Process.Pid)
	rss := treeHWM(cmd.Process.Pid)
	// Only what it logged while running: stopping, it empties the table.
	var logged int64
	if fi, err := logFile.Stat(); err == nil {
		logged = fi.Size()
	}
	stop()
	failed, downs := keepalivedFailures(logFile.Name(), logged)

	// keepalived's connect_timeout is in whole seconds here.
	timeout := int(math.Ceil(o.timeout.Seconds()))
	return result{
		Mode: "keepalived", Checks: n, Scheduled: int(int64(n) * int64(o.duration) / int64(o.interval)),
		Done: int(a1 - a0), Healthy: -1, Accepted: a1 - a0, CPUSec: (cpu1 - cpu0).Seconds(), MaxRSSKB: rss,
		LagP50: -1, LagP99: -1, LagMax: -1, Failed: failed, Downs: downs, FewestUp: fewest, BehindMax: -1,
		ListenerCPUSec: (l1 - l0).Seconds(),
		Note:           fmt.Sprintf("TCP_CHECK connect_timeout %d, delay_loop %s, retry 0 (fall 1); probes counted by the listeners, failures and downs by its log, fewest up by the IPVS table; CPU and RSS of all keepalived processes", timeout, o.interval),
	}, nil
}

// ipvsRealServers counts the real servers in the kernel's IPVS table.
func ipvsRealServers() (int, error) {
	data, err := os.ReadFile("/proc/net/ip_vs")
	if err != nil {
		return 0, err
	}
	n := 0
	for _, line := range strings.Split(string(data), "\n") {
		// The header has a line of its own that starts the same way.
		if strings.HasPrefix(line, "  -> ") && !strings.Contains(line, "RemoteAddress") {
			n++
		}
	}
	return n, nil
}

// keepalivedFailures counts, in keepalived's log, the failed checks it
// logged (log_all_failures) and the real servers it removed from IPVS.
func keepalivedFailures(path string, size int64) (failed, downs int) {
	f, err := os.Open(path)
	if err != nil {
		return -1, -1
	}
	defer f.Close()
	sc := bufio.NewScanner(io.LimitReader(f, size))
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.Contains(line, "TCP connection to ") && (strings.HasSuffix(line, " timeout.") || strings.HasSuffix(line, " failed.")):
			failed++
		case strings.Contains(line, "Removing service "):
			downs++
		}
	}
	return failed, downs
}

func keepalivedConf(o options) string {
	var b strings.Builder
	b.WriteString("global_defs {\n  router_id lvsd_bench\n}\n")
	timeout := int(math.Ceil(o.timeout.Seconds()))
	// One virtual server per target address keeps each block readable.
	for a := 0; a < o.addrs; a++ {
		fmt.Fprintf(&b, "virtual_server 10.250.%d.%d 80 {\n  delay_loop %g\n  lb_algo rr\n  lb_kind NAT\n  protocol TCP\n",
			a/250, a%250+1, o.interval.Seconds())
		for p := 0; p < o.ports; p++ {
			// retry 0: down at the first failure, as lvsd's fall 1 (its
			// default, retry 1, would wait for a second failure).
			fmt.Fprintf(&b, "  real_server %s %d {\n    weight 1\n    TCP_CHECK {\n      connect_timeout %d\n      retry 0\n      log_all_failures\n    }\n  }\n",
				targetAddr(a), o.basePort+p, timeout)
		}
		b.WriteString("}\n")
	}
	return b.String()
}

// treeCPU sums user+system time of pid and its descendants.
func treeCPU(pid int) time.Duration {
	var total time.Duration
	for _, p := range descendants(pid) {
		data, err := os.ReadFile("/proc/" + strconv.Itoa(p) + "/stat")
		if err != nil {
			continue
		}
		s := string(data)
		fields := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
		// Fields after the name start at stat field 3; utime and stime are 14 and 15.
		utime, _ := strconv.ParseInt(fields[11], 10, 64)
		stime, _ := strconv.ParseInt(fields[12], 10, 64)
		total += time.Duration(utime+stime) * time.Second / 100 // USER_HZ
	}
	return total
}

// treeHWM sums the peak RSS (VmHWM, KB) of pid and its descendants.
func treeHWM(pid int) int64 {
	var total int64
	for _, p := range descendants(pid) {
		data, err := os.ReadFile("/proc/" + strconv.Itoa(p) + "/status")
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(data), "\n") {
			if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
				kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
				total += kb
			}
		}
	}
	return total
}

func descendants(pid int) []int {
	out := []int{pid}
	for i := 0; i < len(out); i++ {
		data, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", out[i], out[i]))
		if err != nil {
			continue
		}
		for _, f := range strings.Fields(string(data)) {
			if c, err := strconv.Atoi(f); err == nil {
				out = append(out, c)
			}
		}
	}
	return out
}

func tail(path string) string {
	data, _ := os.ReadFile(path)
	lines := strings.Split(strings.TrimSpace(string(data)), "\n")
	if len(lines) > 20 {
		lines = lines[len(lines)-20:]
	}
	return strings.Join(lines, "\n")
}
