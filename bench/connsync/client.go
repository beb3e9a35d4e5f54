package main

// The client side of the benchmark: it holds long-lived TCP connections
// through the VIP, keeps a 10 ms request stream on one more connection, and
// on SIGUSR1 reports which connections still exchange data and the longest
// gap the stream saw.

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"
)

// clientReport is what the client prints as one JSON line when told to stop.
type clientReport struct {
	Total     int     `json:"total"`
	Survivors int     `json:"survivors"`
	Lost      []int   `json:"lost"`      // indexes of dead connections
	GapMS     float64 `json:"gap_ms"`    // longest time without a stream reply
	Reconnect int     `json:"reconnect"` // times the stream had to reconnect
	Requests  int     `json:"requests"`
}

func runClient(args []string) error {
	fs := flag.NewFlagSet("client", flag.ContinueOnError)
	target := fs.String("target", "", "VIP:port")
	n := fs.Int("n", 50, "long-lived connections to hold")
	probe := fs.Duration("probe", 0, "each held connection exchanges a line this often; 0 = idle after the first exchange")
	stream := fs.Duration("stream", 10*time.Millisecond, "request interval of the gap-measuring stream; 0 = no stream")
	settle := fs.Duration("settle", 3*time.Second, "run the stream this long before opening the held connections, so its own sync record is out")
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

	// All connections open at once, as a burst of clients would: the
	// kernel batches their sync records into the same messages.
	conns := make([]net.Conn, *n)
	errs := make([]error, *n)
	var open sync.WaitGroup
	for i := range conns {
		open.Add(1)
		go func() {
			defer open.Done()
			c, err := net.DialTimeout("tcp", *target, 5*time.Second)
			if err == nil {
				err = exchange(c, fmt.Sprintf("hello %d", i), 5*time.Second)
			}
			conns[i], errs[i] = c, err
		}()
	}
	open.Wait()
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
	fmt.Println("READY")
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGUSR1, syscall.SIGTERM)
	<-sig
	close(stop)
	wg.Wait()

	rep := clientReport{Total: *n}
	for i, c := range conns {
		if !dead[i] && exchange(c, fmt.Sprintf("final %d", i), 3*time.Second) == nil {
			rep.Survivors++
		} else {
			rep.Lost = append(rep.Lost, i)
		}
		c.Close()
	}
	rep.GapMS = float64(st.maxGap) / float64(time.Millisecond)
	rep.Reconnect, rep.Requests = st.reconnects, st.requests
	return json.NewEncoder(os.Stdout).Encode(rep)
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
	maxGap     time.Duration
	reconnects int
	requests   int
}

func (s *streamStats) run(target string, interval time.Duration, stop <-chan struct{}) {
	last := time.Now()
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
			if s.requests > 0 {
				s.reconnects++
			}
		}
		s.requests++
		if err := exchange(c, "s", time.Second); err != nil {
			c.Close()
			c = nil
			continue
		}
		now := time.Now()
		if gap := now.Sub(last); gap > s.maxGap {
			s.maxGap = gap
		}
		last = now
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
