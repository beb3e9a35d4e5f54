package daemon

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/lvsd/lvsd/checks"
	"github.com/lvsd/lvsd/config"
	"github.com/lvsd/lvsd/director"
	"github.com/lvsd/lvsd/internal/hostres"
)

// switchable is a real server whose behaviour a test sets: it answers
// 200, answers 500, or hangs until the probe gives up (a silent failure,
// as an overloaded director sees a healthy server).
type switchable struct {
	addr string
	mode atomic.Value // "ok", "fail", "hang"
}

func newSwitchable(t *testing.T) *switchable {
	s := &switchable{}
	s.mode.Store("ok")
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch s.mode.Load() {
		case "fail":
			http.Error(w, "broken", http.StatusInternalServerError)
		case "hang":
			<-r.Context().Done()
		default:
			w.Write([]byte("ok\n"))
		}
	}))
	t.Cleanup(srv.Close)
	s.addr = strings.TrimPrefix(srv.URL, "http://")
	return s
}

// guardLab runs the daemon with pools a, b and c of two switchable
// servers each, beside the lab's web service, and lvsd's own trouble
// under the test's control.
type guardLab struct {
	*lab
	pools map[string][]*switchable
	fault faultVar
}

type faultVar struct {
	mu  sync.Mutex
	why string
}

func (f *faultVar) set(why string) {
	f.mu.Lock()
	f.why = why
	f.mu.Unlock()
}

func (f *faultVar) get() (string, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.why, f.why != ""
}

func startGuardLab(t *testing.T, opts ...Option) *guardLab {
	return startGuardLabOn(t, func() *switchable { return newSwitchable(t) }, opts...)
}

// startGuardLabOn is startGuardLab with the pools' servers from server.
func startGuardLabOn(t *testing.T, server func() *switchable, opts ...Option) *guardLab {
	g := &guardLab{pools: map[string][]*switchable{}}
	c := newLabConfig(t)
	var extra strings.Builder
	extra.WriteString(`
[director.eviction_guard]
threshold = 50
window = "1s"
max_hold = "1m"
`)
	for i, name := range []string{"a", "b", "c"} {
		fmt.Fprintf(&extra, `
[[service]]
name = %q
vip = "192.0.2.%d"
port = 80

  [[service.check]]
  type = "http"
  interval = "100ms"
  timeout = "80ms"
  rise = 1
  fall = 2
`, name, 20+i)
		for range 2 {
			s := server()
			g.pools[name] = append(g.pools[name], s)
			fmt.Fprintf(&extra, "\n  [[service.realserver]]\n  address = %q\n", s.addr)
		}
	}
	c.Extra = extra.String()
	if len(opts) == 0 {
		opts = []Option{WithLocalFault(g.fault.get)}
	}
	g.lab = startLab(t, c, opts...)
	for _, ss := range g.pools {
		for _, s := range ss {
			g.waitWeight(s.addr, 1)
		}
	}
	return g
}

func (g *guardLab) set(pool, mode string) {
	for _, s := range g.pools[pool] {
		s.mode.Store(mode)
	}
}

// judged waits until the checks call every server of pools down.
func (g *guardLab) judged(health checks.Health, pools ...string) {
	g.t.Helper()
	g.eventually(fmt.Sprintf("servers of %v %s", pools, health), func() error {
		st := g.checkState()
		for _, p := range pools {
			for _, s := range g.pools[p] {
				if h := st[s.addr].Health; h != health {
					return fmt.Errorf("%s of %s is %s", s.addr, p, h)
				}
			}
		}
		return nil
	})
}

func (g *guardLab) inKernel(pool string) int {
	n := 0
	for _, s := range g.pools[pool] {
		if _, ok := g.kernelDest(s.addr); ok {
			n++
		}
	}
	return n
}

