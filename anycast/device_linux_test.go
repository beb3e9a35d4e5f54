package anycast

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// holdEnv makes the test binary a process that holds a TUN device until
// killed: the stand-in for an lvsd that crashes.
const holdEnv = "ANYCAST_TEST_HOLD_DEVICE"

func TestMain(m *testing.M) {
	if name := os.Getenv(holdEnv); name != "" {
		t, err := OpenTUN(name)
		if err == nil {
			err = t.Set(context.Background(), []netip.Prefix{netip.MustParsePrefix("192.0.2.99/32")})
		}
		if err != nil {
			fmt.Println("error:", err)
			os.Exit(1)
		}
		fmt.Println("held")
		select {}
	}
	os.Exit(m.Run())
}

// inNewNetns runs fn on a thread of its own in a fresh network namespace,
// so the devices a test makes are nobody else's. The thread is thrown away
// afterwards.
func inNewNetns(t *testing.T, fn func()) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root (network namespaces, TUN devices)")
	}
	if _, err := os.Stat("/dev/net/tun"); err != nil {
		t.Skip("no /dev/net/tun")
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		runtime.LockOSThread() // never unlocked: the thread dies with the goroutine
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			t.Errorf("unshare: %v", err)
			return
		}
		fn()
	}()
	<-done
}

func addrsOf(t *testing.T, dev string) []string {
	t.Helper()
	link, err := netlink.LinkByName(dev)
	if err != nil {
		t.Fatalf("device %s: %v", dev, err)
	}
	as, err := netlink.AddrList(link, netlink.FAMILY_ALL)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, a := range as {
		if p, ok := prefixOf(a.IPNet); ok && !p.Addr().IsLinkLocalUnicast() {
			out = append(out, p.String())
		}
	}
	slices.Sort(out)
	return out
}

func gone(dev string) bool {
	_, err := netlink.LinkByName(dev)
	var nf netlink.LinkNotFoundError
	return errors.As(err, &nf)
}

func TestTUNHoldsExactlyTheAnnouncedVIPs(t *testing.T) {
	inNewNetns(t, func() {
		ctx := context.Background()
		dev, err := OpenTUN("lvsd-test0")
		if err != nil {
			t.Fatal(err)
		}
		link, err := netlink.LinkByName("lvsd-test0")
		if err != nil || link.Attrs().Flags&1 == 0 { // net.FlagUp
			t.Fatalf("device not up: %v %+v", err, link)
		}
		a, b, c := netip.MustParsePrefix("192.0.2.10/32"), netip.MustParsePrefix("192.0.2.11/32"), netip.MustParsePrefix("2001:db8::10/128")
		if err := dev.Set(ctx, []netip.Prefix{a, b, c}); err != nil {
			t.Fatal(err)
		}
		if got := addrsOf(t, "lvsd-test0"); !slices.Equal(got, []string{"192.0.2.10/32", "192.0.2.11/32", "2001:db8::10/128"}) {
			t.Errorf("after Set(a, b, c): %v", got)
		}
		// Someone removes one by hand; the next Set puts it back and
		// withdraws what is no longer wanted.
		if err := netlink.AddrDel(link, &netlink.Addr{IPNet: ipNetOf(c)}); err != nil {
			t.Fatal(err)
		}
		if err := dev.Set(ctx, []netip.Prefix{b, c}); err != nil {
			t.Fatal(err)
		}
		if got := addrsOf(t, "lvsd-test0"); !slices.Equal(got, []string{"192.0.2.11/32", "2001:db8::10/128"}) {
			t.Errorf("after Set(b, c): %v", got)
		}
		// The same name cannot be held twice.
		if other, err := OpenTUN("lvsd-test0"); err == nil {
			other.Close()
			t.Error("a second holder opened the device")
		}
		if err := dev.Close(); err != nil {
			t.Fatal(err)
		}
		if !gone("lvsd-test0") {
			t.Error("device still there after Close")
		}
	})
}

// The crash bound rests on this: a process that holds the device and dies
// by SIGKILL takes the device and its VIPs with it, with no code of its
// own running.
func TestTUNGoesWhenItsHolderIsKilled(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	inNewNetns(t, func() {
		cmd := exec.Command(exe)
		cmd.Env = append(os.Environ(), holdEnv+"=lvsd-test1")
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil { // forked from this thread: in this namespace
			t.Fatal(err)
		}
		defer cmd.Process.Kill()
		line, _ := bufio.NewReader(out).ReadString('\n')
		if line != "held\n" {
			cmd.Process.Kill()
			cmd.Wait()
			t.Fatalf("holder: %q", line)
		}
		if got := addrsOf(t, "lvsd-test1"); !slices.Equal(got, []string{"192.0.2.99/32"}) {
			t.Fatalf("holder's device: %v", got)
		}
		if err := cmd.Process.Signal(unix.SIGKILL); err != nil {
			t.Fatal(err)
		}
		cmd.Wait()
		deadline := time.Now().Add(10 * time.Second)
		for !gone("lvsd-test1") {
			if time.Now().After(deadline) {
				t.Fatal("device still there 10 s after its holder was killed")
			}
			time.Sleep(10 * time.Millisecond)
		}
	})
}

func TestTUNRefusesAnotherKindOfDevice(t *testing.T) {
	inNewNetns(t, func() {
		if err := netlink.LinkAdd(&netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: "lvsd-test2"}}); err != nil {
			t.Fatal(err)
		}
		if dev, err := OpenTUN("lvsd-test2"); err == nil {
			dev.Close()
			t.Fatal("took a bridge")
		}
	})
}

// A persistent TUN device of the same name (`ip tuntap add`, or a stale
// one) would outlive lvsd: OpenTUN takes it over and makes it go with lvsd.
func TestTUNTakesOverAPersistentDevice(t *testing.T) {
	inNewNetns(t, func() {
		fd, err := unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_CLOEXEC, 0)
		if err != nil {
			t.Fatal(err)
		}
		ifr, _ := unix.NewIfreq("lvsd-test3")
		ifr.SetUint16(unix.IFF_TUN | unix.IFF_NO_PI)
		if err := unix.IoctlIfreq(fd, unix.TUNSETIFF, ifr); err != nil {
			t.Fatal(err)
		}
		if err := unix.IoctlSetInt(fd, unix.TUNSETPERSIST, 1); err != nil {
			t.Fatal(err)
		}
		unix.Close(fd)
		if gone("lvsd-test3") {
			t.Fatal("a persistent device went with its descriptor")
		}
		dev, err := OpenTUN("lvsd-test3")
		if err != nil {
			t.Fatal(err)
		}
		dev.Close()
		if !gone("lvsd-test3") {
			t.Error("device taken over from a persistent one outlived its holder")
		}
	})
}
