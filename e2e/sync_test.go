package e2e

// IPVS connection sync against the real kernel: the sync daemons driven over
// generic netlink, and established connections surviving a SIGKILL of the
// master director. Runs inside the IPVS VM (make e2e); skipped elsewhere.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/lvsd/lvsd/director"
	"github.com/lvsd/lvsd/e2e/lab"
)

// syncNeedIPVS skips unless this kernel has IPVS and we are root.
func syncNeedIPVS(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	if _, err := os.Stat("/proc/net/ip_vs"); err != nil {
		t.Skip("kernel has no IPVS (run with make e2e, inside the VM)")
	}
}

func syncRun(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// syncNetns creates a named network namespace removed at cleanup and
// returns an open file descriptor of it.
func syncNetns(t *testing.T, name string) int {
	t.Helper()
	exec.Command("ip", "netns", "del", name).Run()
	syncRun(t, "ip", "netns", "add", name)
	t.Cleanup(func() { exec.Command("ip", "netns", "del", name).Run() })
	f, err := os.Open("/run/netns/" + name)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	syncRun(t, "ip", "-n", name, "link", "set", "lo", "up")
	return int(f.Fd())
}

func TestSyncDaemonsGenetlink(t *testing.T) {
	syncNeedIPVS(t)
	const ns = "e2e-syncd"
	fd := syncNetns(t, ns)
	syncRun(t, "ip", "-n", ns, "link", "add", "sync0", "type", "veth", "peer", "name", "sync1")
	syncRun(t, "ip", "-n", ns, "addr", "add", "192.0.2.1/24", "dev", "sync0")
	syncRun(t, "ip", "-n", ns, "link", "set", "sync0", "up")
	syncRun(t, "ip", "-n", ns, "link", "set", "sync1", "up")

	k, err := director.DialKernelSync(fd)
	if err != nil {
		t.Fatal(err)
	}
	defer k.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	if ds, err := k.Daemons(ctx); err != nil || len(ds) != 0 {
		t.Fatalf("fresh namespace: Daemons = %+v, %v; want none", ds, err)
	}
	master := director.SyncDaemon{State: director.SyncMaster, Interface: "sync0", SyncID: 42,
		MaxLen: 1000, Group: netip.MustParseAddr("239.255.1.2"), Port: 9123, TTL: 3}
	backup := director.SyncDaemon{State: director.SyncBackup, Interface: "sync1", SyncID: 43}
	for _, d := range []director.SyncDaemon{master, backup} {
		if err := k.StartDaemon(ctx, d); err != nil {
			t.Fatal(err)
		}
	}
	if err := k.StartDaemon(ctx, master); !errors.Is(err, director.ErrDaemonRunning) {
		t.Errorf("second master: err = %v, want ErrDaemonRunning", err)
	}

	ds, err := k.Daemons(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// The backup reads back with the kernel's defaults filled in; its
	// maxlen comes from the interface MTU (1500 - IP - UDP headers).
	wantBackup := backup
	wantBackup.MaxLen, wantBackup.Group, wantBackup.Port, wantBackup.TTL = 1472, director.DefaultSyncGroup, director.DefaultSyncPort, director.DefaultSyncTTL
	if len(ds) != 2 || ds[0] != master || ds[1] != wantBackup {
		t.Errorf("Daemons =\n%+v\nwant\n%+v", ds, []director.SyncDaemon{master, wantBackup})
	}

	// ipvsadm reads the same kernel state through its own libipvs.
	out := syncRun(t, "ip", "netns", "exec", ns, "ipvsadm", "-L", "-n", "--daemon")
	for _, want := range []string{
		"master sync daemon (mcast=sync0, syncid=42, maxlen=1000, group=239.255.1.2, port=9123, ttl=3)",
		"backup sync daemon (mcast=sync1, syncid=43, maxlen=1472, group=224.0.0.81, port=8848, ttl=1)",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("ipvsadm --daemon output lacks %q:\n%s", want, out)
		}
	}

	if err := k.StopDaemon(ctx, director.SyncMaster); err != nil {
		t.Fatal(err)
	}
	if err := k.StopDaemon(ctx, director.SyncMaster); !errors.Is(err, director.ErrNoDaemon) {
		t.Errorf("stopping a stopped master: err = %v, want ErrNoDaemon", err)
	}
	if ds, err := k.Daemons(ctx); err != nil || len(ds) != 1 || ds[0].State != director.SyncBackup {
		t.Errorf("after stopping master: Daemons = %+v, %v; want the backup only", ds, err)
	}
	if err := k.StopDaemon(ctx, director.SyncBackup); err != nil {
		t.Fatal(err)
	}
	if out := syncRun(t, "ip", "netns", "exec", ns, "ipvsadm", "-L", "-n", "--daemon"); strings.TrimSpace(out) != "" {
		t.Errorf("after stopping both, ipvsadm still lists:\n%s", out)
	}
}

// The failover lab: directors d1 (priority 150) and d2 (100), a client and
// two real servers on one bridge. DR: the real servers hold the VIP on lo.
// NAT: they sit in 10.8.1.0/24 on the same segment with the VRRP-held
// 10.8.1.254 as their gateway, so replies follow the VIP to the new master.
const (
	syncVIP  = "10.8.0.10"
	syncPort = 7
	syncGW   = "10.8.1.254"
)

type syncLab struct {
	t               *testing.T
	d1, d2, client  *lab.NS
	rs              []*lab.NS
	forwarding, dir string
	lvsd1, lvsd2    *lab.Proc
}

func newSyncLab(t *testing.T, forwarding string) *syncLab {
	t.Helper()
	lab.RequireIPVS(t)
	l := &syncLab{t: t, forwarding: forwarding, dir: t.TempDir()}
	sw := lab.NewNS(t, "ssw")
	l.d1, l.d2, l.client = lab.NewNS(t, "sd1"), lab.NewNS(t, "sd2"), lab.NewNS(t, "scl")
	l.rs = []*lab.NS{lab.NewNS(t, "sr1"), lab.NewNS(t, "sr2")}
	ports := []string{}
	for i, ns := range append([]*lab.NS{l.d1, l.d2, l.client}, l.rs...) {
		p := fmt.Sprintf("p%d", i)
		ns.Veth("eth0", sw, p)
		ports = append(ports, p)
	}
	sw.Bridge("br0", ports...)
	// Snooping would hold back the sync group until a querier shows up.
	sw.Run("ip", "link", "set", "br0", "type", "bridge", "mcast_snooping", "0")
	l.d1.Addr("eth0", "10.8.0.1/24")
	l.d2.Addr("eth0", "10.8.0.2/24")
	l.client.Addr("eth0", "10.8.0.100/24")
	for i, r := range l.rs {
		if forwarding == "dr" {
			r.Addr("eth0", fmt.Sprintf("10.8.0.%d/24", 11+i))
			r.Addr("lo", syncVIP+"/32")
			r.Sysctl("net.ipv4.conf.all.arp_ignore", "1")
			r.Sysctl("net.ipv4.conf.all.arp_announce", "2")
		} else {
			r.Addr("eth0", fmt.Sprintf("10.8.1.%d/24", 11+i))
			r.Route("default", "via", syncGW)
		}
		r.Start(lab.Bin(t, "testserver"), "-tcp-echo", fmt.Sprintf(":%d", syncPort))
	}
	if forwarding == "nat" {
		for i, d := range []*lab.NS{l.d1, l.d2} {
			d.Addr("eth0", fmt.Sprintf("10.8.1.%d/24", 1+i))
			// Replies leave by the interface they came in on; a redirect
			// would only confuse the real servers.
			d.Sysctl("net.ipv4.conf.all.send_redirects", "0")
			d.Sysctl("net.ipv4.conf.eth0.send_redirects", "0")
		}
	}
	return l
}

func (l *syncLab) config(name string, priority int) string {
	vips := fmt.Sprintf("%q", syncVIP+"/32")
	if l.forwarding == "nat" {
		vips += fmt.Sprintf(", %q", syncGW+"/24")
	}
	var reals strings.Builder
	for i := range l.rs {
		addr := fmt.Sprintf("10.8.0.%d", 11+i)
		if l.forwarding == "nat" {
			addr = fmt.Sprintf("10.8.1.%d", 11+i)
		}
		fmt.Fprintf(&reals, "\n  [[service.realserver]]\n  address = %q\n", addr)
	}
	return fmt.Sprintf(`[director]
name = %q
interface = "eth0"
control_socket = %q

[[vrrp]]
name = "front"
vrid = 61
priority = %d
# 1 s, not 100 ms: under the VM's emulated CPU a burst of 50 connections
# delays adverts enough for 100 ms to flap, and sync does not care.
advert_interval = "1s"
vips = [%s]
  [vrrp.sync]

[[service]]
name = "echo"
vip = %q
port = %d
scheduler = "rr"
forwarding = %q
alpha = false
  [[service.check]]
  type = "tcp"
  interval = "1s"
%s`, name, filepath.Join(l.dir, name+".sock"), priority, vips, syncVIP, syncPort, l.forwarding, reals.String())
}

func (l *syncLab) startLVSD(ns *lab.NS, name string, priority int) *lab.Proc {
	l.t.Helper()
	path := filepath.Join(l.dir, name+".toml")
	if err := os.WriteFile(path, []byte(l.config(name, priority)), 0o644); err != nil {
		l.t.Fatal(err)
	}
	return ns.Start(lab.Bin(l.t, "lvsd"), "run", "-config", path)
}

// syncHoldsVIP reports whether ns has the VIP on eth0.
func syncHoldsVIP(ns *lab.NS) bool {
	link, err := ns.Netlink().LinkByName("eth0")
	if err != nil {
		return false
	}
	addrs, err := ns.Netlink().AddrList(link, netlink.FAMILY_V4)
	if err != nil {
		return false
	}
	for _, a := range addrs {
		if a.IP.String() == syncVIP {
			return true
		}
	}
	return false
}

// syncDaemons lists the kernel sync daemons of ns.
func syncDaemons(t *testing.T, ns *lab.NS) []director.SyncDaemon {
	t.Helper()
	f, err := os.Open("/run/netns/" + ns.Name)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	k, err := director.DialKernelSync(int(f.Fd()))
	if err != nil {
		t.Fatal(err)
	}
	defer k.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ds, err := k.Daemons(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return ds
}

func hasDaemon(ds []director.SyncDaemon, s director.SyncState) bool {
	for _, d := range ds {
		if d.State == s {
			return true
		}
	}
	return false
}

// echoLine writes one line and expects it back.
func echoLine(c net.Conn, line string, timeout time.Duration) error {
	c.SetDeadline(time.Now().Add(timeout))
	if _, err := io.WriteString(c, line+"\n"); err != nil {
		return err
	}
	buf := make([]byte, len(line)+1)
	if _, err := io.ReadFull(c, buf); err != nil {
		return err
	}
	if string(buf) != line+"\n" {
		return fmt.Errorf("echo mismatch: %q", buf)
	}
	return nil
}

func TestSyncFailoverDR(t *testing.T)  { testSyncFailover(t, "dr") }
func TestSyncFailoverNAT(t *testing.T) { testSyncFailover(t, "nat") }

// testSyncFailover holds 50 connections through the VIP, kills the master
// lvsd with SIGKILL right after opening them (so the sync records of the
// last ones are still in flight, which is where keepalived loses 10 of 50),
// and requires every connection to keep exchanging data through the new
// master.
func testSyncFailover(t *testing.T, forwarding string) {
	const conns = 50
	l := newSyncLab(t, forwarding)
	l.lvsd1 = l.startLVSD(l.d1, "d1", 150)
	waitFor(t, 15*time.Second, "d1 to take the VIP", func() bool { return syncHoldsVIP(l.d1) })
	l.lvsd2 = l.startLVSD(l.d2, "d2", 100)
	waitFor(t, 15*time.Second, "sync daemons (master on d1, backup on both)", func() bool {
		d1, d2 := syncDaemons(t, l.d1), syncDaemons(t, l.d2)
		return hasDaemon(d1, director.SyncMaster) && hasDaemon(d1, director.SyncBackup) &&
			hasDaemon(d2, director.SyncBackup) && !hasDaemon(d2, director.SyncMaster)
	})
	target := fmt.Sprintf("%s:%d", syncVIP, syncPort)
	// d2 must have the service before it can bind synced connections.
	waitFor(t, 15*time.Second, "the service on d2", func() bool {
		out, _ := l.d2.Try("ipvsadm", "-L", "-n")
		return strings.Count(out, "-> 10.8.") == len(l.rs)
	})
	l.client.WaitTCP(target, 15*time.Second)

	// A burst, as when clients reconnect all at once.
	held := make([]net.Conn, conns)
	errs := make([]error, conns)
	var wg sync.WaitGroup
	for i := range held {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := l.client.Dial("tcp", target, 10*time.Second)
			if err == nil {
				err = echoLine(c, fmt.Sprintf("hello %d", i), 10*time.Second)
			}
			held[i], errs[i] = c, err
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("connection %d before failover: %v", i, err)
		}
		defer held[i].Close()
	}

	killed := time.Now()
	if err := l.lvsd1.Kill(); err == nil {
		t.Fatal("lvsd on d1 exited cleanly before SIGKILL")
	}
	// Take over at once instead of after Master_Down (3 s here): the dead
	// master's kernel then sends its last records only after d2 is master,
	// which is when keepalived has already stopped its backup daemon.
	if out, err := exec.Command(lab.Bin(t, "lvsd"), "takeover", "-socket", filepath.Join(l.dir, "d2.sock"), "front").CombinedOutput(); err != nil {
		t.Fatalf("lvsd takeover on d2: %v: %s", err, out)
	}
	waitFor(t, 10*time.Second, "d2 to take the VIP", func() bool { return syncHoldsVIP(l.d2) })
	t.Logf("d2 holds the VIP %v after SIGKILL", time.Since(killed).Round(time.Millisecond))
	waitFor(t, 10*time.Second, "master daemon on d2", func() bool { return hasDaemon(syncDaemons(t, l.d2), director.SyncMaster) })
	if !hasDaemon(syncDaemons(t, l.d2), director.SyncBackup) {
		t.Error("d2 stopped its backup daemon on becoming master: records the dead master's kernel still sends are lost")
	}
	// The connections stay idle across the takeover, as pooled LDAP
	// connections do; the dead master's kernel thread sends its last
	// records within IPVS_SYNC_FLUSH_TIME (2 s) plus a check period (1 s).
	time.Sleep(4 * time.Second)

	var lost []int
	for i, c := range held {
		if err := echoLine(c, fmt.Sprintf("after %d", i), 10*time.Second); err != nil {
			lost = append(lost, i)
			t.Logf("connection %d lost: %v", i, err)
		}
	}
	t.Logf("%s: %d of %d connections survived the SIGKILL failover", forwarding, conns-len(lost), conns)
	if len(lost) > 0 {
		out, _ := l.d2.Try("ipvsadm", "-L", "-n", "-c")
		t.Fatalf("%d of %d connections lost %v; d2's connection table:\n%s", len(lost), conns, lost, out)
	}
}