func TestGuardHoldsTheTableWhileLvsdIsInTrouble(t *testing.T) {
	g := startGuardLab(t)
	g.fault.set("fds: 1010 of 1024 open files in use (98%, RLIMIT_NOFILE)")
	for _, p := range []string{"a", "b", "c"} {
		g.set(p, "hang")
	}
	g.judged(checks.Down, "a", "b", "c")
	g.eventually("six held as a mass failure", func() error {
		gs := g.status().EvictionGuard
		if gs == nil || len(gs.Held) != 6 {
			return fmt.Errorf("guard %+v", gs)
		}
		for _, h := range gs.Held {
			if !strings.Contains(h.Why, "mass failure") || !strings.HasPrefix(h.Reason, "timeout: ") {
				return fmt.Errorf("held %+v", h)
			}
		}
		return nil
	})
	for _, p := range []string{"a", "b", "c"} {
		if n := g.inKernel(p); n != 2 {
			t.Errorf("pool %s: %d servers in the kernel, want both kept", p, n)
		}
	}
	st := g.status()
	if gs := st.EvictionGuard; !gs.On || gs.Fault != "fds: 1010 of 1024 open files in use (98%, RLIMIT_NOFILE)" || gs.FaultSince.IsZero() {
		t.Errorf("eviction_guard: %+v", gs)
	}
	rs := g.realserver(g.pools["b"][0].addr)
	if !rs.HeldByGuard || rs.Health != "down" || rs.KernelWeight != 1 {
		t.Errorf("held server in status: %+v", rs)
	}
	if g.serviceDown("b") {
		t.Error("VRRP tracking calls b down while the guard keeps its servers in the table")
	}
	text := g.statusTable()
	if !strings.Contains(text, "EVICTION GUARD") || !strings.Contains(text, "holding 6 failed checks") || !strings.Contains(text, "down,held") {
		t.Errorf("the status table does not say what the guard holds:\n%s", text)
	}
	m := g.scrape()
	if m.value("lvsd_eviction_guard_held") != 6 || m.value("lvsd_eviction_guard_active") != 1 ||
		m.value("lvsd_local_fault", "source", "fds") != 1 || m.count("lvsd_eviction_guard_held_total") < 6 {
		t.Errorf("metrics: held %v active %v fault %v held_total %v", m.value("lvsd_eviction_guard_held"),
			m.value("lvsd_eviction_guard_active"), m.value("lvsd_local_fault", "source", "fds"), m.count("lvsd_eviction_guard_held_total"))
	}

	// lvsd recovers. Pool a was fine all along; b and c really are down.
	g.set("a", "ok")
	g.fault.set("")
	g.waitWeight(g.pools["b"][0].addr, -1)
	g.waitWeight(g.pools["c"][1].addr, -1)
	g.eventually("b and c evicted, a kept", func() error {
		if a, b, c := g.inKernel("a"), g.inKernel("b"), g.inKernel("c"); a != 2 || b != 0 || c != 0 {
			return fmt.Errorf("in the kernel: a %d, b %d, c %d", a, b, c)
		}
		if gs := g.status().EvictionGuard; len(gs.Held) != 0 || gs.Fault != "" {
			return fmt.Errorf("guard %+v", gs)
		}
		return nil
	})
	if !g.serviceDown("b") || g.serviceDown("a") {
		t.Errorf("VRRP tracking after recovery: a down %v, b down %v; want false, true", g.serviceDown("a"), g.serviceDown("b"))
	}
	m = g.scrape()
	if m.count("lvsd_eviction_guard_released_total", "outcome", "recovered") != 2 || m.count("lvsd_eviction_guard_released_total", "outcome", "applied") != 4 {
		t.Errorf("released: recovered %v, applied %v; want 2 and 4", m.count("lvsd_eviction_guard_released_total", "outcome", "recovered"),
			m.count("lvsd_eviction_guard_released_total", "outcome", "applied"))
	}
	if !strings.Contains(g.logs.String(), "eviction guard: applying held failed checks") {
		t.Error("no log line for the applied held failures")
	}
}

