package vrrp

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// tidConn counts the adverts it is given and the threads that send them.
type tidConn struct {
	mu     sync.Mutex
	sent   int
	tids   map[int]int
	closed chan struct{}
	once   sync.Once
}

func (c *tidConn) Send([]byte, netip.Addr) error {
	tid := unix.Gettid()
	c.mu.Lock()
	c.sent++
	c.tids[tid]++
	c.mu.Unlock()
	return nil
}

func (c *tidConn) Receive() (Packet, error) { <-c.closed; return Packet{}, net.ErrClosed }
func (c *tidConn) Close() error             { c.once.Do(func() { close(c.closed) }); return nil }

func (c *tidConn) count() (int, map[int]int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	m := map[int]int{}
	for k, v := range c.tids {
		m[k] = v
	}
	return c.sent, m
}

type tidTransport struct {
	mu    sync.Mutex
	conns []*tidConn
}

func (t *tidTransport) Open(string, netip.Addr, bool) (Conn, error) {
	c := &tidConn{tids: map[int]int{}, closed: make(chan struct{})}
	t.mu.Lock()
	t.conns = append(t.conns, c)
	t.mu.Unlock()
	return c, nil
}

func (t *tidTransport) conn(i int) *tidConn {
	t.mu.Lock()
	defer t.mu.Unlock()
	if i >= len(t.conns) {
		return nil
	}
	return t.conns[i]
}

// heldAddrs blocks every AddVIPs until release is closed.
type heldAddrs struct {
	started chan struct{}
	once    sync.Once
	release chan struct{}
}

func (h *heldAddrs) AddVIPs(ctx context.Context, _ string, _ []netip.Prefix) error {
	h.once.Do(func() { close(h.started) })
	select {
	case <-h.release:
	case <-ctx.Done():
	}
	return nil
}

func (h *heldAddrs) RemoveVIPs(context.Context, string, []netip.Prefix) error { return nil }

