package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lvsd/lvsd/e2e/lab"
)

// The VRRP lab: two directors and a client on one bridge, in namespaces.
// Directors are 10.9.0.1 and 10.9.0.2, the client 10.9.0.100, and the
// instance moves 10.9.0.10. None of this needs IPVS, so it runs on the host.
const (
	vrrpVIP  = "10.9.0.10"
	vrrpVIP6 = "fd09::10"
)

type vrrpLab struct {
	t              *testing.T
	sw             *lab.NS // holds the bridge
	d1, d2, client *lab.NS
	dir            string
}

func newVRRPLab(t *testing.T) *vrrpLab { return newVRRPLabNamed(t, "") }

// newVRRPLabNamed is newVRRPLab with namespace names starting with prefix
// (lab.NewNS adds the pid), so a suite's labs are told apart in `ip netns`.
func newVRRPLabNamed(t *testing.T, prefix string) *vrrpLab {
	t.Helper()
	lab.RequireRoot(t)
	l := &vrrpLab{t: t, dir: t.TempDir()}
	l.sw = lab.NewNS(t, prefix+"sw")
	l.d1, l.d2, l.client = lab.NewNS(t, prefix+"d1"), lab.NewNS(t, prefix+"d2"), lab.NewNS(t, prefix+"cl")
	l.d1.Veth("eth0", l.sw, "p1")
	l.d2.Veth("eth0", l.sw, "p2")
	l.client.Veth("eth0", l.sw, "pc")
	l.sw.Bridge("br0", "p1", "p2", "pc")
	// Multicast snooping would hold back 224.0.0.18 until a querier shows up.
	l.sw.Run("ip", "link", "set", "br0", "type", "bridge", "mcast_snooping", "0")
	for i, ns := range []*lab.NS{l.d1, l.d2} {
		ns.Addr("eth0", fmt.Sprintf("10.9.0.%d/24", i+1))
		ns.Addr("eth0", fmt.Sprintf("fd09::%d/64", i+1))
	}
	// The kernel ignores an ARP update within locktime (1 s) of the last
	// one; the client should follow each takeover's first GARP.
	l.client.Sysctl("net.ipv4.neigh.eth0.locktime", "0")
	l.client.Addr("eth0", "10.9.0.100/24")
	l.client.Addr("eth0", "fd09::100/64")
	// IPv6 link-local addresses need DAD to finish before adverts can use them.
	waitFor(t, 5*time.Second, "link-local addresses", func() bool {
		for _, ns := range []*lab.NS{l.d1, l.d2} {
			out, _ := ns.Try("ip", "-6", "addr", "show", "dev", "eth0", "scope", "link", "tentative")
			if strings.Contains(out, "inet6") {
				return false
			}
		}
		return true
	})
	return l
}

// lvsdBinary returns an lvsd built from this tree (treeBinary).
func lvsdBinary(t *testing.T) string { return treeBinary(t, "lvsd", "./cmd/lvsd") }

// built holds, per binary name, the one build of it this test binary makes.
var built sync.Map // name -> *treeBuild

type treeBuild struct {
	once sync.Once
	path string
	err  error
}

// treeBinary returns the program pkg built from this tree for this test
// binary, so a stale bin/NAME never stands in for the code under test.
// Where no Go toolchain is at hand (the e2e VM) it uses bin/NAME from
// `make build`.
func treeBinary(t *testing.T, name, pkg string) string {
	t.Helper()
	if _, err := exec.LookPath("go"); err != nil || lab.InVM() {
		return lab.Bin(t, name)
	}
	v, _ := built.LoadOrStore(name, &treeBuild{})
	b := v.(*treeBuild)
	b.once.Do(func() {
		dir, err := os.MkdirTemp("", "lvsd-e2e-"+name)
		if err != nil {
			b.err = err
			return
		}
		b.path = filepath.Join(dir, name)
		cmd := exec.Command("go", "build", "-o", b.path, pkg)
		cmd.Dir = lab.RepoRoot(t)
		if out, err := cmd.CombinedOutput(); err != nil {
			b.err = fmt.Errorf("building %s: %v: %s", name, err, out)
		}
	})
	if b.err != nil {
		t.Fatal(b.err)
	}
	return b.path
}