func TestGuardDoesNotHoldOnePoolThatReallyFails(t *testing.T) {
	g := startGuardLab(t)
	g.fault.set("checks: 400 probes behind schedule, the worst by 3s")

	// The servers of b answer 500: applied at once, trouble or not.
	g.set("b", "fail")
	g.waitWeight(g.pools["b"][0].addr, -1)
	g.waitWeight(g.pools["b"][1].addr, -1)
	g.set("b", "ok")
	g.waitWeight(g.pools["b"][0].addr, 1)
	g.waitWeight(g.pools["b"][1].addr, 1)

	// The servers of c stop answering while a and b are fine: not a mass
	// failure, so applied once the window is out.
	g.set("c", "hang")
	g.waitWeight(g.pools["c"][0].addr, -1)
	g.waitWeight(g.pools["c"][1].addr, -1)
	if a, b := g.inKernel("a"), g.inKernel("b"); a != 2 || b != 2 {
		t.Errorf("a %d and b %d servers in the kernel, want 2 each", a, b)
	}
	if gs := g.status().EvictionGuard; len(gs.Held) != 0 {
		t.Errorf("still held: %+v", gs.Held)
	}
}

// A real fault, not a simulated one: lvsd runs out of file descriptors.
// Its probes cannot open sockets (class local) and its own sampler sees
// the descriptors used up; nothing leaves the table, and once descriptors
// are free again the checks pass and every hold ends with the server
// never having left.
func TestGuardHoldsWhenLvsdRunsOutOfFileDescriptors(t *testing.T) {
	// The servers run in another process, as real servers do: they go on
	// accepting while lvsd has no descriptor left.
	remote := serversElsewhere(t, 6)
	g := startGuardLabOn(t, func() *switchable {
		s := &switchable{addr: remote[0]}
		remote = remote[1:]
		return s
	}, func(*host) {}) // lvsd's own sampler, not a simulated fault
	all := []string{"a", "b", "c"}
	release := exhaustFileDescriptors(t)
	g.judged(checks.Down, all...)
	var gs director.GuardStatus
	g.eventually("every server held", func() error {
		gs = g.d.dir.GuardStatus() // in-process: the control socket needs a descriptor too
		for _, p := range all {
			for _, s := range g.pools[p] {
				if !slicesContainsHeld(gs.Held, p, s.addr) {
					return fmt.Errorf("%s/%s not held: %+v", p, s.addr, gs)
				}
			}
		}
		return nil
	})
	for _, h := range gs.Held {
		if h.Service != "web" && !strings.HasPrefix(h.Reason, "local: ") {
			t.Errorf("held %s/%s for %q, want a local failure", h.Service, h.RealServer, h.Reason)
		}
	}
	if !strings.HasPrefix(gs.Fault, "fds: ") && !strings.HasPrefix(gs.Fault, "probes: ") {
		t.Errorf("fault %q, want lvsd short of file descriptors", gs.Fault)
	}
	for _, p := range all {
		if n := g.inKernel(p); n != 2 {
			t.Errorf("pool %s: %d servers in the kernel, want 2", p, n)
		}
	}
	release()
	g.judged(checks.Up, all...)
	g.eventually("holds ended", func() error {
		if gs := g.d.dir.GuardStatus(); len(gs.Held) != 0 {
			return fmt.Errorf("still held: %d", len(gs.Held))
		}
		return nil
	})
	for _, p := range all {
		if n := g.inKernel(p); n != 2 {
			t.Errorf("pool %s: %d servers in the kernel after recovery, want 2", p, n)
		}
	}
	if n := g.scrape().count("lvsd_eviction_guard_released_total", "outcome", "applied"); n != 0 {
		t.Errorf("%v held failures applied, want none", n)
	}
}

// serversElsewhere starts n HTTP servers answering 200 in a child
// process (this test binary, see init) and returns their addresses.
func serversElsewhere(t *testing.T, n int) []string {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), fmt.Sprintf("%s=%d", serversEnv, n))
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		stdin.Close() // the child exits when its stdin closes
		cmd.Wait()
	})
	var addrs []string
	sc := bufio.NewScanner(stdout)
	for len(addrs) < n && sc.Scan() {
		addrs = append(addrs, sc.Text())
	}
	if len(addrs) < n {
		t.Fatalf("child servers: %d addresses (%v)", len(addrs), sc.Err())
	}
	return addrs
}

