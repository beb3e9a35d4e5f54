package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	lnetns "github.com/lvsd/lvsd/internal/netns"
)

// nsPrefix names every namespace the demo creates, so a run can find and
// remove what an earlier, killed run left behind.
const nsPrefix = "lvsd-demo-"

// host is one machine of the lab: a named network namespace. Links,
// addresses and sysctls are set over netlink from the demo process, because
// under the VM's emulated CPU every exec of ip(8) costs a good fraction of a
// second. (e2e/lab has the same helpers, but bound to a *testing.T.)
type host struct {
	name string // short name, e.g. "lvs-a"
	ns   string // name known to `ip netns`
	fd   netns.NsHandle
	nl   *netlink.Handle
}

func newHost(name string) (*host, error) {
	h := &host{name: name, ns: nsPrefix + name, fd: netns.None()}
	if out, err := exec.Command("ip", "netns", "add", h.ns).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("ip netns add %s: %w: %s", h.ns, err, strings.TrimSpace(string(out)))
	}
	var err error
	if h.fd, err = netns.GetFromName(h.ns); err != nil {
		h.destroy()
		return nil, fmt.Errorf("open netns %s: %w", nsPrefix+name, err)
	}
	// Only rtnetlink: the VM's kernel lacks some of the other families a
	// default handle opens (xfrm).
	if h.nl, err = netlink.NewHandleAt(h.fd, unix.NETLINK_ROUTE); err != nil {
		h.destroy()
		return nil, fmt.Errorf("netlink in %s: %w", name, err)
	}
	// Without lo up the namespace has no local routes, and IPVS rejects
	// destinations with EINVAL.
	if err := h.up("lo"); err != nil {
		h.destroy()
		return nil, err
	}
	return h, nil
}

// detach removes the namespace's name but keeps it alive until destroy, so
// a "rebooted" host can get a fresh namespace under the same name at once.
// Freeing a namespace is slow, heavy kernel work (under the VM's emulated
// CPU it stalls networking for a while), which must not happen in the
// middle of a measurement.
func (h *host) detach() error {
	if err := netns.DeleteNamed(h.ns); err != nil {
		return fmt.Errorf("%s: %w", h.name, err)
	}
	h.ns = ""
	return nil
}

// destroy deletes the namespace. The kernel frees it once the last process
// in it has gone.
func (h *host) destroy() {
	if h.nl != nil {
		h.nl.Close()
		h.nl = nil
	}
	if h.fd.IsOpen() {
		h.fd.Close()
	}
	if h.ns != "" {
		_ = netns.DeleteNamed(h.ns)
		h.ns = ""
	}
}

func (h *host) up(dev string) error {
	l, err := h.nl.LinkByName(dev)
	if err != nil {
		return fmt.Errorf("%s: link %s: %w", h.name, dev, err)
	}
	if err := h.nl.LinkSetUp(l); err != nil {
		return fmt.Errorf("%s: set %s up: %w", h.name, dev, err)
	}
	return nil
}

// plug connects h to a port of the bridge in lan: a veth named eth0 in h
// and h.name in lan.
func (h *host) plug(lan *host, bridge string) error {
	veth := &netlink.Veth{
		LinkAttrs:     netlink.LinkAttrs{Name: h.name},
		PeerName:      "eth0",
		PeerNamespace: netlink.NsFd(h.fd),
	}
	if err := lan.nl.LinkAdd(veth); err != nil {
		return fmt.Errorf("cable %s-%s: %w", lan.name, h.name, err)
	}
	br, err := lan.nl.LinkByName(bridge)
	if err != nil {
		return fmt.Errorf("%s: bridge %s: %w", lan.name, bridge, err)
	}
	port, err := lan.nl.LinkByName(h.name)
	if err != nil {
		return fmt.Errorf("%s: port %s: %w", lan.name, h.name, err)
	}
	if err := lan.nl.LinkSetMaster(port, br); err != nil {
		return fmt.Errorf("%s: add %s to %s: %w", lan.name, h.name, bridge, err)
	}
	if err := lan.up(h.name); err != nil {
		return err
	}
	return h.up("eth0")
}

// unplug pulls h's cable: deleting the bridge's end of the veth deletes
// both ends, so h loses eth0 and every address on it.
func (h *host) unplug(lan *host) error {
	port, err := lan.nl.LinkByName(h.name)
	if err != nil {
		return fmt.Errorf("%s: port %s: %w", lan.name, h.name, err)
	}
	return lan.nl.LinkDel(port)
}

func (h *host) bridge(name string) error {
	snooping := false
	// No IGMP snooping: without a querier on the segment it would decide
	// on its own which ports hear the connection-sync multicast.
	br := &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: name}, MulticastSnooping: &snooping}
	if err := h.nl.LinkAdd(br); err != nil {
		return fmt.Errorf("%s: bridge %s: %w", h.name, name, err)
	}
	return h.up(name)
}

func (h *host) addr(dev, cidr string) error {
	a, err := netlink.ParseAddr(cidr)
	if err != nil {
		return err
	}
	l, err := h.nl.LinkByName(dev)
	if err != nil {
		return fmt.Errorf("%s: link %s: %w", h.name, dev, err)
	}
	if err := h.nl.AddrAdd(l, a); err != nil {
		return fmt.Errorf("%s: add %s to %s: %w", h.name, cidr, dev, err)
	}
	return nil
}

func (h *host) sysctl(key, value string) error {
	path := filepath.Join("/proc/sys", strings.ReplaceAll(key, ".", "/"))
	err := h.do(func() error { return os.WriteFile(path, []byte(value+"\n"), 0o644) })
	if err != nil {
		return fmt.Errorf("%s: sysctl %s=%s: %w", h.name, key, value, err)
	}
	return nil
}

// command returns an unstarted command that runs argv inside h.
func (h *host) command(argv ...string) *exec.Cmd {
	return exec.Command("ip", append([]string{"netns", "exec", h.ns}, argv...)...)
}

// do runs fn on an OS thread switched into h: sockets fn opens belong to h.
// It enters through h's open handle, not its name, which a detached host
// no longer has.
func (h *host) do(fn func() error) error {
	return lnetns.Do(fmt.Sprintf("/proc/self/fd/%d", int(h.fd)), fn)
}

// dial opens a connection from inside h.
func (h *host) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	var conn net.Conn
	err := h.do(func() error {
		var err error
		conn, err = (&net.Dialer{}).DialContext(ctx, network, addr)
		return err
	})
	return conn, err
}

// removeLeftovers deletes namespaces an earlier run left behind (it was
// killed before it could clean up), after killing what still runs in them.
func removeLeftovers() ([]string, error) {
	entries, err := os.ReadDir("/run/netns")
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, nil
		}
		return nil, err
	}
	var removed []string
	for _, e := range entries {
		if !strings.HasPrefix(e.Name(), nsPrefix) {
			continue
		}
		if out, err := exec.Command("ip", "netns", "pids", e.Name()).Output(); err == nil {
			for _, pid := range strings.Fields(string(out)) {
				var p int
				if _, err := fmt.Sscan(pid, &p); err == nil && p > 1 {
					_ = unix.Kill(p, unix.SIGKILL)
				}
			}
		}
		if err := netns.DeleteNamed(e.Name()); err != nil {
			return removed, fmt.Errorf("remove leftover netns %s: %w", e.Name(), err)
		}
		removed = append(removed, e.Name())
	}
	return removed, nil
}
