package main

// The client side of the benchmark: it holds long-lived TCP connections
// through the VIP, keeps a 10 ms request stream on one more connection
// (and, with -newconn, opens a new connection every interval), and on
// SIGUSR1 reports which connections still exchange data and the longest
// gap the streams saw. SIGUSR2 prints the same report for the time since
// the previous one and carries on: one report per event (bench/ecmp).

import (
	"bufio"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"slices"
	"sync"
	"syscall"
	"time"

	"github.com/lvsd/lvsd/bench/internal/heldconns"
)

func runClient(args []string) error {
	fs := flag.NewFlagSet("client", flag.ContinueOnError)
	target := fs.String("target", "", "VIP:port")
	n := fs.Int("n", 50, "long-lived connections to hold")
	probe := fs.Duration("probe", 0, "each held connection exchanges a line this often; 0 = idle after the first exchange")
	stream := fs.Duration("stream", 10*time.Millisecond, "request interval of the gap-measuring stream; 0 = no stream")
	settle := fs.Duration("settle", 3*time.Second, "run the stream this long before opening the held connections, so its own sync record is out")
	newconn := fs.Duration("newconn", 0, "also open a new connection this often (one exchange each); 0 = none")
	burst := fs.Int("burst", 0, "open the held connections at most this many at a time; 0 = all at once")
	refill := fs.Bool("refill", false, "after each SIGUSR2 report, replace the lost connections, so every event starts with -n")
	if err := fs.Parse(args); err != nil {
		return err
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var st streamStats
	if *stream > 0 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			st.run(*target, *stream, stop)
		}()
		time.Sleep(*settle)
	}
	nc := &newConns{last: time.Now()}
	if *newconn > 0 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			nc.run(*target, *newconn, stop)
		}()
	}

	// All connections open at once, as a burst of clients would: the
	// kernel batches their sync records into the same messages. Under the
	// VM's emulated CPU a burst of 200 loses SYNs past their retries;
	// -burst spreads it when the burst itself is not what is measured.
	conns := make([]net.Conn, *n)
	errs := openHeld(*target, conns, *burst, func(int) bool { return true })
	for i, err := range errs {
		if err != nil {
			return fmt.Errorf("connection %d: %w", i, err)
		}
	}

	var mu sync.Mutex
	dead := make([]bool, *n)
	if *probe > 0 {
		for i, c := range conns {
			wg.Add(1)
			go func() {
				defer wg.Done()
				t := time.NewTicker(*probe)
				defer t.Stop()
				for {
					select {
					case <-stop:
						return
					case <-t.C:
					}
					// A probe may ride out the takeover in TCP retransmits;
					// only a reset or a long silence marks it dead.
					if err := exchange(c, fmt.Sprintf("probe %d", i), 5*time.Second); err != nil {
						mu.Lock()
						dead[i] = true
						mu.Unlock()
						return
					}
				}
			}()
		}
	}
	// Listen for the signals before saying READY: the parent may ask for a
	// report at once, and Go drops a SIGUSR2 nobody is notified of.
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGUSR1, syscall.SIGUSR2, syscall.SIGTERM)
	fmt.Println("READY")
	alive := *n
	for {
		final := <-sig != syscall.SIGUSR2
		if final {
			close(stop)
			wg.Wait()
		}
		// Every live connection exchanges a line at once, as clients
		// do when they next speak after an event. A connection counts as
		// lost when it is reset or stays silent for 15 s: TCP retransmits
		// through a route that moved, and under the VM's emulated CPU a
		// few seconds of silence say nothing.
		rep := heldconns.Report{Total: alive}
		var ex sync.WaitGroup
		for i, c := range conns {
			mu.Lock()
			skip := dead[i]
			mu.Unlock()
			if skip {
				continue
			}
			ex.Add(1)
			go func() {
				defer ex.Done()
				if err := exchange(c, fmt.Sprintf("report %d", i), 15*time.Second); err != nil {
					var ne net.Error
					mu.Lock()
					dead[i] = true
					if errors.As(err, &ne) && ne.Timeout() {
						rep.Timeouts++
					}
					mu.Unlock()
				}
			}()
		}
		ex.Wait()
		mu.Lock()
		for i := range conns {
			if dead[i] {
				rep.Lost = append(rep.Lost, i)
			} else {
				rep.Survivors++
			}
		}
		mu.Unlock()
		alive = rep.Survivors
		if *refill && !final {
			mu.Lock()
			lost := slices.Clone(dead)
			mu.Unlock()
			for i, err := range openHeld(*target, conns, *burst, func(i int) bool { return lost[i] }) {
				if lost[i] && err == nil {
					mu.Lock()
					dead[i] = false
					mu.Unlock()
					rep.Refilled++
				}
			}
			alive += rep.Refilled
		}
		gap, reconnects, requests := st.take()
		rep.GapMS = float64(gap) / float64(time.Millisecond)
		rep.Reconnect, rep.Requests = reconnects, requests
		rep.NewConns, rep.NewFailed, rep.NewGapMS = nc.take()
		if err := json.NewEncoder(os.Stdout).Encode(rep); err != nil || final {
			for _, c := range conns {
				if c != nil {
					c.Close()
				}
			}
			return err
		}
	}
}