const serversEnv = "LVSD_TEST_HTTP_SERVERS"

// init turns this test binary into serversElsewhere's child.
func init() {
	n, err := strconv.Atoi(os.Getenv(serversEnv))
	if err != nil || n <= 0 {
		return
	}
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		fmt.Println(l.Addr())
		go http.Serve(l, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("ok\n")) }))
	}
	io.Copy(io.Discard, os.Stdin)
	os.Exit(0)
}

func slicesContainsHeld(held []director.HeldStatus, service, rs string) bool {
	for _, h := range held {
		if h.Service == service && h.RealServer == rs {
			return true
		}
	}
	return false
}

// exhaustFileDescriptors lowers RLIMIT_NOFILE to a little above what is
// open and fills every free descriptor below it. The returned func (also
// run at cleanup) gives them back.
func exhaustFileDescriptors(t *testing.T) (release func()) {
	t.Helper()
	var was syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &was); err != nil {
		t.Fatal(err)
	}
	open, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	low := was
	low.Cur = uint64(len(open) + 64)
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &low); err != nil {
		t.Skipf("cannot lower RLIMIT_NOFILE: %v", err)
	}
	var filler []*os.File
	done := false
	release = func() {
		if done {
			return
		}
		done = true
		for _, f := range filler {
			f.Close()
		}
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &was); err != nil {
			t.Errorf("restoring RLIMIT_NOFILE: %v", err)
		}
	}
	t.Cleanup(release)
	for {
		f, err := os.Open(os.DevNull)
		if errors.Is(err, syscall.EMFILE) {
			return release
		}
		if err != nil {
			release()
			t.Fatal(err)
		}
		filler = append(filler, f)
		if len(filler) > 100000 {
			release()
			t.Fatal("RLIMIT_NOFILE did not take effect")
		}
	}
}

// serviceDown is what the director tells VRRP tracking about the service.
func (g *guardLab) serviceDown(name string) bool { return g.d.dir.ServiceDown(name) }

func TestLocalFaultSources(t *testing.T) {
	cfg := &config.Config{}
	cfg.Director.EvictionGuard = config.EvictionGuard{Threshold: 50, FDLimit: 90, MemoryLimit: 90,
		ChecksBehind: config.Duration{Duration: 2 * time.Second}}
	f := newLocalFault(cfg, slog.New(slog.DiscardHandler))
	usage := hostres.Usage{FDs: 100, FDLimit: 1024, MemUsed: 1 << 30, MemLimit: 4 << 30, MemScope: "host"}
	f.read = func() (hostres.Usage, error) { return usage, nil }
	behind, worst := 0, time.Duration(0)
	f.backlog = func() (int, time.Duration) { return behind, worst }
	for _, tc := range []struct {
		fds     int
		behind  int
		worst   time.Duration
		fdLimit int
		want    string
	}{
		{fds: 100, want: ""},
		{fds: 950, fdLimit: 90, want: "fds: 950 of 1024 open files in use (92%, RLIMIT_NOFILE)"},
		{fds: 950, fdLimit: 0, want: ""},
		{behind: 40, worst: time.Second, want: ""},
		{behind: 40, worst: 3 * time.Second, want: "checks: 40 probes behind schedule, the worst by 3s"},
	} {
		usage.FDs, behind, worst = tc.fds, tc.behind, tc.worst
		next := *cfg
		next.Director.EvictionGuard.FDLimit = tc.fdLimit
		f.update(&next)
		f.sample()
		if why, faulty := f.fault(); why != tc.want || faulty != (tc.want != "") {
			t.Errorf("%+v: fault %q %v, want %q", tc, why, faulty, tc.want)
		}
	}
}
