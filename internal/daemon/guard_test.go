package daemon

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/lvsd/lvsd/checks"
	"github.com/lvsd/lvsd/config"
	"github.com/lvsd/lvsd/internal/hostres"
)

// switchable is a real server whose behaviour a test sets: it answers
// 200 ("ok"), answers 500 ("fail"), or hangs until the probe gives up
// ("hang": a silent failure, as an overloaded director sees a healthy
// server).
type switchable struct {
	addr string
	set  func(mode string)
}

// guardLab runs the daemon with pools a, b and c of two switchable
// servers each, beside the lab's web service, and lvsd's own trouble
// under the test's control. Every real server, the web service's too,
// runs in another process (remote_test.go).
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

// startGuardLab starts the lab; with no options, lvsd's trouble is the
// test's to set (g.fault).
func startGuardLab(t *testing.T, opts ...Option) *guardLab {
	g := &guardLab{pools: map[string][]*switchable{}}
	remote := serversElsewhere(t, 8)
	c := newLabConfig(t)
	good, bad := remote.server(6), remote.server(7)
	bad.set("fail")
	c.Good, c.Bad = good.addr, bad.addr
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
		for j := range 2 {
			s := remote.server(2*i + j)
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
		s.set(mode)
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
	g := startGuardLab(t, func(*host) {}) // lvsd's own sampler, not a simulated fault
	all := []string{"a", "b", "c"}
	release := exhaustFileDescriptors(t)
	// Descriptors come and go while lvsd is short of them: a probe that
	// ends closes its socket, and the next one to ask may get it and pass.
	// So each server is held some of the time, up again in between, and
	// never out of the table; the test watches until it has seen every
	// one held for a local failure. A server is held after fall failures
	// in a row, and at a load of 30 a probe finds a free descriptor often
	// enough that one took more than 10 s (2 of 120 runs).
	seen := map[string]bool{}
	g.eventuallyWithin(time.Minute, "every server held for a local failure", func() error {
		gs := g.d.dir.GuardStatus() // in-process: the control socket needs a descriptor too
		for _, h := range gs.Held {
			if h.Service == "web" || !strings.HasPrefix(h.Reason, "local: ") {
				continue
			}
			seen[h.Service+"/"+h.RealServer] = true
			if !strings.HasPrefix(gs.Fault, "fds: ") && !strings.HasPrefix(gs.Fault, "probes: ") {
				t.Errorf("holding %s/%s with fault %q, want lvsd short of file descriptors", h.Service, h.RealServer, gs.Fault)
			}
		}
		for _, p := range all {
			if n := g.inKernel(p); n != 2 {
				t.Fatalf("pool %s: %d servers in the kernel, want 2", p, n)
			}
		}
		for _, p := range all {
			for _, s := range g.pools[p] {
				if !seen[p+"/"+s.addr] {
					return fmt.Errorf("%s/%s not yet held for a local failure; seen %v", p, s.addr, seen)
				}
			}
		}
		return nil
	})
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
