package e2e

// IPVS connection sync against the real kernel: the sync daemons driven over
// generic netlink, and established connections surviving a SIGKILL of the
// master director. Runs inside the IPVS VM (make e2e); skipped elsewhere.

import (
	"context"
	"errors"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/lvsd/lvsd/director"
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
