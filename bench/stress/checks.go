package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/lvsd/lvsd/internal/lab"
)

// checkLoad is the health-check work each lvsd node does beside VRRP:
// n connect-only TCP checks against loopback listeners in its own
// namespace that stay up the whole run, laid out as services of up to 100
// real servers (127.1.x.y), one service per port.
type checkLoad struct {
	n                 int
	interval, timeout time.Duration
	fall, rise        int
	basePort          int
	// nice is lvsd's nice value, which the listeners get too: they stand
	// for real servers on other machines, and starved of the CPU lvsd
	// took they left so many handshakes unaccepted that the kernel ran
	// out of TCP memory ("TCP: out of memory") and reset connections.
	nice int
	// generation flips one real server's weight on every reload, so each
	// reload has a change to apply.
	generation atomic.Int64
}

// layout is how many ports (services) and addresses (real servers per
// service) the checks use: at most 100 of each for the default 10,000.
func (c *checkLoad) layout() (ports, addrs int) {
	if c.n == 0 {
		return 0, 0
	}
	addrs = (c.n + 99) / 100
	return (c.n + addrs - 1) / addrs, addrs
}

func targetAddr(i int) netip.Addr {
	return netip.AddrFrom4([4]byte{127, 1, byte(i / 250), byte(i%250 + 1)})
}

// targets lists every address:port checked, in the order services list them.
func (c *checkLoad) targets() []netip.AddrPort {
	ports, addrs := c.layout()
	var out []netip.AddrPort
	for p := 0; p < ports; p++ {
		for a := 0; a < addrs && len(out) < c.n; a++ {
			out = append(out, netip.AddrPortFrom(targetAddr(a), uint16(c.basePort+p)))
		}
	}
	return out
}

// services is the [[service]] part of an lvsd config for the checks, on
// the pair's VIP: VRRP moves it, so lvsd adds no static VIP. No VRRP
// instance tracks them: an eviction must not move the VIP here.
func (c *checkLoad) services(vip netip.Addr) string {
	var b strings.Builder
	flip := c.generation.Load()%2 == 1
	port := -1
	for i, t := range c.targets() {
		if int(t.Port()) != port {
			port = int(t.Port())
			fmt.Fprintf(&b, "\n[[service]]\nname = \"s%d\"\nvip = %q\nport = %d\nscheduler = \"rr\"\nforwarding = \"dr\"\n", port, vip, port)
			fmt.Fprintf(&b, "  [[service.check]]\n  type = \"tcp\"\n  interval = %q\n  timeout = %q\n  fall = %d\n  rise = %d\n",
				c.interval, c.timeout, c.fall, c.rise)
		}
		weight := 1
		if i == 0 && flip {
			weight = 2
		}
		fmt.Fprintf(&b, "  [[service.realserver]]\n  address = %q\n  weight = %d\n", t.Addr(), weight)
	}
	return b.String()
}

// serveListeners is the -role listen child: it listens on every target,
// accepts and closes, and prints "ready" once all listen.
func serveListeners(c *checkLoad, out io.Writer) error {
	for _, t := range c.targets() {
		l, err := net.Listen("tcp", t.String())
		if err != nil {
			return err
		}
		go func() {
			for {
				conn, err := l.Accept()
				if errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE) {
					time.Sleep(10 * time.Millisecond)
					continue
				}
				if err != nil {
					return
				}
				conn.Close()
			}
		}()
	}
	fmt.Fprintln(out, "ready")
	select {}
}

// startListeners runs the listeners of node in a child process of their
// own, so their accept work is not billed to the bench's capture readers.
func startListeners(node *lab.NS, c *checkLoad, logDir string) (*lab.Proc, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	argv := []string{self, "-role", "listen", "-checks", strconv.Itoa(c.n), "-base-port", strconv.Itoa(c.basePort)}
	if c.nice != 0 {
		argv = append([]string{"nice", "-n", strconv.Itoa(c.nice)}, argv...)
	}
	p, err := node.Start(lab.ProcOptions{}, argv...)
	if err != nil {
		return nil, err
	}
	if err := p.WaitOutput("ready", 60*time.Second); err != nil {
		return nil, fmt.Errorf("%w\n%s", err, p.Tail(10))
	}
	return p, nil
}

// lvsdCounters are the figures read from an lvsd's metrics.
type lvsdCounters struct {
	at          time.Time // when the scrape was answered
	up          int       // real servers up now
	downs       float64   // health transitions to down so far
	probesOK    float64
	probesFail  float64
	skipped     float64
	reloadOK    bool
	vrrpChanges float64 // VRRP state transitions so far
}

// scrape reads node's lvsd metrics.
func scrape(node *lab.NS, addr string) (lvsdCounters, error) {
	// Only the families read here: the whole page holds a duration
	// histogram per real server, tens of megabytes to encode for an lvsd
	// that is already starved.
	q := url.Values{"name[]": countedMetrics}
	resp, err := node.HTTPClient(3 * time.Minute).Get("http://" + addr + "/metrics?" + q.Encode())
	if err != nil {
		return lvsdCounters{}, err
	}
	defer resp.Body.Close()
	at := time.Now()
	c, err := parseCounters(bufio.NewReader(resp.Body))
	c.at = at
	return c, err
}

var countedMetrics = []string{"lvsd_realserver_up", "lvsd_check_transitions_total", "lvsd_check_probes_total",
	"lvsd_check_probes_skipped_total", "lvsd_config_last_reload_successful", "lvsd_vrrp_transitions_total"}

// parseCounters reads lvsdCounters from the Prometheus text format.
func parseCounters(r io.Reader) (lvsdCounters, error) {
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(r)
	if err != nil {
		return lvsdCounters{}, fmt.Errorf("lvsd metrics: %w", err)
	}
	var c lvsdCounters
	if f := fams["lvsd_realserver_up"]; f != nil {
		for _, m := range f.GetMetric() {
			if m.GetGauge().GetValue() == 1 {
				c.up++
			}
		}
	}
	if f := fams["lvsd_check_transitions_total"]; f != nil {
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "to" && l.GetValue() == "down" {
					c.downs += m.GetCounter().GetValue()
				}
			}
		}
	}
	if f := fams["lvsd_check_probes_total"]; f != nil {
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "result" && l.GetValue() == "ok" {
					c.probesOK += m.GetCounter().GetValue()
				} else if l.GetName() == "result" {
					c.probesFail += m.GetCounter().GetValue()
				}
			}
		}
	}
	if f := fams["lvsd_check_probes_skipped_total"]; f != nil && len(f.GetMetric()) > 0 {
		c.skipped = f.GetMetric()[0].GetCounter().GetValue()
	}
	if f := fams["lvsd_config_last_reload_successful"]; f != nil && len(f.GetMetric()) > 0 {
		c.reloadOK = f.GetMetric()[0].GetGauge().GetValue() == 1
	}
	if f := fams["lvsd_vrrp_transitions_total"]; f != nil {
		for _, m := range f.GetMetric() {
			c.vrrpChanges += m.GetCounter().GetValue()
		}
	}
	return c, nil
}
