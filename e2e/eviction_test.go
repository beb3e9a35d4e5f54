package e2e

// A real server dies under a running `lvsd run`: its health checks take it
// out of the kernel's IPVS table, new connections from a client namespace
// land only on the survivor, `lvsd status` says why it is down, and when it
// is restarted it comes back only after `rise` passing probes.
//
// The time from the kill to the table change is logged beside its bound,
// fall × interval + timeout, but only a missed eviction (ten bounds) fails:
// timings belong in bench/eviction, which compares them with keepalived.

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/lvsd/lvsd/director"
	"github.com/lvsd/lvsd/e2e/lab"
	"github.com/lvsd/lvsd/internal/status"
)

const evictionConfig = `
[director]
name = "e2e-eviction"
interface = "eth0"
metrics_listen = "127.0.0.1:9910"
control_socket = "%[1]s/lvsd.sock"
reconcile_interval = "5s"
on_exit = "flush"

[[service]]
name = "web"
vip = "%[2]s"
port = 80
scheduler = "rr"
forwarding = "nat"

  [[service.check]]
  %[3]s
  interval = "%[4]s"
  timeout = "%[5]s"
  rise = %[6]d
  fall = %[7]d

  [[service.realserver]]
  address = "%[8]s"

  [[service.realserver]]
  address = "%[9]s"
`

// evictionTiming is what the checks run with. Under the VM's emulated CPU a
// healthy probe can take most of a second, so there the times are doubled
// to keep the survivor from flapping.
type evictionTiming struct {
	interval, timeout time.Duration
	rise, fall        int
}

func (e evictionTiming) bound() time.Duration {
	return time.Duration(e.fall)*e.interval + e.timeout
}

func evictionTimingHere() evictionTiming {
	if lab.InVM() {
		return evictionTiming{interval: 2 * time.Second, timeout: time.Second, rise: 2, fall: 2}
	}
	return evictionTiming{interval: time.Second, timeout: 500 * time.Millisecond, rise: 2, fall: 2}
}

// evictionLab is natLab without the sorry server, keeping hold of each real
// server's testserver so a test can kill, stop and restart it.
type evictionLab struct {
	*dirLab
	testserver string
	nets       map[string]*lab.NS
	procs      map[string]*lab.Proc
}

func newEvictionLab(t *testing.T) *evictionLab {
	lab.RequireIPVS(t)
	l := &evictionLab{
		dirLab:     &dirLab{t: t, vip: "10.0.1.100", reals: map[string]string{}, client: lab.NewNS(t, "client"), dir: lab.NewNS(t, "dir")},
		testserver: lab.Bin(t, "testserver"),
		nets:       map[string]*lab.NS{},
		procs:      map[string]*lab.Proc{},
	}
	l.client.Veth("eth0", l.dir, "eth0")
	l.client.Addr("eth0", "10.0.1.2/24")
	l.client.Route("default", "via", "10.0.1.1")
	l.dir.Addr("eth0", "10.0.1.1/24")
	l.dir.Sysctl("net.ipv4.ip_forward", "1")
	names := []string{"rs1", "rs2"}
	for i, name := range names {
		ns := lab.NewNS(t, name)
		l.dir.Veth(name, ns, "eth0")
		ns.Addr("eth0", fmt.Sprintf("10.0.2.%d/24", 11+i))
		ns.Route("default", "via", "10.0.2.1")
		l.reals[name] = fmt.Sprintf("10.0.2.%d", 11+i)
		l.nets[name] = ns
	}
	l.dir.Bridge("br0", names...)
	l.dir.Addr("br0", "10.0.2.1/24")
	for _, name := range names {
		l.startReal(name)
	}
	k, err := director.OpenKernelAt("/run/netns/" + l.dir.Name)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { k.Close() })
	l.kernel = k
	return l
}

// startReal starts the testserver of a real server and waits until it accepts.
func (l *evictionLab) startReal(name string) {
	l.procs[name] = l.nets[name].Start(l.testserver, "-name", name, "-http", ":80")
	l.dir.WaitTCP(l.rs(name), 10*time.Second)
}