// vrrpInterval is the advert interval of the lab: 100 ms on the host; the
// e2e VM emulates its CPU (TCG) and cannot keep that pace, so it gets a
// slower protocol and proportionally longer waits.
func vrrpInterval() time.Duration {
	if lab.InVM() {
		return 500 * time.Millisecond
	}
	return 100 * time.Millisecond
}

// scaled stretches a wait for the VM.
func scaled(d time.Duration) time.Duration {
	return d * vrrpInterval() / (100 * time.Millisecond)
}

// lvsdVRRP is one instance's settings in an lvsd config.
type lvsdVRRP struct {
	priority int
	preempt  bool
	checksum string // "" = default
	v6       bool
	track    []string // track_interfaces
	peer     string   // unicast peer; "" = multicast
	extra    string   // appended to the instance's table verbatim
	// VRRPv2 (vrrp_v2_test.go): version 2 with its whole-second interval
	// (0: vrrpInterval()); for keepalived, version 2 is its default.
	version  int
	interval time.Duration
	pass     string // auth_pass / authentication { auth_type PASS }
	metrics  string // metrics_listen in the director's netns; "" = none
}

func (v lvsdVRRP) advertInterval() time.Duration {
	if v.interval != 0 {
		return v.interval
	}
	return vrrpInterval()
}

func (v lvsdVRRP) config(socket string) string {
	vip := vrrpVIP + "/24"
	if v.v6 {
		vip = vrrpVIP6 + "/64"
	}
	s := fmt.Sprintf(`[director]
interface = "eth0"
control_socket = %q
metrics_listen = %q

[[vrrp]]
name = "vi1"
vrid = 51
priority = %d
advert_interval = "%dms"
preempt = %v
vips = [%q]
garp_repeat = 3
`, socket, v.metrics, v.priority, v.advertInterval().Milliseconds(), v.preempt, vip)
	if v.version != 0 {
		s += fmt.Sprintf("version = %d\n", v.version)
	}
	if v.pass != "" {
		s += fmt.Sprintf("auth_pass = %q\n", v.pass)
	}
	if v.checksum != "" {
		s += fmt.Sprintf("checksum = %q\n", v.checksum)
	}
	if v.peer != "" {
		s += fmt.Sprintf("unicast_peers = [%q]\n", v.peer)
	}
	if len(v.track) > 0 {
		s += fmt.Sprintf("track_interfaces = [%q]\n", strings.Join(v.track, `", "`))
	}
	return s + v.extra
}

// startLVSD starts `lvsd run` in ns with a VRRP-only config.
func (l *vrrpLab) startLVSD(ns *lab.NS, v lvsdVRRP) *lab.Proc {
	l.t.Helper()
	path := l.configPath(ns)
	if err := os.WriteFile(path, []byte(v.config(l.socket(ns))), 0o644); err != nil {
		l.t.Fatal(err)
	}
	p := ns.Start(lvsdBinary(l.t), "run", "-log-level", "debug", "-config", path)
	if os.Getenv("LVSD_E2E_VERBOSE") != "" {
		l.t.Cleanup(func() { l.t.Logf("%s:\n%s", ns.Name, p.Output()) })
	}
	return p
}

func (l *vrrpLab) socket(ns *lab.NS) string { return filepath.Join(l.dir, ns.Role+".sock") }

// configPath is where startLVSD writes ns's config, and so where a reload
// test rewrites it.
func (l *vrrpLab) configPath(ns *lab.NS) string { return filepath.Join(l.dir, ns.Role+".toml") }

