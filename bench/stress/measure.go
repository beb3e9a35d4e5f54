package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/lvsd/lvsd/bench/internal/vrrppair"
	"github.com/lvsd/lvsd/internal/lab"
)

const (
	masterPrio  = 200
	backupPrio  = 100
	lvsdMetrics = "127.0.0.1:9910" // inside each director's namespace
)

// side is one implementation's pair during one advert interval.
type side struct {
	impl           vrrppair.Impl
	pair           *vrrppair.Pair
	master, backup *lab.Proc
	adverts        *advertLog
	capture        *lab.Capture

	// lvsd only: the nodes that run checks, and their metrics around the window.
	checked        []*lab.NS
	checks         int
	checkInterval  time.Duration
	before, after  map[*lab.NS]lvsdCounters
	reloads        int
	reloadFailures int

	result sideResult
}

// sideResult is what one implementation did in one window.
type sideResult struct {
	heard          int    // master adverts the backup's link received
	lateness       spread // of those adverts
	longGaps       int    // gaps longer than the backup's Master_Down_Interval
	falseFailovers int    // runs of adverts the backup sent as master
	backupAdverts  int
	backupMaster   time.Duration // how long the backup acted as master, summed over its takeovers
	drops          uint64        // frames the capture lost
	falseEvictions int           // lvsd: transitions to down
	upBefore       int           // lvsd: real servers up on the checked nodes before the load
	probes         float64
	scheduled      float64 // probes due between the two scrapes, on all checked nodes
	probesFailed   float64
	skipped        float64
	reloads        int
	reloadFailures int
	masterSched    schedstat // the master's threads over the window
	takeovers      []time.Duration
	failedKills    int
}

// row is one advert interval's results.
type row struct {
	interval      time.Duration
	window        time.Duration
	masterDown    time.Duration // the backup's Master_Down_Interval
	bound         time.Duration // issue 11's takeover goal: 3 × interval + skew + 10 ms
	steal         float64
	stressCPU     time.Duration // CPU time stress-ng's workers used in the window
	vmCPU         time.Duration // and the VM's qemu
	busy          float64       // share of CPU time not idle
	checks        int           // per checked lvsd node
	checkInterval time.Duration
	checkNodes    int
	lvsd, ka      sideResult
}

