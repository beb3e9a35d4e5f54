package daemon

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"text/template"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/lvsd/lvsd/config"
	"github.com/lvsd/lvsd/director"
	"github.com/lvsd/lvsd/internal/control"
	"github.com/lvsd/lvsd/internal/status"
	"github.com/lvsd/lvsd/vrrp"
)

// The tests in this package run the whole daemon in-process: the real
// config loader, checks probing loopback servers, the director with its
// reconciler, VRRP, the control socket and the metrics listener. Only the
// host ties are swapped: the fake IPVS table instead of the kernel's, a VIP
// recorder instead of netlink, and a VRRP segment with no peer on it.

// lab is one running daemon and what it runs against.
type lab struct {
	t       *testing.T
	d       *Daemon
	ipvs    *director.Fake
	addrs   *fakeAddrs
	vrrp    *loneSegment
	path    string // config file
	socket  string // control socket
	metrics string // metrics listener, host:port
	stop    context.CancelFunc
	done    chan error
	logs    *syncBuffer
}

// labConfig fills the config template.
type labConfig struct {
	Dir, Metrics   string
	Good, Bad      string // real servers: Good answers 200, Bad answers 500
	WeightGood     int
	WeightBad      int
	Extra          string // appended verbatim
	ReconcileEvery string
}

const labTemplate = `
[director]
name = "lab-node"
interface = "lab0"
metrics_listen = "{{.Metrics}}"
control_socket = "{{.Dir}}/lvsd.sock"
reconcile_interval = "{{.ReconcileEvery}}"

[[service]]
name = "web"
vip = "192.0.2.10"
port = 80
scheduler = "wlc"

  [[service.check]]
  type = "http"
  interval = "100ms"
  timeout = "90ms"
  rise = 1
  fall = 3
  path = "/health"

  [[service.realserver]]
  address = "{{.Good}}"
  weight = {{.WeightGood}}

  [[service.realserver]]
  address = "{{.Bad}}"
  weight = {{.WeightBad}}
{{.Extra}}
`

// newLabConfig starts the two loopback real servers and returns a config
// for them with a fresh metrics port and socket.
func newLabConfig(t *testing.T) labConfig {
	t.Helper()
	good := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok\n") }))
	t.Cleanup(good.Close)
	bad := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "backend broken", http.StatusInternalServerError)
	}))
	t.Cleanup(bad.Close)
	return labConfig{
		Dir: t.TempDir(), Metrics: freeLoopbackAddr(t),
		Good: strings.TrimPrefix(good.URL, "http://"), Bad: strings.TrimPrefix(bad.URL, "http://"),
		WeightGood: 5, WeightBad: 3, ReconcileEvery: "200ms",
	}
}

