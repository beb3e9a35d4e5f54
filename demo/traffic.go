package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/miekg/dns"
)

const burstGap = 50 * time.Millisecond

// client sends the demo's traffic from inside the client host. Every HTTP
// request is a new connection, which is what IPVS schedules.
type client struct {
	h    *host
	http *http.Client
	url  string
}

func newClient(h *host, vip string, timeout time.Duration) *client {
	return &client{
		h:   h,
		url: "http://" + vip + "/",
		http: &http.Client{
			Timeout:   timeout,
			Transport: &http.Transport{DialContext: h.DialContext, DisableKeepAlives: true},
		},
	}
}

// get does one request and returns the name of the real server that answered.
func (c *client) get(ctx context.Context) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.url, nil)
	if err != nil {
		return "", err
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1024))
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("HTTP %s", resp.Status)
	}
	return strings.TrimSpace(string(body)), nil
}

// tally counts answers per real server and failures of a series of requests.
type tally struct {
	byServer map[string]int
	failed   int
	lastErr  error
	failures []result
}

func (t tally) total() int {
	n := t.failed
	for _, c := range t.byServer {
		n += c
	}
	return n
}

// String lists the servers in name order: "rs1 20, rs2 20, rs3 20".
func (t tally) String() string {
	names := make([]string, 0, len(t.byServer))
	for n := range t.byServer {
		names = append(names, n)
	}
	sort.Strings(names)
	parts := make([]string, 0, len(names))
	for _, n := range names {
		parts = append(parts, fmt.Sprintf("%s %d", n, t.byServer[n]))
	}
	if len(parts) == 0 {
		return "none answered"
	}
	return strings.Join(parts, ", ")
}

// burst sends n requests one after the other, burstGap apart: back to back
// they would keep an emulated CPU busy and delay the directors' adverts.
func (c *client) burst(n int) tally {
	t := tally{byServer: map[string]int{}}
	for i := range n {
		if i > 0 {
			time.Sleep(burstGap)
		}
		start := time.Now()
		server, err := c.get(context.Background())
		if err != nil {
			t.failed++
			t.lastErr = err
			t.failures = append(t.failures, result{start: start, end: time.Now(), err: err})
			continue
		}
		t.byServer[server]++
	}
	return t
}

// result is one request of a stream.
type result struct {
	start, end time.Time
	err        error
}

// stream sends a DNS query through the VIP every `every` until stopped, all
// from one UDP socket, and matches answers to queries by message id. DNS
// keeps the stream cheap: under the VM's emulated CPU an HTTP request costs
// tens of milliseconds on each side, a query to dnsmasq almost nothing, and
// the demo must not starve the directors it measures. The service is
// one-packet, so IPVS schedules every query afresh, as it would a new
// connection.
type stream struct {
	conn    net.Conn
	every   time.Duration
	timeout time.Duration
	query   *dns.Msg
	quiet   chan struct{} // closed: send no more queries
	stopped chan struct{} // closed: stop reading answers
	sending sync.WaitGroup
	done    sync.WaitGroup

	mu      sync.Mutex
	pending map[uint16]time.Time
	results []result
}

func (c *client) startStream(server, name string, every, timeout time.Duration) (*stream, error) {
	conn, err := c.h.DialContext(context.Background(), "udp", server)
	if err != nil {
		return nil, err
	}
	s := &stream{conn: conn, every: every, timeout: timeout, quiet: make(chan struct{}), stopped: make(chan struct{}), pending: map[uint16]time.Time{}}
	s.query = new(dns.Msg)
	s.query.SetQuestion(dns.Fqdn(name), dns.TypeA)
	s.sending.Add(1)
	s.done.Add(1)
	go s.send()
	go s.receive()
	return s, nil
}

func (s *stream) send() {
	defer s.sending.Done()
	tick := time.NewTicker(s.every)
	defer tick.Stop()
	for id := uint16(1); ; id++ {
		select {
		case <-s.quiet:
			return
		case <-tick.C:
		}
		q := s.query.Copy()
		q.Id = id
		wire, err := q.Pack()
		// Pending before the write: the answer can come back before this
		// goroutine runs again.
		now := time.Now()
		s.mu.Lock()
		s.pending[id] = now
		s.mu.Unlock()
		if err == nil {
			_, err = s.conn.Write(wire)
		}
		if err != nil {
			s.mu.Lock()
			delete(s.pending, id)
			s.results = append(s.results, result{start: now, end: now, err: err})
			s.mu.Unlock()
		}
	}
}