// realManager runs a Manager on the wall clock (so on the timing thread).
func realManager(t *testing.T, addrs AddressManager, tr Transport, rt int, cfgs ...string) (*Manager, context.CancelFunc, chan error) {
	t.Helper()
	var all []string
	all = append(all, cfgs...)
	m, err := NewManager(parseVRRP(strings.Join(all, "\n")), Options{
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Addresses: addrs, Transport: tr,
		Announcer: &announceLog{}, Links: &switchLinks{}, OwnAddress: func(netip.Addr) bool { return false },
		RTPriority: rt,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	return m, cancel, done
}

const fastInstance = "[[vrrp]]\nname = \"web\"\nvrid = 51\ninterface = \"eth0\"\nadvert_interval = \"10ms\"\nvips = [\"10.0.0.100/24\"]\nsource_address = \"10.0.0.2\"\n"

// TestTimingThreadKeepsSending (issue 11): at 10 ms adverts the master
// keeps sending while its AddVIPs is stuck and while another goroutine
// churns the heap, and every advert leaves from the one locked timing
// thread, not from a goroutine of the Go timer heap.
func TestTimingThreadKeepsSending(t *testing.T) {
	addrs := &heldAddrs{started: make(chan struct{}), release: make(chan struct{})}
	tr := &tidTransport{}
	m, cancel, done := realManager(t, addrs, tr, 0, fastInstance)
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	stopChurn := make(chan struct{})
	var churned sync.WaitGroup
	churned.Add(1)
	go func() { // a garbage-heavy neighbour: 1 MiB allocations, back to back
		defer churned.Done()
		var keep [][]byte
		for i := 0; ; i++ {
			select {
			case <-stopChurn:
				return
			default:
			}
			keep = append(keep, make([]byte, 1<<20))
			if len(keep) > 64 {
				keep = keep[:0]
			}
		}
	}()
	defer func() { close(stopChurn); churned.Wait() }()

	waitUntil(t, "becoming master and starting to add the VIPs", func() bool {
		select {
		case <-addrs.started:
			return true
		default:
			return false
		}
	})
	c := tr.conn(0)
	base, _ := c.count()
	waitUntil(t, "50 more adverts while the add is stuck", func() bool { n, _ := c.count(); return n >= base+50 })
	select {
	case <-addrs.release:
		t.Fatal("the add was released early")
	default:
	}
	_, tids := c.count()
	w := m.ex.thread()
	if len(tids) != 1 || tids[int(w.tid.Load())] == 0 {
		t.Errorf("adverts sent from threads %v, want only the timing thread %d", tids, w.tid.Load())
	}
	close(addrs.release)
	if st := m.Status()[0]; st.State != "master" {
		t.Errorf("state %s", st.State)
	}
}

// TestTickAllocatesNothing (issue 11): a master's advert tick, from the
// wake-up through the machine to the socket, allocates nothing.
func TestTickAllocatesNothing(t *testing.T) {
	t.Run("plain", func(t *testing.T) { tickAllocs(t, func(*settings) {}) })
	// Tracked weights and a sync group cost the advert path nothing.
	t.Run("tracked in a sync group", func(t *testing.T) {
		tickAllocs(t, func(s *settings) {
			s.ha.syncGroup = "g"
			s.ha.weights = []trackWeight{{kind: "interface", name: "eth9", weight: -10}}
		})
	})
}

func tickAllocs(t *testing.T, adjust func(*settings)) {
	clk := &stepClock{now: time.Unix(1e9, 0)}
	ex := newExecutor(clk, slog.New(slog.NewTextHandler(io.Discard, nil)))
	ex.wake = nopWaker{}
	s, err := settingsOf(&parseVRRP(fastInstance)[0])
	if err != nil {
		t.Fatal(err)
	}
	adjust(&s)
	in := &instance{name: s.name, iface: s.iface, ex: ex, addrs: &vipLog{}, ann: &announceLog{},
		log: ex.log, m: newMachine(s, false), changed: func(StateChange) {}}
	in.life.configured = s
	in.work = newWorker(in)
	go in.work.run()
	defer in.work.close()
	in.opened(s.source, nopConn{})
	ex.register(in)
	in.start()
	if s.ha.syncGroup != "" {
		// Alone in its group, it becomes master once it wants to; at 90.
		in.postTrack("interface", "eth9", false)
	}
	for range 1000 { // master, and past the second announcement burst
		clk.step(10 * time.Millisecond)
		ex.tick()
	}
	if st := in.status(); st.State != "master" || st.EffectivePriority != s.priority+applied(&tracker{known: true}, -10)*boolInt(s.ha.syncGroup != "") {
		t.Fatalf("%s at %d", st.State, st.EffectivePriority)
	}
	if n := testing.AllocsPerRun(1000, func() {
		clk.step(10 * time.Millisecond)
		ex.tick()
	}); n != 0 {
		t.Errorf("an advert tick allocates %v times, want 0", n)
	}
}

type stepClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *stepClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *stepClock) step(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

func (c *stepClock) AfterFunc(time.Duration, func()) Timer { panic("not used") }

type nopWaker struct{}

func (nopWaker) arm(time.Duration) {}
func (nopWaker) stop()             {}

type nopConn struct{}

func (nopConn) Send([]byte, netip.Addr) error { return nil }
func (nopConn) Receive() (Packet, error)      { return Packet{}, net.ErrClosed }
func (nopConn) Close() error                  { return nil }

// TestRTPriorityApplied: with a real-time priority configured the timing
// thread runs under SCHED_RR at it (read back from the kernel for that
// thread), and a reload changes it in place, down to SCHED_OTHER at 0.
func TestRTPriorityApplied(t *testing.T) {
	if err := CheckRTPriority(10); err != nil {
		t.Skipf("this process may not use SCHED_RR (%v); TestRTPriorityRefused covers that", err)
	}
	tr := &tidTransport{}
	m, cancel, done := realManager(t, &vipLog{}, tr, 10, fastInstance)
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	waitUntil(t, "the timing thread", func() bool { return m.ex.thread() != nil })
	tid := int(m.ex.thread().tid.Load())
	if p, prio := schedPolicy(tid); p != schedRR || prio != 10 {
		t.Fatalf("timing thread %d: policy %d priority %d, want SCHED_RR (2) at 10", tid, p, prio)
	}
	if p, _ := schedPolicy(unix.Gettid()); p != schedOther {
		t.Errorf("the test's own thread got policy %d: the priority leaked", p)
	}
	for _, want := range []int{20, 0} {
		apply, err := m.PrepareRTPriority(want)
		if err != nil {
			t.Fatal(err)
		}
		apply()
		p, prio := schedPolicy(tid)
		if want > 0 && (p != schedRR || prio != want) || want == 0 && p != schedOther {
			t.Errorf("after reloading %d: policy %d priority %d", want, p, prio)
		}
	}
}

// TestRTPriorityRefused runs TestRTPriorityRefusedChild in a process that
// may not use real-time scheduling: CAP_SYS_NICE dropped from its bounding
// set (so root's exec gets none) and RLIMIT_RTPRIO 0.
func TestRTPriorityRefused(t *testing.T) {
	if os.Getenv("LVSD_RT_CHILD") != "" {
		t.Skip("in the child")
	}
	for _, tool := range []string{"setpriv", "prlimit"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("needs %s (util-linux)", tool)
		}
	}
	if os.Geteuid() != 0 {
		t.Skip("dropping a bounding-set capability needs root")
	}
	cmd := exec.Command("setpriv", "--bounding-set", "-sys_nice", "--inh-caps", "-sys_nice", "--",
		"prlimit", "--rtprio=0:0", "--", os.Args[0], "-test.run=^TestRTPriorityRefusedChild$", "-test.v", "-test.count=1")
	cmd.Env = append(os.Environ(), "LVSD_RT_CHILD=1")
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "--- PASS: TestRTPriorityRefusedChild") {
		t.Fatalf("child: %v\n%s", err, out)
	}
}

func TestRTPriorityRefusedChild(t *testing.T) {
	if os.Getenv("LVSD_RT_CHILD") == "" {
		t.Skip("run by TestRTPriorityRefused")
	}
	if err := CheckRTPriority(10); !errors.Is(err, ErrRTNotPermitted) {
		t.Fatalf("CheckRTPriority(10) = %v, want ErrRTNotPermitted", err)
	}
	// At start: Run refuses, sends nothing.
	tr := &tidTransport{}
	_, cancel, done := realManager(t, &vipLog{}, tr, 10, fastInstance)
	if err := <-done; !errors.Is(err, ErrRTNotPermitted) {
		t.Errorf("Run with priority 10 = %v, want ErrRTNotPermitted", err)
	}
	cancel()
	if tr.conn(0) != nil {
		t.Error("a refused Run opened a socket")
	}
	// On reload: rejected, the running thread unchanged.
	m, cancel, done := realManager(t, &vipLog{}, &tidTransport{}, 0, fastInstance)
	waitUntil(t, "the timing thread", func() bool { return m.ex.thread() != nil })
	if _, err := m.PrepareRTPriority(10); !errors.Is(err, ErrRTNotPermitted) {
		t.Errorf("PrepareRTPriority(10) = %v, want ErrRTNotPermitted", err)
	}
	if p, _ := schedPolicy(int(m.ex.thread().tid.Load())); p != schedOther {
		t.Errorf("policy %d after a refused reload", p)
	}
	cancel()
	<-done
	runtime.KeepAlive(m)
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}