func (c labConfig) render(t *testing.T) string {
	t.Helper()
	var b strings.Builder
	if err := template.Must(template.New("cfg").Parse(labTemplate)).Execute(&b, c); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// startLab writes cfg, starts the daemon on it and waits until the control
// socket answers.
func startLab(t *testing.T, c labConfig, opts ...Option) *lab {
	t.Helper()
	l := &lab{t: t, ipvs: director.NewFake(), addrs: &fakeAddrs{held: map[string][]netip.Prefix{}}, vrrp: &loneSegment{},
		path: filepath.Join(c.Dir, "lvsd.toml"), socket: filepath.Join(c.Dir, "lvsd.sock"), metrics: c.Metrics,
		done: make(chan error, 1), logs: &syncBuffer{}}
	l.write(c.render(t))
	cfg, err := config.Load(l.path)
	if err != nil {
		t.Fatalf("lab config: %v", err)
	}
	log := slog.New(slog.NewTextHandler(l.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	opts = append([]Option{WithLogger(log), WithVersion(labVersion), WithIPVS(l.ipvs), WithAddresses(l.addrs), WithoutHostSetup(),
		WithVRRP(vrrp.Options{Transport: l.vrrp, Links: upLinks{}, Announcer: l.vrrp})}, opts...)
	l.d, err = New(cfg, opts...)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	l.stop = cancel
	go func() { l.done <- l.d.Run(ctx) }()
	t.Cleanup(func() {
		l.shutdown()
		if t.Failed() {
			t.Logf("daemon log:\n%s", l.logs.String())
		}
	})
	l.eventually("control socket answers", func() error {
		_, err := l.client().Status(context.Background())
		return err
	})
	return l
}

// labVersion is the version the lab's daemon reports.
const labVersion = "v9.9.9-lab"

// client talks to the lab's daemon over its control socket, as the CLI
// does.
func (l *lab) client() *control.Client { return control.NewClient(l.socket) }

// shutdown stops the daemon and waits for run to return.
func (l *lab) shutdown() {
	l.stop()
	select {
	case err := <-l.done:
		if err != nil {
			l.t.Errorf("run returned %v", err)
		}
		l.done <- err // for a second shutdown
	case <-time.After(10 * time.Second):
		l.t.Error("daemon did not stop within 10s")
	}
}

func (l *lab) write(text string) {
	l.t.Helper()
	if err := os.WriteFile(l.path, []byte(text), 0o644); err != nil {
		l.t.Fatal(err)
	}
}

// eventually retries cond for up to 10 s; the last error fails the test.
func (l *lab) eventually(what string, cond func() error) {
	l.t.Helper()
	l.eventuallyWithin(10*time.Second, what, cond)
}

// eventuallyWithin is eventually with another bound.
func (l *lab) eventuallyWithin(bound time.Duration, what string, cond func() error) {
	l.t.Helper()
	deadline := time.Now().Add(bound)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			l.t.Fatalf("%s: %v", what, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// status reads the status document over the control socket.
func (l *lab) status() status.Report {
	l.t.Helper()
	st, err := l.client().Status(context.Background())
	if err != nil {
		l.t.Fatalf("GET /status: %v", err)
	}
	return st
}

// statusTable is the status as `lvsd status` prints it.
func (l *lab) statusTable() string {
	l.t.Helper()
	var b strings.Builder
	status.WriteText(&b, l.status())
	return b.String()
}

// realserver is the status of the real server at addr, of any service.
func (l *lab) realserver(addr string) status.RealServer {
	l.t.Helper()
	st := l.status()
	if r := st.RealServer("", addr); r != nil {
		return *r
	}
	l.t.Fatalf("status has no realserver %s", addr)
	return status.RealServer{}
}

// reload asks the daemon to reload over the control socket, as `lvsd
// reload` does, and fails the test if it refuses.
func (l *lab) reload() {
	l.t.Helper()
	if err := l.client().Reload(context.Background()); err != nil {
		l.t.Fatalf("reload: %v", err)
	}
}

// kernelDest returns the fake kernel's destination addr of the web
// service, or ok false when it is not in the table.
func (l *lab) kernelDest(addr string) (director.Dest, bool) {
	l.t.Helper()
	svcs, _ := l.ipvs.Dump(context.Background())
	for _, s := range svcs {
		for _, d := range s.Dests {
			if d.Addr.String() == addr {
				return d, true
			}
		}
	}
	return director.Dest{}, false
}

// waitWeight waits until the kernel holds addr with weight w (w < 0: not
// in the table at all).
func (l *lab) waitWeight(addr string, w int) {
	l.t.Helper()
	l.eventually(fmt.Sprintf("kernel weight of %s = %d", addr, w), func() error {
		d, ok := l.kernelDest(addr)
		switch {
		case w < 0 && ok:
			return fmt.Errorf("still in the table with weight %d", d.Weight)
		case w >= 0 && !ok:
			return errors.New("not in the table")
		case w >= 0 && d.Weight != w:
			return fmt.Errorf("weight %d", d.Weight)
		}
		return nil
	})
}

// scrape reads /metrics over HTTP, as Prometheus does.
func (l *lab) scrape() scrape {
	l.t.Helper()
	resp, err := http.Get("http://" + l.metrics + "/metrics")
	if err != nil {
		l.t.Fatalf("scrape: %v", err)
	}
	defer resp.Body.Close()
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		l.t.Fatalf("parse /metrics: %v", err)
	}
	return fams
}

type scrape map[string]*dto.MetricFamily

// series returns the metric of family name whose labels include want.
func (s scrape) series(name string, want map[string]string) (*dto.Metric, bool) {
	f := s[name]
	if f == nil {
		return nil, false
	}
next:
	for _, m := range f.GetMetric() {
		have := map[string]string{}
		for _, lp := range m.GetLabel() {
			have[lp.GetName()] = lp.GetValue()
		}
		for k, v := range want {
			if have[k] != v {
				continue next
			}
		}
		return m, true
	}
	return nil, false
}

// value is the counter, gauge or untyped value of one series; -1 if absent.
func (s scrape) value(name string, labels ...string) float64 {
	m, ok := s.series(name, pairs(labels))
	if !ok {
		return -1
	}
	switch {
	case m.Counter != nil:
		return m.GetCounter().GetValue()
	case m.Gauge != nil:
		return m.GetGauge().GetValue()
	}
	return m.GetUntyped().GetValue()
}

// count is a counter's value, 0 when it was never incremented.
func (s scrape) count(name string, labels ...string) float64 {
	return max(s.value(name, labels...), 0)
}

func pairs(kv []string) map[string]string {
	out := map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		out[kv[i]] = kv[i+1]
	}
	return out
}

// freeLoopbackAddr returns a loopback address free now, for a listener the
// daemon opens later. The port is below the kernel's ephemeral range, which
// port 0 listeners and outgoing connections of every process on the host
// draw from: one of those took a port freed this way while the daemon
// started (1 of 480 runs, six copies of the tests at once).
func freeLoopbackAddr(t *testing.T) string {
	t.Helper()
	low := 32768
	if b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range"); err == nil {
		if f := strings.Fields(string(b)); len(f) == 2 {
			if n, err := strconv.Atoi(f[0]); err == nil {
				low = n
			}
		}
	}
	for range 100 {
		port := 10000 + rand.IntN(max(low-10000, 1))
		ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err != nil {
			continue // taken
		}
		ln.Close()
		return ln.Addr().String()
	}
	t.Fatal("no free loopback port below the ephemeral range")
	return ""
}

// fakeAddrs records which VIPs are on which interface, and every change
// in order.
type fakeAddrs struct {
	mu   sync.Mutex
	held map[string][]netip.Prefix
	ops  []string // "add lab0 192.0.2.10/32", "remove ..."
	// refuse, when set, fails every add (and adds nothing).
	refuse error
}

func (f *fakeAddrs) AddVIPs(ctx context.Context, iface string, vips []netip.Prefix) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.refuse != nil {
		return f.refuse
	}
	if f.held == nil {
		f.held = map[string][]netip.Prefix{}
	}
	for _, p := range vips {
		f.ops = append(f.ops, "add "+iface+" "+p.String())
		if !slices.Contains(f.held[iface], p) {
			f.held[iface] = append(f.held[iface], p)
		}
	}
	return nil
}

func (f *fakeAddrs) RemoveVIPs(ctx context.Context, iface string, vips []netip.Prefix) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, p := range vips {
		f.ops = append(f.ops, "remove "+iface+" "+p.String())
	}
	f.held[iface] = slices.DeleteFunc(f.held[iface], func(p netip.Prefix) bool { return slices.Contains(vips, p) })
	return nil
}