func (s *stream) receive() {
	defer s.done.Done()
	buf := make([]byte, 1500)
	for {
		select {
		case <-s.stopped:
			return
		default:
		}
		s.conn.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
		n, err := s.conn.Read(buf)
		if err != nil {
			// Timeouts let the loop notice stop; ICMP errors (a director
			// without the service) only mean a query was lost, which its
			// missing answer already records.
			continue
		}
		now := time.Now()
		var r dns.Msg
		if r.Unpack(buf[:n]) != nil {
			continue
		}
		s.mu.Lock()
		if sent, ok := s.pending[r.Id]; ok {
			delete(s.pending, r.Id)
			res := result{start: sent, end: now}
			switch {
			case r.Rcode != dns.RcodeSuccess:
				res.err = fmt.Errorf("rcode %s", dns.RcodeToString[r.Rcode])
			case now.Sub(sent) > s.timeout:
				res.err = fmt.Errorf("answered after %v, over the %v timeout", now.Sub(sent).Round(time.Millisecond), s.timeout)
			}
			s.results = append(s.results, res)
		}
		s.mu.Unlock()
	}
}

// stop ends the stream, waits out the timeout for answers still on their
// way, and returns the results in order of sending. A query never answered
// is a failure.
func (s *stream) stop() []result {
	close(s.quiet)
	s.sending.Wait()
	time.Sleep(s.timeout)
	close(s.stopped)
	s.done.Wait()
	s.conn.Close()
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, sent := range s.pending {
		s.results = append(s.results, result{start: sent, err: fmt.Errorf("no answer within %v", s.timeout)})
	}
	sort.Slice(s.results, func(i, j int) bool { return s.results[i].start.Before(s.results[j].start) })
	return s.results
}

// outage describes the failed requests of a stream.
type outage struct {
	total, failed int
	// firstFail and lastFail are the start times of the first and last
	// failed request.
	firstFail, lastFail time.Time
	// gap is how long no request succeeded: from the start of the last
	// success before the first failure to the start of the first success
	// after the last failure. It is zero when nothing failed.
	gap     time.Duration
	lastErr error
}

func analyse(results []result) outage {
	o := outage{total: len(results)}
	var lastOKBefore, firstOKAfter time.Time
	for _, r := range results {
		if r.err != nil {
			o.failed++
			o.lastErr = r.err
			if o.firstFail.IsZero() {
				o.firstFail = r.start
			}
			o.lastFail = r.start
		}
	}
	if o.failed == 0 {
		return o
	}
	for _, r := range results {
		if r.err != nil {
			continue
		}
		if r.start.Before(o.firstFail) {
			lastOKBefore = r.start
		}
		if r.start.After(o.lastFail) && firstOKAfter.IsZero() {
			firstOKAfter = r.start
		}
	}
	switch {
	case lastOKBefore.IsZero() || firstOKAfter.IsZero():
		o.gap = -1 // the stream did not see both ends of the outage
	default:
		o.gap = firstOKAfter.Sub(lastOKBefore)
	}
	return o
}

// failedOutside returns the failed requests that started outside [from, to].
func failedOutside(results []result, from, to time.Time) []result {
	var out []result
	for _, r := range results {
		if r.err != nil && (r.start.Before(from) || r.start.After(to)) {
			out = append(out, r)
		}
	}
	return out
}

// queryDNS asks server (ip:port) for name's A record over UDP from inside
// the client host and returns the answer's addresses.
func (c *client) queryDNS(server, name string, timeout time.Duration) ([]string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	conn, err := c.h.DialContext(ctx, "udp", server)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(timeout))
	q := new(dns.Msg)
	q.SetQuestion(dns.Fqdn(name), dns.TypeA)
	dc := &dns.Conn{Conn: conn}
	if err := dc.WriteMsg(q); err != nil {
		return nil, err
	}
	r, err := dc.ReadMsg()
	if err != nil {
		return nil, err
	}
	if r.Rcode != dns.RcodeSuccess {
		return nil, fmt.Errorf("rcode %s", dns.RcodeToString[r.Rcode])
	}
	var addrs []string
	for _, rr := range r.Answer {
		if a, ok := rr.(*dns.A); ok {
			addrs = append(addrs, a.A.String())
		}
	}
	if len(addrs) == 0 {
		return nil, fmt.Errorf("no A record in the answer")
	}
	return addrs, nil
}

// waitTCP waits until a TCP connection to addr from inside h succeeds.
func waitTCP(h *host, addr string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		conn, err := h.DialContext(ctx, "tcp", addr)
		cancel()
		if err == nil {
			conn.Close()
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("nothing accepts on %s after %v: %w", addr, timeout, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// timeline condenses results into runs of answered and failed queries,
// "11:36:18.493 +8 ok, 11:36:18.656 +27 failed (no answer within 500ms)",
// to show where a stream broke.
func timeline(results []result) string {
	var parts []string
	for i := 0; i < len(results); {
		j := i
		for j < len(results) && (results[j].err == nil) == (results[i].err == nil) {
			j++
		}
		what := "answered"
		if results[i].err != nil {
			what = fmt.Sprintf("failed (%v)", results[i].err)
		}
		parts = append(parts, fmt.Sprintf("%s %d %s", results[i].start.Format("15:04:05.000"), j-i, what))
		i = j
	}
	return strings.Join(parts, "; ")
}