// ctl runs an lvsd control verb (takeover, giveup) against the lvsd in ns.
func (l *vrrpLab) ctl(ns *lab.NS, verb, instance string) {
	l.t.Helper()
	out, err := exec.Command(lvsdBinary(l.t), verb, "-socket", l.socket(ns), instance).CombinedOutput()
	if err != nil {
		l.t.Fatalf("lvsd %s %s: %v: %s", verb, instance, err, out)
	}
}

// keepalivedConfig is a keepalived 2.2 instance equivalent to lvsdVRRP.
func keepalivedConfig(v lvsdVRRP) string {
	vip := vrrpVIP + "/24"
	if v.v6 {
		vip = vrrpVIP6 + "/64"
	}
	preempt := ""
	if !v.preempt {
		preempt = "nopreempt"
	}
	if v.peer != "" {
		preempt += "\n  unicast_peer {\n    " + v.peer + "\n  }"
	}
	if v.pass != "" {
		preempt += "\n  authentication {\n    auth_type PASS\n    auth_pass " + v.pass + "\n  }"
	}
	version := "\n  vrrp_version 3"
	if v.version == 2 {
		version = "" // keepalived's default
	}
	return fmt.Sprintf(`global_defs {
  router_id ka%s
  vrrp_garp_master_repeat 3
}
vrrp_instance vi1 {
  state BACKUP
  interface eth0
  virtual_router_id 51
  priority %d
  advert_int %g
  %s
  virtual_ipaddress {
    %s
  }
}
`, version, v.priority, v.advertInterval().Seconds(), preempt, vip)
}

// startKeepalived starts keepalived in ns, with pid files of its own: a
// leftover pid file of a killed run would stop it from starting.
func (l *vrrpLab) startKeepalived(ns *lab.NS, v lvsdVRRP) *lab.Proc {
	l.t.Helper()
	base := filepath.Join(l.dir, ns.Role)
	if err := os.WriteFile(base+".conf", []byte(keepalivedConfig(v)), 0o644); err != nil {
		l.t.Fatal(err)
	}
	for _, p := range []string{".pid", ".vrrp.pid", ".check.pid"} {
		os.Remove(base + p)
	}
	return ns.Start("/usr/sbin/keepalived", "-n", "-l", "-D", "-P", "-f", base+".conf",
		"-p", base+".pid", "-r", base+".vrrp.pid", "-c", base+".check.pid")
}

func holdsVIP(ns *lab.NS, vip string) bool {
	out, _ := ns.Try("ip", "-o", "addr", "show", "dev", "eth0")
	return strings.Contains(out, " "+vip+"/")
}

func macOf(ns *lab.NS) string {
	out, _ := ns.Try("cat", "/sys/class/net/eth0/address")
	return strings.TrimSpace(out)
}

// clientReaches reports whether the client gets an answer from the VIP and
// its neighbour entry points at ns, i.e. traffic goes to that director.
func (l *vrrpLab) clientReaches(ns *lab.NS, vip string) bool {
	if _, err := l.client.Try("busybox", "ping", "-c", "1", "-W", "1", vip); err != nil {
		return false
	}
	out, _ := l.client.Try("ip", "neigh", "show", vip)
	return strings.Contains(out, macOf(ns))
}

// master asserts, waiting up to timeout, that want alone holds the VIP and
// the client's traffic reaches it.
func (l *vrrpLab) master(want, other *lab.NS, vip string, timeout time.Duration) {
	l.t.Helper()
	waitFor(l.t, scaled(timeout), want.Name+" master", func() bool {
		return holdsVIP(want, vip) && !holdsVIP(other, vip) && l.clientReaches(want, vip)
	})
}

// stillMaster asserts that want stays the only holder for d.
func (l *vrrpLab) stillMaster(want, other *lab.NS, vip string, d time.Duration) {
	l.t.Helper()
	end := time.Now().Add(scaled(d))
	for time.Now().Before(end) {
		if !holdsVIP(want, vip) || holdsVIP(other, vip) {
			l.t.Fatalf("%s lost the VIP (or %s took it) within %v", want.Name, other.Name, d)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	end := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(end) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}
