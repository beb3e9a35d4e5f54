package main

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/lvsd/lvsd/bench/internal/heldconns"
	"github.com/lvsd/lvsd/bench/internal/iplab"
)

// runECMPTrial puts the three directors through the events.
func runECMPTrial(o options, id int) (rows []heldconns.Event, err error) {
	l := &lab{o: o, id: id, Lab: iplab.Lab{Dir: filepath.Join(o.workdir, fmt.Sprintf("ecmp%d", id))}}
	defer l.Close()
	defer func() {
		if o.verbose || err != nil {
			for _, f := range []string{"rt-bird.log", "d1.log", "d2.log", "d3.log", "d2-bird.log"} {
				b, _ := os.ReadFile(filepath.Join(l.Dir, f))
				fmt.Printf("--- ecmp trial %d %s\n%s", id, f, b)
			}
		}
	}()
	if err := l.build(); err != nil {
		return nil, err
	}
	for _, d := range l.dirs {
		if err := l.startDirector(d); err != nil {
			return nil, err
		}
	}
	hops := func(want ...string) func() bool {
		return func() bool { return slices.Equal(l.nexthops(), want) }
	}
	if err := iplab.WaitUntil(90*time.Second, "the router to spread the VIP over d1, d2, d3", hops("d1", "d2", "d3")); err != nil {
		return nil, err
	}
	// bench/connsync's client, as connsync's events mode runs it.
	client, err := heldconns.StartEvents(l.client, l.o.connsync, fmt.Sprintf("%s:%d", vip, port), l.o.conns)
	if err != nil {
		return nil, err
	}
	defer client.Kill()
	d1, d2 := l.dirs[0], l.dirs[1]
	for _, ev := range events {
		start := time.Now()
		var done func() bool
		switch ev {
		case "rs":
			iplab.KillGroup(l.echo[2])
			done = func() bool {
				for _, d := range l.dirs {
					if l.weight(d, "10.50.0.23") != 0 {
						return false
					}
				}
				return true
			}
		case "kill":
			if err := iplab.IP("-n", l.sw, "link", "set", d2.port, "down"); err != nil {
				return rows, err
			}
			start = time.Now() // the exec above takes a while under TCG
			iplab.KillGroup(d2.lvsd)
			iplab.KillGroup(d2.bird)
			done = hops("d1", "d3")
		case "join":
			// A fresh machine: nothing left in its IPVS table.
			_, _ = iplab.In(d2.ns, "ipvsadm", "-C")
			if err := iplab.IP("-n", l.sw, "link", "set", d2.port, "up"); err != nil {
				return rows, err
			}
			if err := l.startDirector(d2); err != nil {
				return rows, err
			}
			done = hops("d1", "d2", "d3")
		case "quorum":
			if _, err := iplab.In(d1.ns, "nft", "add table inet ecmp; add chain inet ecmp out { type filter hook output priority 0; }; "+
				"add rule inet ecmp out ip saddr "+d1.ip+" tcp dport 80 drop"); err != nil {
				return rows, err
			}
			start = time.Now()
			done = hops("d2", "d3")
		}
		r, err := client.Measure(id, ev, start, done)
		if err != nil {
			return rows, err
		}
		rows = append(rows, r)
	}
	return rows, nil
}