// openHeld opens conns[i] for every i that want selects, at most burst at
// a time (0: all at once), each with a first exchange, and returns their
// errors by index.
func openHeld(target string, conns []net.Conn, burst int, want func(int) bool) []error {
	errs := make([]error, len(conns))
	var open sync.WaitGroup
	slots := make(chan struct{}, max(burst, len(conns), 1))
	if burst > 0 {
		slots = make(chan struct{}, burst)
	}
	for i := range conns {
		if !want(i) {
			continue
		}
		open.Add(1)
		go func() {
			defer open.Done()
			slots <- struct{}{}
			defer func() { <-slots }()
			c, err := net.DialTimeout("tcp", target, 5*time.Second)
			if err == nil {
				err = exchange(c, fmt.Sprintf("hello %d", i), 5*time.Second)
			}
			if old := conns[i]; old != nil {
				old.Close()
			}
			conns[i], errs[i] = c, err
		}()
	}
	open.Wait()
	return errs
}

// newConns opens a new connection every interval, each in a goroutine of
// its own so a slow one never delays the next, and keeps the longest time
// between two that echoed: what a client that connects afresh sees.
type newConns struct {
	mu             sync.Mutex
	attempts, fail int
	last           time.Time // the last success
	maxGap         time.Duration
}

func (n *newConns) run(target string, interval time.Duration, stop <-chan struct{}) {
	t := time.NewTicker(interval)
	defer t.Stop()
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := net.DialTimeout("tcp", target, 2*time.Second)
			if err == nil {
				err = exchange(c, "n", 2*time.Second)
				c.Close()
			}
			n.mu.Lock()
			defer n.mu.Unlock()
			n.attempts++
			if err != nil {
				n.fail++
				return
			}
			now := time.Now()
			if gap := now.Sub(n.last); gap > n.maxGap {
				n.maxGap = gap
			}
			n.last = now
		}()
	}
}

// take returns the counts since the last take and starts afresh; a gap
// still open counts up to now.
func (n *newConns) take() (attempts, failed int, gapMS float64) {
	n.mu.Lock()
	defer n.mu.Unlock()
	gap := max(n.maxGap, time.Since(n.last))
	attempts, failed = n.attempts, n.fail
	n.attempts, n.fail, n.maxGap, n.last = 0, 0, 0, time.Now()
	if attempts == 0 {
		return 0, 0, 0
	}
	return attempts, failed, float64(gap) / float64(time.Millisecond)
}

// exchange writes one line and expects it echoed back within timeout.
func exchange(c net.Conn, line string, timeout time.Duration) error {
	c.SetDeadline(time.Now().Add(timeout))
	if _, err := io.WriteString(c, line+"\n"); err != nil {
		return err
	}
	got, err := bufio.NewReader(io.LimitReader(c, int64(len(line)+1))).ReadString('\n')
	if err != nil {
		return err
	}
	if got != line+"\n" {
		return fmt.Errorf("echo mismatch: %q", got)
	}
	return nil
}

// streamStats measures the client-seen failover time: requests every
// interval on one connection, reconnecting if it dies, and the longest
// time between two answered requests.
type streamStats struct {
	mu         sync.Mutex
	last       time.Time // the last reply
	maxGap     time.Duration
	reconnects int
	requests   int
}

// take returns the longest gap since the last call, a gap still open
// counting up to now, and starts afresh; and the counts so far.
func (s *streamStats) take() (gap time.Duration, reconnects, requests int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	gap = s.maxGap
	if !s.last.IsZero() {
		gap = max(gap, time.Since(s.last))
	}
	s.maxGap = 0
	return gap, s.reconnects, s.requests
}

func (s *streamStats) run(target string, interval time.Duration, stop <-chan struct{}) {
	s.mu.Lock()
	s.last = time.Now()
	s.mu.Unlock()
	var c net.Conn
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-stop:
			if c != nil {
				c.Close()
			}
			return
		case <-t.C:
		}
		if c == nil {
			var err error
			if c, err = net.DialTimeout("tcp", target, time.Second); err != nil {
				c = nil
				continue
			}
			s.mu.Lock()
			if s.requests > 0 {
				s.reconnects++
			}
			s.mu.Unlock()
		}
		s.mu.Lock()
		s.requests++
		s.mu.Unlock()
		if err := exchange(c, "s", time.Second); err != nil {
			c.Close()
			c = nil
			continue
		}
		now := time.Now()
		s.mu.Lock()
		if gap := now.Sub(s.last); gap > s.maxGap {
			s.maxGap = gap
		}
		s.last = now
		s.mu.Unlock()
	}
}

// runEcho serves line echo on every listed address until killed.
func runEcho(args []string) error {
	fs := flag.NewFlagSet("echo", flag.ContinueOnError)
	addr := fs.String("listen", ":80", "address to listen on")
	if err := fs.Parse(args); err != nil {
		return err
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return err
	}
	for {
		c, err := ln.Accept()
		if err != nil {
			return err
		}
		go func() {
			defer c.Close()
			io.Copy(c, c)
		}()
	}
}
