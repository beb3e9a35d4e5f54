// Command failover measures VRRP takeover time in network namespaces, for
// lvsd and for keepalived with the same settings in the same run: two
// directors and a client on a bridge, advert_interval 100 ms, priorities
// 200 (master) and 100 (backup), preempt on. Each runs with authenticated
// adverts too (lvsd's [vrrp.auth], keepalived 2.4's auth_hmac: HMAC-SHA256
// trailer, enforce, anti_replay time) when -keepalived24 names a keepalived
// 2.4; Debian's keepalived 2.2.7 has no auth and is the unsigned anchor. Each round stops the master
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
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"
)

const (
	vip      = "10.9.0.10"
	interval = 100 * time.Millisecond
	backupPr = 100
)

func main() {
	node := flag.String("lvsd", "bin/lvsd run -config", "lvsd command; the config file path is appended")
	keepalived := flag.String("keepalived", "/usr/sbin/keepalived", "keepalived binary (2.2: no auth)")
	keepalived24 := flag.String("keepalived24", "/work/shared/peers/keepalived-2.4.3/keepalived", "keepalived 2.4 binary with auth_hmac; \"\" or missing: no keepalived auth rows")
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

// impl is one VRRP implementation under test.
type impl struct {
	name  string
	start func(l *lab, ns string, priority int) (*proc, error)
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
	lvsd := func(auth bool) func(l *lab, ns string, prio int) (*proc, error) {
		return func(l *lab, ns string, prio int) (*proc, error) {
			path := filepath.Join(l.dir, ns+".toml")
			if err := os.WriteFile(path, []byte(lvsdConfig(prio, filepath.Join(l.dir, ns+".sock"), auth)), 0o644); err != nil {
				return nil, err
			}
			return l.start(ns, append(append([]string{}, node...), path)...)
		}
	}
	ka := func(bin string, auth bool) func(l *lab, ns string, prio int) (*proc, error) {
		return func(l *lab, ns string, prio int) (*proc, error) {
			base := filepath.Join(l.dir, ns)
			if err := os.WriteFile(base+".conf", []byte(keepalivedConfig(prio, auth)), 0o644); err != nil {
				return nil, err
			}
			// A killed keepalived leaves pid files that stop the next start.
			for _, p := range []string{".pid", ".vrrp.pid", ".check.pid"} {
				os.Remove(base + p)
			}
			return l.start(ns, bin, "-n", "-l", "-D", "-P", "-f", base+".conf",
				"-p", base+".pid", "-r", base+".vrrp.pid", "-c", base+".check.pid")
		}
	}
	impls := []impl{{"lvsd", lvsd(false)}, {"lvsd+auth", lvsd(true)}, {"keepalived", ka(keepalived, false)}}
	if keepalived24 != "" {
		impls = append(impls, impl{"ka2.4+auth", ka(keepalived24, true)})
	}
	sk := time.Duration(int64(256-backupPr) * int64(interval) / 256)
	fmt.Printf("VRRP failover, advert_interval %v, master priority 200, backup %d, %d rounds each\n", interval, backupPr, rounds)
	fmt.Printf("targets: SIGKILL p99 <= 3*interval + skew + 20ms = %v; SIGTERM p99 <= skew + 20ms = %v\n\n",
		ms(3*interval+sk+20*time.Millisecond), ms(sk+20*time.Millisecond))
	fmt.Printf("%-10s %-8s %9s %9s %9s %9s %s\n", "impl", "signal", "p50", "p99", "min", "max", "failed")
	fmt.Println("  (keepalived: Debian's 2.2.7, unsigned; +auth: HMAC-SHA256 trailer, enforce, anti_replay time)")
	// One lab per implementation, rounds alternating between them, so
	// both see the same machine load (the CPU is shared).
	runs := make([]*series, len(impls))
	for i, im := range impls {
		l, err := newLab(filepath.Join(dir, im.name), i)
		if err != nil {
			return err
		}
		defer l.close()
		runs[i] = &series{impl: im, lab: l}
	}
	results := map[string][2]time.Duration{}
	for _, sig := range []syscall.Signal{syscall.SIGKILL, syscall.SIGTERM} {
		for _, s := range runs {
			if err := s.begin(); err != nil {
				return fmt.Errorf("%s: %w", s.impl.name, err)
			}
		}
		for r := 0; r < rounds; r++ {
			for _, s := range runs {
				if err := s.round(sig); err != nil {
					return fmt.Errorf("%s %v: %w", s.impl.name, sig, err)
				}
			}
		}
		for _, s := range runs {
			s.end()
			samples := s.samples
			sort.Slice(samples, func(i, j int) bool { return samples[i] < samples[j] })
			if len(samples) == 0 {
				fmt.Printf("%-10s %-8s no successful rounds (%d failed)\n", s.impl.name, sigName(sig), s.failed)
				continue
			}
			if verbose {
				fmt.Printf("%-10s %-8s samples %v\n", s.impl.name, sigName(sig), samples)
			}
			p50, p99 := percentile(samples, 50), percentile(samples, 99)
			results[s.impl.name+sigName(sig)] = [2]time.Duration{p50, p99}
			fmt.Printf("%-10s %-8s %9s %9s %9s %9s %d\n", s.impl.name, sigName(sig), ms(p50), ms(p99),
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
	fmt.Println("takeover p50/p99     auth off: lvsd      auth on: lvsd       keepalived 2.4.3 auth_hmac")
	for _, sig := range []string{"SIGKILL", "SIGTERM"} {
		cell := func(name string) string {
			r, ok := results[name+sig]
			if !ok {
				return "-"
			}
			return ms(r[0]) + " / " + ms(r[1])
		}
		fmt.Printf("%-20s %-19s %-19s %s\n", sig, cell("lvsd"), cell("lvsd+auth"), cell("ka2.4+auth"))
	}
	return nil
}

// series is the rounds of one implementation for one signal: the backup
// stays up; the master is restarted each round and preempts back.
type series struct {
	impl      impl
	lab       *lab
	backup    *proc
	backupMAC net.HardwareAddr
	samples   []time.Duration
	failed    int
}

func (s *series) begin() error {
	var err error
	s.samples, s.failed = nil, 0
	if s.backup, err = s.impl.start(s.lab, "d2", backupPr); err != nil {
		return err
	}
	s.backupMAC, err = s.lab.mac("d2")
	return err
}

func (s *series) end() { s.backup.stop() }

// round: master up and settled, signal it, time the backup's first GARP.
func (s *series) round(sig syscall.Signal) error {
	l := s.lab
	master, err := s.impl.start(l, "d1", 200)
	if err != nil {
		return err
	}
	defer master.stop()
	if !l.waitSettled(10 * time.Second) {
		s.failed++
		return nil
	}
	l.cap.drain()
	t0 := time.Now()
	if sig == syscall.SIGKILL {
		master.killGroup()
	} else {
		master.signal(sig)
	}
	at, ok := l.cap.waitGARP(s.backupMAC, vip, t0, 5*time.Second)
	if !ok || !l.holds("d2") {
		s.failed++
		return nil
	}
	s.samples = append(s.samples, at.Sub(t0))
	return nil
}

// waitSettled waits until d1 alone holds the VIP, then lets the backup hear
// a few adverts so it runs on the master's interval.
func (l *lab) waitSettled(timeout time.Duration) bool {
	end := time.Now().Add(timeout)
	for time.Now().Before(end) {
		if l.holds("d1") && !l.holds("d2") {
			time.Sleep(5 * interval)
			return l.holds("d1") && !l.holds("d2")
		}
		time.Sleep(20 * time.Millisecond)
	}
	return false
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

// benchKey signs the +auth rows (hex: the 32 bytes 0x00..0x1f).
const benchKey = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"

func lvsdConfig(prio int, socket string, auth bool) string {
	a := ""
	if auth {
		a = `
  [vrrp.auth]
  mode = "enforce"
  anti_replay = "time"
    [[vrrp.auth.key]]
    id = 1
    secret = "hex:` + benchKey + `"
`
	}
	return fmt.Sprintf(`[director]
interface = "eth0"
control_socket = %q
metrics_listen = ""

[[vrrp]]
name = "vi1"
vrid = 51
priority = %d
advert_interval = "100ms"
vips = ["%s/24"]
garp_repeat = 5
%s`, socket, prio, vip, a)
}

func keepalivedConfig(prio int, auth bool) string {
	a := ""
	if auth {
		a = `
  auth_hmac {
    key 1 hex:` + benchKey + `
    active_key 1
    anti_replay time
    mode enforce
  }`
	}
	return fmt.Sprintf(`global_defs {
  router_id bench
  vrrp_version 3
  vrrp_garp_master_repeat 5
}
vrrp_instance vi1 {
  state BACKUP
  interface eth0
  virtual_router_id 51
  priority %d
  advert_int 0.1%s
  virtual_ipaddress {
    %s/24
  }
}
`, prio, a, vip)
}

// proc is a node started in a namespace, in a process group of its own so
// SIGKILL also reaches keepalived's VRRP child.
type proc struct {
	cmd  *exec.Cmd
	done chan struct{}
}

func (p *proc) signal(sig syscall.Signal) { p.cmd.Process.Signal(sig) }

func (p *proc) killGroup() { syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL) }

// stop ends the node (SIGTERM, then SIGKILL after 3 s) and reaps it.
func (p *proc) stop() {
	select {
	case <-p.done:
		syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL) // keepalived's child, if orphaned
		return
	default:
	}
	syscall.Kill(-p.cmd.Process.Pid, syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(3 * time.Second):
		syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
		<-p.done
	}
}
