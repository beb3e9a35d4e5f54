package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"syscall"
	"time"
)

// settle is how long the held connections stay idle after an event before
// the client reports, as in bench/connsync's events mode.
const settle = 5 * time.Second

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// runECMPTrial puts the three directors through the events.
func runECMPTrial(o options, id int) (rows []row, err error) {
	l := &lab{o: o, id: id, dir: filepath.Join(o.workdir, fmt.Sprintf("ecmp%d", id))}
	defer l.close()
	defer func() {
		if o.verbose || err != nil {
			for _, f := range []string{"rt-bird.log", "d1.log", "d2.log", "d3.log", "d2-bird.log"} {
				b, _ := os.ReadFile(filepath.Join(l.dir, f))
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
	if err := waitUntil(90*time.Second, "the router to spread the VIP over d1, d2, d3", hops("d1", "d2", "d3")); err != nil {
		return nil, err
	}
	client, report, err := l.startClient()
	if err != nil {
		return nil, err
	}
	defer client.Process.Kill()
	d1, d2 := l.dirs[0], l.dirs[1]
	for _, ev := range events {
		start := time.Now()
		var done func() bool
		switch ev {
		case "rs":
			killGroup(l.echo[2])
			done = func() bool {
				for _, d := range l.dirs {
					if l.weight(d, "10.50.0.23") != 0 {
						return false
					}
				}
				return true
			}
		case "kill":
			if _, err := run("ip", "-n", l.sw, "link", "set", d2.port, "down"); err != nil {
				return rows, err
			}
			start = time.Now() // the exec above takes a while under TCG
			killGroup(d2.lvsd)
			killGroup(d2.bird)
			done = hops("d1", "d3")
		case "join":
			// A fresh machine: nothing left in its IPVS table.
			_, _ = in(d2.ns, "ipvsadm", "-C")
			if _, err := run("ip", "-n", l.sw, "link", "set", d2.port, "up"); err != nil {
				return rows, err
			}
			if err := l.startDirector(d2); err != nil {
				return rows, err
			}
			done = hops("d1", "d2", "d3")
		case "quorum":
			if _, err := in(d1.ns, "nft", "add table inet ecmp; add chain inet ecmp out { type filter hook output priority 0; }; "+
				"add rule inet ecmp out ip saddr "+d1.ip+" tcp dport 80 drop"); err != nil {
				return rows, err
			}
			start = time.Now()
			done = hops("d2", "d3")
		}
		r := row{Trial: id, Event: ev}
		if err := waitUntil(60*time.Second, ev+" to be done", done); err != nil {
			r.Err = err.Error()
		}
		r.TookMS = ms(time.Since(start))
		time.Sleep(settle)
		if r.Report, err = report(); err != nil {
			return rows, err
		}
		rows = append(rows, r)
	}
	return rows, nil
}

// startClient runs bench/connsync's client in the client namespace, as
// connsync's events mode does, and returns a function that asks for the
// report of the time since the last one.
func (l *lab) startClient() (*exec.Cmd, func() (clientReport, error), error) {
	cmd := exec.Command("ip", "netns", "exec", l.client, l.o.connsync, "client",
		"-target", fmt.Sprintf("%s:%d", vip, port), "-n", fmt.Sprint(l.o.conns), "-probe", "0",
		"-stream", "10ms", "-newconn", "50ms", "-settle", "1s", "-burst", "20", "-refill")
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	cmd.Stderr = os.Stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, nil, err
	}
	lines := bufio.NewScanner(stdout)
	if !lines.Scan() || lines.Text() != "READY" {
		cmd.Process.Kill()
		cmd.Wait()
		return nil, nil, fmt.Errorf("client could not open its connections: %q", lines.Text())
	}
	report := func() (clientReport, error) {
		var r clientReport
		if err := cmd.Process.Signal(syscall.SIGUSR2); err != nil {
			return r, err
		}
		if !lines.Scan() {
			return r, fmt.Errorf("client gave no report")
		}
		return r, json.Unmarshal(lines.Bytes(), &r)
	}
	return cmd, report, nil
}