// changes returns the changes since the last call.
func (f *fakeAddrs) changes() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := f.ops
	f.ops = nil
	return out
}

// waitHeld waits until iface holds p (or, with held false, does not).
func (l *lab) waitHeld(iface, p string, held bool) {
	l.t.Helper()
	l.eventually(fmt.Sprintf("%s on %s: %v", p, iface, held), func() error {
		if got := l.addrs.on(iface); hasVIP(got, p) != held {
			return fmt.Errorf("%s holds %v", iface, got)
		}
		return nil
	})
}

func (f *fakeAddrs) on(iface string) []netip.Prefix {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.held[iface])
}

// loneSegment is a VRRP network with nobody else on it: adverts are
// counted and vanish, nothing is ever received, so an instance becomes
// master after its master-down interval.
type loneSegment struct {
	sent, announced atomic.Int64
}

func (s *loneSegment) Open(iface string, source netip.Addr, multicast bool) (vrrp.Conn, error) {
	return &loneConn{seg: s, closed: make(chan struct{})}, nil
}

func (s *loneSegment) Announce(iface string, vips []netip.Prefix) error {
	s.announced.Add(1)
	return nil
}

type loneConn struct {
	seg    *loneSegment
	once   sync.Once
	closed chan struct{}
}

func (c *loneConn) Send(payload []byte, dst netip.Addr) error {
	c.seg.sent.Add(1)
	return nil
}

func (c *loneConn) Receive() (vrrp.Packet, error) {
	<-c.closed
	return vrrp.Packet{}, net.ErrClosed
}

func (c *loneConn) Close() error {
	c.once.Do(func() { close(c.closed) })
	return nil
}

// upLinks says every interface is up and never changes.
type upLinks struct{}

func (upLinks) Watch(ctx context.Context, ifaces []string, report func(string, bool)) error {
	for _, i := range ifaces {
		report(i, true)
	}
	return nil
}

// syncBuffer is a bytes.Buffer safe for the daemon's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