// inKernel returns the weight of real server name in the kernel's table of
// the VIP, and whether it is there at all.
func (l *evictionLab) inKernel(t *testing.T, name string) (int, bool) {
	t.Helper()
	tab, err := l.kernel.Dump(context.Background())
	if err != nil {
		t.Fatalf("dump the kernel table: %v", err) // on t: l.dump would fail the parent test
	}
	want := netip.MustParseAddrPort(l.rs(name))
	for _, s := range tab {
		for _, d := range s.Dests {
			if d.Addr == want {
				return d.Weight, true
			}
		}
	}
	return 0, false
}

// realServer is the real server at addr in st, and whether st lists it.
func realServer(st status.Report, addr string) (status.RealServer, bool) {
	if r := st.RealServer("", addr); r != nil {
		return *r, true
	}
	return status.RealServer{}, false
}

func (l *evictionLab) startLvsd(t *testing.T, checkLines string, tm evictionTiming) *opsLab {
	t.Helper()
	// A clean table: what an earlier subtest's lvsd left must not count.
	l.dir.Run("ipvsadm", "-C")
	o := &opsLab{dirLab: l.dirLab, t: t, lvsd: lab.Bin(t, "lvsd"), dirTmp: t.TempDir()}
	o.path, o.socket = filepath.Join(o.dirTmp, "lvsd.toml"), filepath.Join(o.dirTmp, "lvsd.sock")
	text := fmt.Sprintf(evictionConfig, o.dirTmp, l.vip, checkLines, tm.interval, tm.timeout, tm.rise, tm.fall, l.reals["rs1"], l.reals["rs2"])
	if err := os.WriteFile(o.path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	o.proc = l.dir.Start(o.lvsd, "run", "-config", o.path)
	t.Cleanup(func() {
		if err := o.proc.Stop(); err != nil {
			t.Errorf("lvsd exit: %v", err)
		}
		if t.Failed() {
			t.Logf("lvsd output:\n%s", o.proc.Output())
		}
	})
	return o
}

// status reads the status document from the metrics listener: an HTTP GET
// from this process is much cheaper under emulation than exec'ing the CLI.
func (o *opsLab) fetchStatus() (status.Report, error) {
	var st status.Report
	resp, err := o.dir.HTTPClient(5 * time.Second).Get("http://127.0.0.1:9910/status")
	if err != nil {
		return st, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return st, err
	}
	return st, json.Unmarshal(body, &st)
}

// cliStatus runs `lvsd status -json` as an operator would.
func (o *opsLab) evictionCLIStatus(t *testing.T) status.Report {
	t.Helper()
	out, err := exec.Command(o.lvsd, "status", "-socket", o.socket, "-json").CombinedOutput()
	var st status.Report
	if err != nil || json.Unmarshal(out, &st) != nil {
		t.Fatalf("lvsd status -json: %v\n%s", err, out)
	}
	return st
}

// trafficLog records a stream of HTTP requests through the VIP, each on a
// new connection, so the test can see where requests landed around an
// eviction.
type trafficLog struct {
	mu   sync.Mutex
	reqs []trafficReq
	stop chan struct{}
	done chan struct{}
}

type trafficReq struct {
	start    time.Time
	answered string // the real server's name, "" on error
	err      error
}

func (l *evictionLab) startTraffic() *trafficLog {
	tl := &trafficLog{stop: make(chan struct{}), done: make(chan struct{})}
	client := l.client.HTTPClient(3 * time.Second)
	url := "http://" + l.vip + "/"
	go func() {
		defer close(tl.done)
		for {
			select {
			case <-tl.stop:
				return
			case <-time.After(100 * time.Millisecond):
			}
			r := trafficReq{start: time.Now()}
			resp, err := client.Get(url)
			if err == nil {
				body, rerr := io.ReadAll(resp.Body)
				resp.Body.Close()
				r.answered, err = strings.TrimSpace(string(body)), rerr
			}
			r.err = err
			tl.mu.Lock()
			tl.reqs = append(tl.reqs, r)
			tl.mu.Unlock()
		}
	}()
	return tl
}

// waitAfter waits until n requests that started after t0 have ended.
func (tl *trafficLog) waitAfter(t *testing.T, t0 time.Time, n int) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		tl.mu.Lock()
		got := 0
		for _, r := range tl.reqs {
			if r.start.After(t0) {
				got++
			}
		}
		tl.mu.Unlock()
		if got >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d requests after %s within 30 s, want %d", got, t0.Format("15:04:05.000"), n)
		}
	}
}