// measure runs one advert interval: both pairs up and settled, checks
// up, load on, the window, then the SIGKILL rounds.
func measure(o *options, interval time.Duration, dir string) (*row, error) {
	machines := &lab.Lab{}
	defer machines.Close()
	skew := vrrppair.Skew(interval, backupPrio)
	r := &row{interval: interval, window: o.duration, masterDown: 3*interval + skew, bound: 3*interval + skew + 10*time.Millisecond}
	fmt.Printf("\n%v adverts: building the labs\n", interval)

	lvsdCmd := []string{o.lvsd, "run", "-config"}
	if o.lvsdNice != 0 {
		lvsdCmd = append([]string{"nice", "-n", strconv.Itoa(o.lvsdNice)}, lvsdCmd...)
	}
	po := vrrppair.Options{
		Interval: interval, Lvsd: lvsdCmd, Keepalived: o.keepalived,
		LvsdMetrics: lvsdMetrics, LvsdDirector: o.lvsdDirector, LvsdVRRP: o.lvsdVRRP,
		LvsdEnv:          append([]string{"LVSD_IPVS_BACKEND=memory"}, o.lvsdEnv...),
		KeepalivedGlobal: o.keepalivedGlobal, KeepalivedDetail: o.keepalivedDetail, Settle: 2 * time.Minute,
	}
	var lvsd, ka *side
	for _, impl := range []vrrppair.Impl{vrrppair.Lvsd, vrrppair.Keepalived} {
		s := &side{impl: impl, before: map[*lab.NS]lvsdCounters{}, after: map[*lab.NS]lvsdCounters{},
			checks: o.checks.n, checkInterval: o.checks.interval}
		popts := po
		if impl == vrrppair.Lvsd && o.checks.n > 0 {
			popts.LvsdExtra = func(node *lab.NS) string {
				for _, n := range s.checked {
					if n == node {
						return o.checks.services(vrrppair.VIP)
					}
				}
				return ""
			}
		}
		p, err := vrrppair.New(machines, impl, filepath.Join(dir, string(impl)), popts)
		if err != nil {
			return nil, err
		}
		s.pair = p
		if impl == vrrppair.Lvsd && o.checks.n > 0 {
			switch o.checksOn {
			case "both":
				s.checked = []*lab.NS{p.D1, p.D2}
			case "master":
				s.checked = []*lab.NS{p.D1}
			case "backup":
				s.checked = []*lab.NS{p.D2}
			}
			for _, n := range s.checked {
				if _, err := startListeners(n, &o.checks, dir); err != nil {
					return nil, err
				}
			}
		}
		if s.capture, err = p.D2.Capture("eth0", unix.ETH_P_IP, 50*time.Millisecond); err != nil {
			return nil, err
		}
		s.adverts = recordAdverts(s.capture, vrrppair.MasterAddr, vrrppair.BackupAddr, vrrppair.VRID)
		defer s.adverts.close()
		if impl == vrrppair.Lvsd {
			lvsd = s
		} else {
			ka = s
		}
	}
	sides := []*side{lvsd, ka}
	r.checks, r.checkNodes, r.checkInterval = o.checks.n, len(lvsd.checked), o.checks.interval

	for _, s := range sides {
		var err error
		if s.master, err = s.pair.Start(s.pair.D1, masterPrio); err != nil {
			return nil, err
		}
		if s.backup, err = s.pair.Start(s.pair.D2, backupPrio); err != nil {
			return nil, err
		}
	}
	for _, s := range sides {
		if !s.pair.WaitSettled(2 * time.Minute) {
			return nil, fmt.Errorf("%s: the pair did not settle with d1 master:\n%s", s.impl, s.master.Tail(20))
		}
	}
	for _, n := range lvsd.checked {
		up, err := waitChecksUp(n, o.checks.n, 30*time.Second)
		if err != nil {
			return nil, fmt.Errorf("lvsd %s: %w", n.Role, err)
		}
		if up < o.checks.n {
			fmt.Printf("%v adverts: lvsd %s has only %d of %d real servers up after 30 s, before any load; going on\n", interval, n.Role, up, o.checks.n)
		}
		lvsd.result.upBefore += up
	}

	fmt.Printf("%v adverts: pairs settled; load on\n", interval)
	ld, err := startLoad(machines, o.stress, o.vm, dir)
	if err != nil {
		return nil, err
	}
	defer ld.stop()
	time.Sleep(o.settle)

	for _, n := range lvsd.checked {
		c, err := scrape(n, lvsdMetrics)
		if err != nil {
			return nil, fmt.Errorf("lvsd %s metrics: %w", n.Role, err)
		}
		lvsd.before[n] = c
	}
	cpu0, err := readCPUTimes()
	if err != nil {
		return nil, err
	}
	stress0, vm0 := ld.cpu()
	sched0 := map[*side]schedstat{}
	for _, s := range sides {
		sched0[s] = groupSchedstat(s.master.Pid())
	}
	from := time.Now()
	fmt.Printf("%v adverts: window of %v from %s\n", interval, o.duration, from.Format("15:04:05"))
	lvsd.runWindow(o, from.Add(o.duration))
	to := time.Now()
	cpu1, err := readCPUTimes()
	if err != nil {
		return nil, err
	}
	r.steal = stealShare(cpu0, cpu1)
	stress1, vm1 := ld.cpu()
	r.stressCPU, r.vmCPU = stress1-stress0, vm1-vm0
	if cpu1.total > cpu0.total {
		r.busy = 1 - float64(cpu1.idle-cpu0.idle)/float64(cpu1.total-cpu0.total)
	}
	for _, s := range sides {
		s.result.masterSched = groupSchedstat(s.master.Pid()).sub(sched0[s])
	}
	for _, n := range lvsd.checked {
		c, err := scrape(n, lvsdMetrics)
		if err != nil {
			return nil, fmt.Errorf("lvsd %s metrics: %w", n.Role, err)
		}
		lvsd.after[n] = c
	}
	for _, s := range sides {
		s.analyse(interval, r.masterDown, from, to)
	}

	fmt.Printf("%v adverts: window over; %d SIGKILL takeovers each\n", interval, o.killRounds)
	for round := range o.killRounds {
		order := sides
		if round%2 == 1 {
			order = []*side{ka, lvsd}
		}
		for _, s := range order {
			if err := s.killRound(round); err != nil {
				return nil, fmt.Errorf("%s: %w", s.impl, err)
			}
		}
	}
	ld.stop()
	r.lvsd, r.ka = lvsd.result, ka.result
	return r, nil
}

