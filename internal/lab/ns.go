package lab

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	nsrun "github.com/lvsd/lvsd/internal/netns"
)

// NS is a network namespace of the lab: a machine. Links, addresses,
// routes and sysctls are set over netlink and from this process, not by
// exec'ing ip(8): under the VM's emulated CPU every exec costs a good
// fraction of a second. Its methods may be called from any goroutine.
type NS struct {
	Name string // as known to `ip netns`; "" once detached
	Role string // the short name it was created with, e.g. "d1"

	c     Cleaner
	fd    netns.NsHandle
	nl    *netlink.Handle
	mu    sync.Mutex // guards Name
	close sync.Once
}

// NewNS creates a network namespace named after role (see the package
// comment), brings its loopback up and registers its deletion with c. The
// kernel frees a deleted namespace once the last process in it has gone.
func NewNS(c Cleaner, role string) (*NS, error) {
	name := uniqueName(role)
	if err := addNamedNetns(name); err != nil {
		return nil, fmt.Errorf("create netns %s: %w", name, err)
	}
	ns := &NS{Name: name, Role: role, c: c, fd: netns.None()}
	c.Cleanup(ns.Close)
	var err error
	if ns.fd, err = netns.GetFromName(name); err != nil {
		return nil, fmt.Errorf("open netns %s: %w", name, err)
	}
	// Only rtnetlink: the VM's kernel lacks some of the other families a
	// default handle opens (xfrm).
	if ns.nl, err = netlink.NewHandleAt(ns.fd, unix.NETLINK_ROUTE); err != nil {
		return nil, fmt.Errorf("netlink in %s: %w", name, err)
	}
	// Without lo up the namespace has no local routes, and IPVS rejects
	// destinations with EINVAL.
	if err := ns.Up("lo"); err != nil {
		return nil, err
	}
	return ns, nil
}

// addNamedNetns does what `ip netns add` does, without the exec: a new
// namespace bind-mounted at /run/netns/NAME.
func addNamedNetns(name string) error {
	runtime.LockOSThread()
	self, err := netns.Get()
	if err != nil {
		runtime.UnlockOSThread()
		return err
	}
	defer self.Close()
	created, err := netns.NewNamed(name) // moves this thread into it
	if err == nil {
		created.Close()
	}
	if err := netns.Set(self); err != nil {
		// Leave the thread locked: the runtime discards it with this goroutine.
		return fmt.Errorf("return from new netns %s: %w", name, err)
	}
	runtime.UnlockOSThread()
	return err
}

// Close deletes the namespace. Calling it again is harmless.
func (ns *NS) Close() {
	ns.close.Do(func() {
		if ns.nl != nil {
			ns.nl.Close()
		}
		if ns.fd.IsOpen() {
			ns.fd.Close()
		}
		ns.mu.Lock()
		name := ns.Name
		ns.Name = ""
		ns.mu.Unlock()
		if name != "" {
			_ = netns.DeleteNamed(name)
		}
	})
}

// Detach removes the namespace's name but keeps it alive until Close, so
// a "rebooted" machine can get a fresh namespace at once. Freeing a
// namespace is slow, heavy kernel work (under the VM's emulated CPU it
// stalls networking for a while), which must not happen in the middle of a
// measurement. A detached namespace still works through its handle (Do,
// Netlink), but cannot start processes.
func (ns *NS) Detach() error {
	ns.mu.Lock()
	defer ns.mu.Unlock()
	if ns.Name == "" {
		return nil
	}
	if err := netns.DeleteNamed(ns.Name); err != nil {
		return fmt.Errorf("%s: %w", ns.Role, err)
	}
	ns.Name = ""
	return nil
}

func (ns *NS) String() string { return ns.Role }

func (ns *NS) name() string {
	ns.mu.Lock()
	defer ns.mu.Unlock()
	return ns.Name
}

// Netlink returns a netlink handle working inside the namespace, for what
// the methods here do not cover.
func (ns *NS) Netlink() *netlink.Handle { return ns.nl }

// Handle returns the namespace's open handle (owned by ns: do not close it).
func (ns *NS) Handle() netns.NsHandle { return ns.fd }

func (ns *NS) errorf(format string, args ...any) error {
	return fmt.Errorf("%s: "+format, append([]any{ns.Role}, args...)...)
}

// Sysctl sets a sysctl inside the namespace, e.g. Sysctl("net.ipv4.ip_forward", "1").
func (ns *NS) Sysctl(key, value string) error {
	path := "/proc/sys/" + strings.ReplaceAll(key, ".", "/")
	if err := ns.Do(func() error { return os.WriteFile(path, []byte(value+"\n"), 0o644) }); err != nil {
		return ns.errorf("sysctl %s=%s: %w", key, value, err)
	}
	return nil
}

// Command returns an unstarted command that runs argv inside the namespace.
func (ns *NS) Command(argv ...string) *exec.Cmd {
	return exec.Command("ip", append([]string{"netns", "exec", ns.name()}, argv...)...)
}

// Try runs argv in the namespace and returns its combined output.
func (ns *NS) Try(argv ...string) (string, error) {
	out, err := ns.Command(argv...).CombinedOutput()
	if err != nil {
		err = ns.errorf("%s: %w: %s", strings.Join(argv, " "), err, bytes.TrimSpace(out))
	}
	return string(out), err
}

// Do runs fn on an OS thread switched into the namespace. Sockets and
// /proc/sys/net files fn opens belong to the namespace; goroutines fn
// starts do not run in it. It enters through the open handle, so it works
// on a detached namespace too.
func (ns *NS) Do(fn func() error) error {
	return nsrun.Do(fmt.Sprintf("/proc/self/fd/%d", int(ns.fd)), fn)
}