func (tl *trafficLog) finish() []trafficReq {
	close(tl.stop)
	<-tl.done
	return tl.reqs
}

func TestEviction(t *testing.T) {
	l := newEvictionLab(t)
	tm := evictionTimingHere()
	t.Logf("checks: interval %v, timeout %v, rise %d, fall %d; eviction bound fall×interval+timeout = %v",
		tm.interval, tm.timeout, tm.rise, tm.fall, tm.bound())
	for _, tc := range []struct {
		name, check string
		sig         syscall.Signal
		reason      string // class of the down reason
	}{
		{"tcp/SIGKILL", `type = "tcp"`, syscall.SIGKILL, "refused"},
		{"http/SIGKILL", `type = "http"` + "\n  path = \"/healthz\"\n  expect_body = \"^rs[0-9]\"", syscall.SIGKILL, "refused"},
		// A stopped server's kernel still completes the handshake, so a TCP
		// check passes; only a check that waits for an answer times out.
		{"http/SIGSTOP", `type = "http"` + "\n  path = \"/healthz\"", syscall.SIGSTOP, "timeout"},
	} {
		if !t.Run(tc.name, func(t *testing.T) { testEvictionOf(t, l, tm, tc.check, tc.sig, tc.reason) }) {
			return // the next case would start from a broken lab
		}
	}
}

