package main

// Events mode (-events): the lvsd pair with connection sync through the
// events bench/ecmp puts active-active directors through, one client report
// per event, so the two designs are compared on the same bad day in one VM
// run. The events, in the order given:
//
//   - rs: the last real server's echo server is SIGKILLed; done when both
//     directors have evicted it;
//   - kill: the master (d1) loses its link and lvsd is SIGKILLed; done when
//     the backup holds the VIP;
//   - join: d1 comes back as a fresh machine (its kernel's IPVS table and
//     sync daemons cleared, as after a reboot), preempts when its first
//     checks are in, and takes the VIP back; done when it holds it;
//   - quorum: the master's probes are dropped (nftables), its checks fail,
//     track_services gives the VIP up; done when the other director holds
//     it.
//
// After each event the client's connections stay idle for heldconns.Settle
// (the dead master's last sync records, if any, arrive meanwhile), then the
// client reports: held connections that still exchange data, and the
// longest gap its 10 ms stream and its new connections saw.

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/lvsd/lvsd/bench/internal/heldconns"
	"github.com/lvsd/lvsd/bench/internal/iplab"
	"github.com/lvsd/lvsd/director"
)

func runEvents(o benchOpts) error {
	if o.forwarding != "dr" {
		return fmt.Errorf("-events needs -forwarding dr")
	}
	fmt.Printf("connsync events: lvsd pair, %d connections, %d real servers, advert %v, events %s, %d rounds\n",
		o.conns, o.reals, o.advert, strings.Join(o.events, ","), o.rounds)
	failed := 0
	for id := 1; id <= o.rounds; id++ {
		rows, err := runEventTrial(o, id)
		for _, r := range rows {
			if o.json {
				b, _ := json.Marshal(r)
				fmt.Printf("%s%s\n", heldconns.EventPrefix, b)
			}
			fmt.Printf("  trial %d %-7s survivors %3d/%-3d  took %6.0f ms  stream gap %6.0f ms  new connections %d/%d failed, gap %6.0f ms %s\n",
				id, r.Event, r.Report.Survivors, r.Report.Total, r.TookMS, r.Report.GapMS, r.Report.NewFailed, r.Report.NewConns, r.Report.NewGapMS, r.Err)
		}
		if err != nil {
			failed++
			fmt.Printf("  trial %d error: %v\n", id, err)
		}
	}
	if failed == o.rounds {
		return fmt.Errorf("every trial failed")
	}
	return nil
}

func runEventTrial(o benchOpts, id int) (rows []heldconns.Event, err error) {
	l := &lab{o: o, id: id, Lab: iplab.Lab{Dir: filepath.Join(o.workdir, fmt.Sprintf("events%d", id))}}
	defer l.Close()
	defer func() {
		if o.verbose || err != nil {
			for _, f := range []string{"d1.log", "d2.log"} {
				b, _ := os.ReadFile(filepath.Join(l.Dir, f))
				fmt.Printf("--- events trial %d %s\n%s", id, f, b)
			}
		}
	}()
	if err := os.MkdirAll(l.Dir, 0o755); err != nil {
		return nil, err
	}
	if err := l.build(); err != nil {
		return nil, err
	}
	d1, err := l.startDirector("lvsd", l.d1, "d1", 150)
	if err != nil {
		return nil, err
	}
	if err := iplab.WaitUntil(30*time.Second, "d1 to hold the VIP", func() bool { return holds(l.d1) }); err != nil {
		return nil, err
	}
	if _, err := l.startDirector("lvsd", l.d2, "d2", 100); err != nil {
		return nil, err
	}
	if err := iplab.WaitUntil(30*time.Second, "a backup sync daemon and the service on d2", func() bool {
		d, _ := iplab.In(l.d2, "ipvsadm", "-L", "-n", "--daemon")
		t, _ := iplab.In(l.d2, "ipvsadm", "-L", "-n")
		return strings.Contains(d, "backup sync daemon") && strings.Count(t, "-> 10.7.") == len(l.rs)
	}); err != nil {
		return nil, err
	}

	client, err := heldconns.StartEvents(l.client, o.self, fmt.Sprintf("%s:%d", benchVIP, benchPort), o.conns)
	if err != nil {
		return nil, err
	}
	defer client.Kill()
	master, backup := l.d1, l.d2
	for _, ev := range o.events {
		start := time.Now()
		var done func() bool
		switch ev {
		case "rs":
			last := len(l.rs) - 1
			iplab.KillGroup(l.echo[last])
			rip := l.realAddrs()[last]
			done = func() bool { return !serving(l.d1, rip) && !serving(l.d2, rip) }
		case "kill":
			if master != l.d1 {
				return rows, fmt.Errorf("kill: d1 is not the master")
			}
			if err := iplab.IP("-n", l.name("sw"), "link", "set", "p0", "down"); err != nil {
				return rows, err
			}
			start = time.Now() // the exec above takes a while under TCG
			iplab.KillGroup(d1)
			done = func() bool { return holds(l.d2) }
			master, backup = l.d2, l.d1
		case "join":
			// A fresh machine: no connections, no sync daemons left.
			for _, argv := range [][]string{
				{"ipvsadm", "--stop-daemon", "master"}, {"ipvsadm", "--stop-daemon", "backup"}, {"ipvsadm", "-C"},
			} {
				_, _ = iplab.In(l.d1, argv...)
			}
			if err := iplab.IP("-n", l.name("sw"), "link", "set", "p0", "up"); err != nil {
				return rows, err
			}
			if d1, err = l.startDirector("lvsd", l.d1, "d1", 150); err != nil {
				return rows, err
			}
			done = func() bool { return holds(l.d1) && !holds(l.d2) }
			master, backup = l.d1, l.d2
		case "quorum":
			ip := "10.7.0.1"
			if master == l.d2 {
				ip = "10.7.0.2"
			}
			if _, err := iplab.In(master, "nft", "add table inet connsync; add chain inet connsync out { type filter hook output priority 0; }; "+
				"add rule inet connsync out ip saddr "+ip+" tcp dport 80 drop"); err != nil {
				return rows, err
			}
			start = time.Now()
			b := backup
			done = func() bool { return holds(b) }
			master, backup = backup, master
		default:
			return rows, fmt.Errorf("unknown event %q (want rs, kill, join or quorum)", ev)
		}
		row, err := client.Measure(id, ev, start, done)
		if err != nil {
			return rows, err
		}
		rows = append(rows, row)
	}
	return rows, nil
}

// serving reports whether ns's IPVS table sends new connections to rip
// (present with a weight above 0), read over netlink, not with ipvsadm:
// an exec costs most of a second under the VM's emulated CPU.
func serving(ns, rip string) bool {
	k, err := director.OpenKernelAt("/run/netns/" + ns)
	if err != nil {
		return true
	}
	defer k.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	svcs, err := k.Dump(ctx)
	if err != nil {
		return true
	}
	for _, s := range svcs {
		for _, d := range s.Dests {
			if d.Addr.Addr().String() == rip && d.Weight > 0 {
				return true
			}
		}
	}
	return false
}
