package lab

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

func TestLabCloseRunsLastFirst(t *testing.T) {
	var l Lab
	var got []int
	l.Cleanup(func() { got = append(got, 1) })
	l.Cleanup(func() {
		got = append(got, 2)
		l.Cleanup(func() { got = append(got, 3) }) // registered during Close
	})
	l.Close()
	l.Close()
	if want := []int{2, 3, 1}; !slices.Equal(got, want) {
		t.Fatalf("cleanup order %v, want %v", got, want)
	}
}

func TestUniqueNamesCarryTagPidAndCounter(t *testing.T) {
	a, b := uniqueName("d1"), uniqueName("lvs-a")
	if a == b {
		t.Fatalf("two names alike: %s", a)
	}
	for _, n := range []string{a, b} {
		if !strings.HasPrefix(n, "lvsd-"+tag()+"-") {
			t.Errorf("%s does not start with lvsd-%s-", n, tag())
		}
		pid, ok := ownerPid(n)
		if !ok || pid != os.Getpid() {
			t.Errorf("ownerPid(%s) = %d, %v; want %d", n, pid, ok, os.Getpid())
		}
	}
	if !strings.HasSuffix(b, "-lvs-a") {
		t.Errorf("%s lost its role", b)
	}
}

func TestOwnerPidRefusesForeignNames(t *testing.T) {
	for _, n := range []string{"fob17120-0-cl", "lvsd-demo-lan", "lvsd-x-abc-1-d1", "lvsd-x-12-y-d1", "lvsd-x-12-3-", "other-x-12-3-d1"} {
		if pid, ok := ownerPid(n); ok {
			t.Errorf("ownerPid(%q) = %d; want no owner", n, pid)
		}
	}
}