func testEvictionOf(t *testing.T, l *evictionLab, tm evictionTiming, check string, sig syscall.Signal, reason string) {
	step := func(name string) { t.Logf("--- %s (%s)", name, time.Now().Format("15:04:05.000")) }
	d := l.startLvsd(t, check, tm)
	rs2 := l.rs("rs2")

	step("lvsd up: both real servers in the kernel table")
	d.eventually("both real servers in the kernel", 60*time.Second, func() error {
		if d.proc.Exited() {
			t.Fatalf("lvsd exited:\n%s", d.proc.Output())
		}
		for _, name := range []string{"rs1", "rs2"} {
			if _, ok := l.inKernel(t, name); !ok {
				return fmt.Errorf("%s not in the kernel table", name)
			}
		}
		return nil
	})
	l.expectOnly(6, "rs1", "rs2")

	step(unix.SignalName(sig) + " to rs2's testserver")
	traffic := l.startTraffic()
	time.Sleep(500 * time.Millisecond) // a few requests before the failure, for the log
	killed := time.Now()
	victim := l.procs["rs2"]
	if err := victim.Signal(sig); err != nil {
		t.Fatal(err)
	}
	limit := 10 * tm.bound()
	var evicted time.Time
	for {
		if _, ok := l.inKernel(t, "rs2"); !ok {
			evicted = time.Now()
			break
		}
		if time.Since(killed) > limit {
			traffic.finish()
			t.Fatalf("rs2 still in the kernel table %v after %s (bound %v)\n%s", limit, unix.SignalName(sig), tm.bound(), l.dir.Run("ipvsadm", "-Ln"))
		}
		time.Sleep(10 * time.Millisecond)
	}
	took := evicted.Sub(killed)
	t.Logf("eviction: %v after %s; bound fall×interval+timeout = %d×%v+%v = %v (%.2f of the bound)",
		took.Round(time.Millisecond), unix.SignalName(sig), tm.fall, tm.interval, tm.timeout, tm.bound(), took.Seconds()/tm.bound().Seconds())

	step("new connections land only on the survivor")
	traffic.waitAfter(t, evicted, 10)
	reqs := traffic.finish()
	var before, failedBefore, after int
	for _, r := range reqs {
		switch {
		case r.start.Before(evicted):
			before++
			if r.err != nil || r.answered != "rs1" && r.answered != "rs2" {
				failedBefore++
			}
		case r.err != nil:
			t.Errorf("request at %s, after the eviction: %v", r.start.Format("15:04:05.000"), r.err)
		case r.answered != "rs1":
			t.Errorf("request at %s, after the eviction, answered by %q", r.start.Format("15:04:05.000"), r.answered)
		default:
			after++
		}
	}
	t.Logf("traffic: %d of %d requests started before the eviction failed; the %d after it all came from rs1", failedBefore, before, after)
	l.expectOnly(6, "rs1")

	step("lvsd status -json says why rs2 is down")
	st := d.evictionCLIStatus(t)
	r, ok := realServer(st, rs2)
	switch {
	case !ok:
		t.Errorf("lvsd status -json has no %s", rs2)
	case r.Health != "down" || r.KernelWeight != -1:
		t.Errorf("lvsd status: %s health %q, kernel weight %d; want down and out of the kernel", rs2, r.Health, r.KernelWeight)
	case !strings.HasPrefix(r.Reason, reason+":"):
		t.Errorf("lvsd status: %s down for %q, want a %s reason", rs2, r.Reason, reason)
	case r.Failures < tm.fall:
		t.Errorf("lvsd status: %s down after %d consecutive failures, fall is %d", rs2, r.Failures, tm.fall)
	default:
		t.Logf("lvsd status: %s %s, %d consecutive failures: %s", rs2, r.Health, r.Failures, r.Reason)
	}
	s := d.metrics()
	if v := s.get("lvsd_check_transitions_total", "realserver", rs2, "to", "down"); v != 1 {
		t.Errorf("lvsd_check_transitions_total{%s,to=down} = %v, want 1: more is a false eviction while it was alive", rs2, v)
	}
	if v := s.get("lvsd_check_last_failure_info", "realserver", rs2, "reason", reason); v != 1 {
		t.Errorf("lvsd_check_last_failure_info{%s,reason=%s} = %v, want 1", rs2, reason, v)
	}

	step("rs2 restarted: back only after rise passing probes")
	if sig == syscall.SIGSTOP {
		if err := victim.Signal(syscall.SIGCONT); err != nil {
			t.Fatal(err)
		}
	} else {
		l.startReal("rs2")
	}
	restarted := time.Now()
	// A status, a kernel dump, a status: when both statuses show the same
	// single passing probe of a still-down rs2, the dump between them shows
	// the table while rise was not yet reached.
	var heldOut int
	for {
		before, err := d.fetchStatus()
		if err != nil {
			t.Fatalf("status: %v", err)
		}
		_, in := l.inKernel(t, "rs2")
		afterSt, err := d.fetchStatus()
		if err != nil {
			t.Fatalf("status: %v", err)
		}
		b, _ := realServer(before, rs2)
		a, _ := realServer(afterSt, rs2)
		if in {
			if a.Health != "up" || a.Successes < tm.rise {
				t.Errorf("rs2 in the kernel table with health %q after %d consecutive successes, rise is %d", a.Health, a.Successes, tm.rise)
			}
			t.Logf("restore: rs2 back %v after its restart, with %d consecutive successes (rise %d); %d looks at it held out after a passing probe",
				time.Since(restarted).Round(time.Millisecond), a.Successes, tm.rise, heldOut)
			break
		}
		if b.Health == "down" && b.Successes >= 1 && b.Successes < tm.rise && a.LastCheck.Equal(b.LastCheck) && a.Successes == b.Successes {
			heldOut++
		}
		if time.Since(restarted) > 60*time.Second {
			t.Fatalf("rs2 not back %v after its restart: %+v\n%s", time.Since(restarted), a, l.dir.Run("ipvsadm", "-Ln"))
		}
		time.Sleep(50 * time.Millisecond)
	}
	if heldOut == 0 {
		t.Errorf("never saw rs2 down after a passing probe: it came back before rise (%d) passes, or the probes outran the polling", tm.rise)
	}
	s = d.metrics()
	if v := s.get("lvsd_check_transitions_total", "realserver", rs2, "to", "up"); v != 2 {
		t.Errorf("lvsd_check_transitions_total{%s,to=up} = %v, want 2 (start and restore)", rs2, v)
	}
	// A live server evicted is a defect (probes timing out against a
	// server that answers): the timeouts here are generous for the VM.
	if v := s.get("lvsd_check_transitions_total", "realserver", l.rs("rs1"), "to", "down"); v > 0 {
		t.Errorf("the survivor rs1, alive throughout, went down %v times", v)
	}
	l.expectOnly(6, "rs1", "rs2")
}