// runWindow reloads the checked lvsd nodes every o.reload until end.
func (s *side) runWindow(o *options, end time.Time) {
	if o.reload <= 0 || len(s.checked) == 0 {
		time.Sleep(time.Until(end))
		return
	}
	tick := time.NewTicker(o.reload)
	defer tick.Stop()
	timer := time.NewTimer(time.Until(end))
	defer timer.Stop()
	for {
		select {
		case <-timer.C:
			return
		case <-tick.C:
			o.checks.generation.Add(1)
			for _, n := range s.checked {
				p, prio := s.master, masterPrio
				if n == s.pair.D2 {
					p, prio = s.backup, backupPrio
				}
				if err := s.pair.WriteConfig(n, prio); err != nil {
					fmt.Fprintf(os.Stderr, "bench-stress: write %s's config: %v\n", n.Role, err)
					continue
				}
				if err := p.Cmd.Process.Signal(syscall.SIGHUP); err == nil {
					s.reloads++
				}
			}
		}
	}
}

// analyse reads the window's adverts and metrics into s.result.
func (s *side) analyse(interval, masterDown time.Duration, from, to time.Time) {
	res := &s.result
	fromPeer, sent := s.adverts.window(from, to)
	res.heard = len(fromPeer)
	res.lateness = spreadOf(lateness(fromPeer, interval))
	res.longGaps = longGaps(fromPeer, masterDown)
	res.backupAdverts = len(sent)
	// A backup that stepped down cannot take over again before a
	// Master_Down_Interval without adverts: its adverts closer together
	// than that are one takeover.
	res.falseFailovers = episodes(sent, masterDown)
	res.backupMaster = mastership(sent, masterDown, interval)
	if _, drops, err := s.capture.Stats(); err == nil {
		res.drops = drops
	}
	res.reloads = s.reloads
	for _, n := range s.checked {
		b, a := s.before[n], s.after[n]
		res.falseEvictions += int(a.downs - b.downs)
		res.probes += a.probesOK + a.probesFail - b.probesOK - b.probesFail
		res.scheduled += float64(s.checks) * a.at.Sub(b.at).Seconds() / s.checkInterval.Seconds()
		res.probesFailed += a.probesFail - b.probesFail
		res.skipped += a.skipped - b.skipped
		if !a.reloadOK {
			res.reloadFailures++
		}
	}
}

// killRound SIGKILLs the master and times the takeover. The first round
// kills the master that ran through the window; later ones start a new
// master, which preempts the VIP back first.
func (s *side) killRound(round int) error {
	if round > 0 {
		m, err := s.pair.Start(s.pair.D1, masterPrio)
		if err != nil {
			return err
		}
		s.master = m
	}
	d, ok := s.pair.Takeover(s.master, syscall.SIGKILL, 5*time.Second)
	s.master.Stop()
	if !ok {
		s.result.failedKills++
		return nil
	}
	s.result.takeovers = append(s.result.takeovers, d)
	return nil
}

// waitChecksUp waits up to timeout until node's lvsd reports n real
// servers up, and returns how many are up then. Every listener is up, so
// any that are not are lvsd's own doing (probes it failed for being late):
// the window counts them as they fall again.
func waitChecksUp(node *lab.NS, n int, timeout time.Duration) (int, error) {
	deadline := time.Now().Add(timeout)
	for {
		c, err := scrape(node, lvsdMetrics)
		if err == nil && (c.up >= n || time.Now().After(deadline)) {
			return c.up, nil
		}
		if err != nil && time.Now().After(deadline) {
			return 0, fmt.Errorf("metrics: %w", err)
		}
		time.Sleep(2 * time.Second)
	}
}