func TestCleanTag(t *testing.T) {
	for in, want := range map[string]string{"stress": "stress", "wt/Stress-2": "wtstress2", "": "x", "--": "x", "averyveryverylongname": "averyveryv"} {
		if got := cleanTag(in); got != want {
			t.Errorf("cleanTag(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestParseRoute(t *testing.T) {
	r, ok := parseRoute([]string{"default", "via", "10.0.0.1", "dev", "eth0"})
	if !ok || r.Dst != nil || !r.Gw.Equal(net.ParseIP("10.0.0.1")) || r.dev != "eth0" {
		t.Fatalf("default via: %+v %v", r, ok)
	}
	r, ok = parseRoute([]string{"fd00::5", "via", "fd00::1"})
	if !ok || r.Dst.String() != "fd00::5/128" {
		t.Fatalf("host route: %+v %v", r, ok)
	}
	r, ok = parseRoute([]string{"default", "via", "fe80::1"})
	if !ok || r.Family != unix.AF_INET6 {
		t.Fatalf("IPv6 default route has family %d", r.Family)
	}
	for _, args := range [][]string{{"10.0.0.0/8", "table", "5"}, {"10.0.0.0/8", "via"}, {"bogus", "via", "10.0.0.1"}} {
		if _, ok := parseRoute(args); ok {
			t.Errorf("parseRoute(%q) accepted; ip(8) should get it", args)
		}
	}
}

func requireRoot(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root (network namespaces)")
	}
}

// newWire is two namespaces, a (10.77.0.1) and b (10.77.0.2), on a
// bridge in a third, removed when the test ends.
func newWire(t *testing.T) (a, b *NS) { return newWireIn(t, t) }

func TestNamespacesTalkAndGoAway(t *testing.T) {
	requireRoot(t)
	var l Lab
	var names []string
	func() {
		defer l.Close()
		a, b := newWireIn(t, &l)
		names = []string{a.Name, b.Name}
		ln, err := b.Listen("tcp", "10.77.0.2:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		go func() {
			if c, err := ln.Accept(); err == nil {
				c.Close()
			}
		}()
		if err := a.WaitTCP(ln.Addr().String(), 5*time.Second); err != nil {
			t.Fatal(err)
		}
		has, err := b.HasAddr("eth0", netip.MustParseAddr("10.77.0.2"))
		if err != nil || !has {
			t.Fatalf("HasAddr = %v, %v", has, err)
		}
		if has, _ := a.HasAddr("eth0", netip.MustParseAddr("10.77.0.2")); has {
			t.Fatal("a holds b's address")
		}
	}()
	for _, n := range names {
		if _, err := os.Stat("/run/netns/" + n); !os.IsNotExist(err) {
			t.Errorf("netns %s still exists after Close: %v", n, err)
		}
	}
}

func newWireIn(t *testing.T, c Cleaner) (a, b *NS) {
	t.Helper()
	sw, err := NewNS(c, "sw")
	if err != nil {
		t.Fatal(err)
	}
	if err := sw.Bridge("br0"); err != nil {
		t.Fatal(err)
	}
	var nss []*NS
	for i, role := range []string{"a", "b"} {
		ns, err := NewNS(c, role)
		if err != nil {
			t.Fatal(err)
		}
		if err := ns.Plug(sw, "br0", "p"+role); err != nil {
			t.Fatal(err)
		}
		if err := ns.Addr("eth0", fmt.Sprintf("10.77.0.%d/24", i+1)); err != nil {
			t.Fatal(err)
		}
		nss = append(nss, ns)
	}
	return nss[0], nss[1]
}

func TestCaptureSeesBothDirectionsWithKernelTimes(t *testing.T) {
	requireRoot(t)
	a, b := newWire(t)
	capB, err := b.Capture("eth0", unix.ETH_P_IP, 50*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	send := func(from *NS, src, dst string) {
		pc, err := from.ListenPacket("udp", src+":0")
		if err != nil {
			t.Fatal(err)
		}
		defer pc.Close()
		if _, err := pc.WriteTo([]byte("ping"), &net.UDPAddr{IP: net.ParseIP(dst), Port: 9}); err != nil {
			t.Fatal(err)
		}
	}
	before := time.Now()
	send(a, "10.77.0.1", "10.77.0.2")
	send(b, "10.77.0.2", "10.77.0.1")
	buf := make([]byte, 2048)
	var in, out bool
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline) && !(in && out); {
		f, err := capB.Next(buf)
		if err == ErrNoFrame {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		if len(f.Data) < 34 || f.Data[23] != unix.IPPROTO_UDP {
			continue
		}
		src := netip.AddrFrom4([4]byte(f.Data[26:30])).String()
		switch {
		case !f.Outgoing && src == "10.77.0.1":
			in = true
		case f.Outgoing && src == "10.77.0.2":
			out = true
		default:
			t.Fatalf("frame from %s marked outgoing=%v", src, f.Outgoing)
		}
		if f.At.Before(before) || f.At.After(time.Now()) {
			t.Errorf("frame stamped %v, sent after %v", f.At, before)
		}
	}
	if !in || !out {
		t.Fatalf("captured received %v, sent %v; want both", in, out)
	}
	if _, drops, err := capB.Stats(); err != nil || drops != 0 {
		t.Fatalf("stats: %d drops, %v", drops, err)
	}
}

func TestNetemDropsAndClears(t *testing.T) {
	requireRoot(t)
	a, b := newWire(t)
	ln, err := b.Listen("tcp", "10.77.0.2:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	if err := b.Netem("eth0", netlink.NetemQdiscAttrs{Loss: 100}); errors.Is(err, unix.ENOENT) {
		t.Skip("this kernel has no netem (CONFIG_NET_SCH_NETEM); the e2e VM has it")
	} else if err != nil {
		t.Fatal(err)
	}
	if c, err := a.Dial("tcp", ln.Addr().String(), 300*time.Millisecond); err == nil {
		c.Close()
		t.Fatal("connected through 100% loss")
	}
	if err := b.ClearNetem("eth0"); err != nil {
		t.Fatal(err)
	}
	if err := a.WaitTCP(ln.Addr().String(), 5*time.Second); err != nil {
		t.Fatal(err)
	}
}

func TestProcRunsInsideItsNamespace(t *testing.T) {
	requireRoot(t)
	a, _ := newWire(t)
	log := t.TempDir() + "/p.log"
	lines := make(chan string, 10)
	p, err := a.Start(ProcOptions{Log: log, Env: []string{"LAB_TEST=42"}, OnLine: func(s string) { lines <- s }}, "sh", "-c", `ip -o -4 addr show dev eth0; echo env $LAB_TEST; exec sleep 60`)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.WaitOutput("env 42", 5*time.Second); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(p.Output(), "10.77.0.1/24") {
		t.Fatalf("process does not see the namespace's eth0:\n%s", p.Output())
	}
	if first := <-lines; !strings.Contains(first, "10.77.0.1/24") {
		t.Fatalf("OnLine saw %q first", first)
	}
	if second := <-lines; second != "env 42" || p.Tail(1) != "env 42" {
		t.Fatalf("OnLine saw %q second, tail %q", second, p.Tail(1))
	}
	if err := p.Stop(); err == nil {
		t.Fatal("sleep 60 ended by SIGTERM reports no error")
	}
	if !p.Exited() {
		t.Fatal("still running after Stop")
	}
}

func TestRemoveLeftoversTakesOnlyDeadRuns(t *testing.T) {
	requireRoot(t)
	dead := exec.Command("true")
	if err := dead.Run(); err != nil {
		t.Fatal(err)
	}
	pid := dead.Process.Pid
	if alive(pid) {
		t.Skip("pid reused at once")
	}
	left := fmt.Sprintf("lvsd-%s-%d-1-left", tag(), pid)
	if err := addNamedNetns(left); err != nil {
		t.Fatal(err)
	}
	mine, err := NewNS(t, "mine")
	if err != nil {
		t.Fatal(err)
	}
	removed, err := RemoveLeftovers()
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(removed, left) {
		t.Fatalf("removed %v, not %s", removed, left)
	}
	if slices.Contains(removed, mine.Name) {
		t.Fatalf("removed a live run's namespace %s", mine.Name)
	}
	if _, err := os.Stat("/run/netns/" + mine.Name); err != nil {
		t.Fatal(err)
	}
}
