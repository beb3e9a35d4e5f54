package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/lvsd/lvsd/e2e/lab"
	"github.com/lvsd/lvsd/internal/status"
	"github.com/lvsd/lvsd/vrrp"
)

// Authenticated VRRP (issue 13): lvsd's [vrrp.auth] against keepalived
// 2.4.3's auth_hmac, the attacks it must stop, and the rollout. These run
// in host network namespaces (no IPVS needed); their names start "auth-".

// keepalived24Path is where the prebuilt keepalived 2.4.3 test peer lives
// on the lab machines (see its README there); LVSD_KEEPALIVED_2_4 names
// another build.
const keepalived24Path = "/work/shared/peers/keepalived-2.4.3/keepalived"

// keepalived24 returns the keepalived 2.4.3 binary, or skips: Debian 12
// ships 2.2.7, which has no auth_hmac.
func keepalived24(t *testing.T) string {
	t.Helper()
	p := os.Getenv("LVSD_KEEPALIVED_2_4")
	if p == "" {
		p = keepalived24Path
	}
	if _, err := os.Stat(p); err != nil {
		t.Skipf("keepalived 2.4.3 (auth_hmac) is not at %s, so the interop test cannot run: set LVSD_KEEPALIVED_2_4 to a keepalived >= 2.4.0 built with ./configure --disable-snmp --disable-dbus", p)
	}
	if out, err := exec.Command(p, "--version").CombinedOutput(); err != nil {
		t.Fatalf("%s does not run (%v): %s\n`make deps` installs what it needs (libssl3 libnl-3-200 libnl-genl-3-200 libmagic1)", p, err, out)
	}
	return p
}

// The lab's keys: key 1 inline (the keepalived vectors' 0x00..0x1f), key 2
// from a 0600 file that both daemons read.
const (
	labKey1 = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"
	labKey2 = "lab key two, read by both from one file"
)

// authCfg is one [vrrp.auth] / auth_hmac block.
type authCfg struct {
	mode       string // "" = enforce
	antiReplay string // "" = time
	window     string // time_window, "" = default
	active     int    // 0 = default
	keys       []int  // 1 and/or 2
}

func writeKeyFile(t *testing.T, dir string) string {
	t.Helper()
	p := filepath.Join(dir, "vrrp-key2")
	if err := os.WriteFile(p, []byte(labKey2+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// lvsd is the [vrrp.auth] table of an lvsd instance.
func (a authCfg) lvsd(keyFile string) string {
	var b strings.Builder
	b.WriteString("\n  [vrrp.auth]\n")
	if a.mode != "" {
		fmt.Fprintf(&b, "  mode = %q\n", a.mode)
	}
	if a.antiReplay != "" {
		fmt.Fprintf(&b, "  anti_replay = %q\n", a.antiReplay)
	}
	if a.window != "" {
		fmt.Fprintf(&b, "  time_window = %q\n", a.window)
	}
	if a.active != 0 {
		fmt.Fprintf(&b, "  active_key = %d\n", a.active)
	}
	for _, k := range a.keys {
		secret := "hex:" + labKey1
		if k == 2 {
			secret = "file:" + keyFile
		}
		fmt.Fprintf(&b, "    [[vrrp.auth.key]]\n    id = %d\n    secret = %q\n", k, secret)
	}
	return b.String()
}

// keepalived is the auth_hmac block of a keepalived 2.4 instance.
func (a authCfg) keepalived(keyFile string) string {
	var b strings.Builder
	b.WriteString("  auth_hmac {\n")
	for _, k := range a.keys {
		if k == 2 {
			fmt.Fprintf(&b, "    key 2 file:%s\n", keyFile)
		} else {
			fmt.Fprintf(&b, "    key 1 hex:%s\n", labKey1)
		}
	}
	active := a.active
	if active == 0 {
		active = a.keys[0]
	}
	fmt.Fprintf(&b, "    active_key %d\n", active)
	if a.antiReplay != "" {
		fmt.Fprintf(&b, "    anti_replay %s\n", a.antiReplay)
	}
	if a.mode != "" {
		fmt.Fprintf(&b, "    mode %s\n", a.mode)
	}
	b.WriteString("  }\n")
	return b.String()
}

// ka24 is a keepalived 2.4 instance of the lab.
type ka24 struct {
	priority int
	v6       bool
	src      string // unicast_src_ip
	peer     string // unicast peer; "" = multicast
	auth     authCfg
}

func (k ka24) config(keyFile string) string {
	vip := vrrpVIP + "/24"
	if k.v6 {
		vip = vrrpVIP6 + "/64"
	}
	uni := ""
	if k.peer != "" {
		uni = fmt.Sprintf("  unicast_src_ip %s\n  unicast_peer {\n    %s\n  }\n", k.src, k.peer)
	}
	return fmt.Sprintf(`global_defs {
  router_id ka24
  vrrp_version 3
  vrrp_garp_master_repeat 3
}
vrrp_instance vi1 {
  state BACKUP
  interface eth0
  virtual_router_id 51
  version 3
  priority %d
  advert_int %g
%s%s  virtual_ipaddress {
    %s
  }
}
`, k.priority, vrrpInterval().Seconds(), uni, k.auth.keepalived(keyFile), vip)
}

// startKeepalived24 starts keepalived 2.4 in ns (fresh pid files: a killed
// run leaves them behind, and a stale one stops the next start).
func (l *vrrpLab) startKeepalived24(bin string, ns *lab.NS, k ka24, keyFile string) *lab.Proc {
	l.t.Helper()
	base := filepath.Join(l.dir, ns.Name+"-ka24")
	if err := os.WriteFile(base+".conf", []byte(k.config(keyFile)), 0o644); err != nil {
		l.t.Fatal(err)
	}
	for _, p := range []string{".pid", ".vrrp.pid", ".check.pid"} {
		os.Remove(base + p)
	}
	return ns.Start(bin, "-n", "-l", "-D", "-P", "-f", base+".conf",
		"-p", base+".pid", "-r", base+".vrrp.pid", "-c", base+".check.pid")
}

// authStatus reads instance's state and auth counters from the lvsd in ns;
// raw is the whole JSON document.
func (l *vrrpLab) authStatus(ns *lab.NS, instance string) (state string, a *vrrp.AuthStatus, raw string) {
	l.t.Helper()
	out, err := exec.Command(lvsdBinary(l.t), "status", "-json", "-socket", l.socket(ns)).Output()
	if err != nil {
		l.t.Fatalf("lvsd status in %s: %v", ns.Name, err)
	}
	var st status.Report
	if err := json.Unmarshal(out, &st); err != nil {
		l.t.Fatalf("lvsd status in %s: %v\n%s", ns.Name, err, out)
	}
	if v := st.Instance(instance); v != nil {
		return v.State, v.Auth, string(out)
	}
	l.t.Fatalf("lvsd status in %s has no %s:\n%s", ns.Name, instance, out)
	return "", nil, ""
}

// stateChanges counts the transitions an lvsd has logged.
func stateChanges(p *lab.Proc) int { return strings.Count(p.Output(), "vrrp: state change") }

// noDrops fails unless the lvsd in ns dropped no advert for auth reasons
// and verified some.
func (l *vrrpLab) verifiedNoDrops(ns *lab.NS) {
	l.t.Helper()
	_, a, _ := l.authStatus(ns, "vi1")
	if a == nil || a.Verified == 0 {
		l.t.Errorf("lvsd in %s verified no advert: %+v", ns.Name, a)
		return
	}
	for r, n := range a.Drops {
		if n != 0 {
			l.t.Errorf("lvsd in %s dropped %d adverts as %s", ns.Name, n, r)
		}
	}
}

// kaComplaints are keepalived 2.4's log lines about a trailer it rejected.
func kaComplaints(p *lab.Proc) []string {
	var out []string
	for _, line := range strings.Split(p.Output(), "\n") {
		if strings.Contains(line, "authentication") {
			out = append(out, line)
		}
	}
	return out
}

// TestVRRPAuthKeepalivedInterop: lvsd and keepalived 2.4.3 sign and verify
// each other's adverts (enforce on both, key 2 from a file) over IPv4 and
// IPv6, multicast and unicast, under anti_replay time and monotonic, in
// both roles: the backup stays backup while the master lives, takes over
// on SIGTERM (priority 0) and on SIGKILL (silence), and the master, back,
// preempts it. Neither side rejects a single advert of the other.
//
// On the host every combination runs (16). In the e2e VM, where each takes
// ~45 s under TCG, the 8 that pair every role, family and transport, with
// the anti-replay scheme alternating, so every two dimensions still meet
// in every combination of their values.
func TestVRRPAuthKeepalivedInterop(t *testing.T) {
	bin := keepalived24(t)
	for _, lvsdMaster := range []bool{true, false} {
		for _, v6 := range []bool{false, true} {
			for _, unicast := range []bool{false, true} {
				for _, replay := range []string{"time", "monotonic"} {
					if lab.InVM() && (replay == "time") != (lvsdMaster == (v6 == unicast)) {
						continue
					}
					name := fmt.Sprintf("%s/%s/%s/%s", map[bool]string{true: "lvsd master", false: "keepalived master"}[lvsdMaster],
						map[bool]string{false: "IPv4", true: "IPv6"}[v6], map[bool]string{false: "multicast", true: "unicast"}[unicast], replay)
					t.Run(name, func(t *testing.T) { authInterop(t, bin, lvsdMaster, v6, unicast, replay) })
				}
			}
		}
	}
}

func authInterop(t *testing.T, bin string, lvsdMaster, v6, unicast bool, replay string) {
	l := newVRRPLabNamed(t, "auth-")
	keyFile := writeKeyFile(t, l.dir)
	auth := authCfg{antiReplay: replay, active: 2, keys: []int{1, 2}}
	vip := vrrpVIP
	addr := func(i int) string { return fmt.Sprintf("10.9.0.%d", i) }
	if v6 {
		vip = vrrpVIP6
		addr = func(i int) string { return fmt.Sprintf("fd09::%d", i) }
	}
	// d1 is the master (200), d2 the backup (100).
	node := func(ns *lab.NS, i, prio int) (lvsdVRRP, ka24) {
		lv := lvsdVRRP{priority: prio, preempt: true, v6: v6}
		k := ka24{priority: prio, v6: v6, auth: auth}
		if unicast {
			lv.peer = addr(3 - i)
			lv.extra = fmt.Sprintf("source_address = %q\n", addr(i))
			k.src, k.peer = addr(i), addr(3-i)
		}
		lv.extra += auth.lvsd(keyFile)
		return lv, k
	}
	lv1, ka1 := node(l.d1, 1, 200)
	lv2, ka2 := node(l.d2, 2, 100)
	startMaster := func() *lab.Proc {
		if lvsdMaster {
			return l.startLVSD(l.d1, lv1)
		}
		return l.startKeepalived24(bin, l.d1, ka1, keyFile)
	}
	master := startMaster()
	var peer *lab.Proc // the other implementation, backup throughout
	if lvsdMaster {
		peer = l.startKeepalived24(bin, l.d2, ka2, keyFile)
	} else {
		peer = l.startLVSD(l.d2, lv2)
	}
	kaProc, lvsdNS := peer, l.d1
	if !lvsdMaster {
		kaProc, lvsdNS = master, l.d2
	}
	l.master(l.d1, l.d2, vip, 2*takeoverWithin)
	l.stillMaster(l.d1, l.d2, vip, 1500*time.Millisecond)

	// SIGTERM: the master resigns with a signed priority 0.
	master.Signal(syscall.SIGTERM)
	if err := master.Wait(5 * time.Second); err != nil {
		t.Logf("master exit after SIGTERM: %v", err)
	}
	l.master(l.d2, l.d1, vip, takeoverWithin)
	// Back, it hears the new master's signed adverts, then preempts.
	master = startMaster()
	if !lvsdMaster {
		kaProc = master
	}
	l.master(l.d1, l.d2, vip, 2*takeoverWithin)
	l.stillMaster(l.d1, l.d2, vip, time.Second)
	// The lvsd verified the keepalived master's adverts: as backup all
	// along, or after its restart until it preempted.
	l.verifiedNoDrops(lvsdNS)
	// SIGKILL: silence, and the backup's Master_Down_Timer.
	master.Signal(syscall.SIGKILL)
	waitFor(t, scaled(takeoverWithin), "backup takes over", func() bool {
		return holdsVIP(l.d2, vip) && l.clientReaches(l.d2, vip)
	})
	if c := kaComplaints(kaProc); len(c) > 0 {
		t.Errorf("keepalived rejected lvsd's adverts:\n%s", strings.Join(c, "\n"))
	}
	if !lvsdMaster {
		l.verifiedNoDrops(l.d2)
	}
}
