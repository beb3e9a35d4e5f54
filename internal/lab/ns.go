package lab

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"time"

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

func (ns *NS) link(dev string) (netlink.Link, error) {
	l, err := ns.nl.LinkByName(dev)
	if err != nil {
		return nil, ns.errorf("link %s: %w", dev, err)
	}
	return l, nil
}

// Up sets dev up.
func (ns *NS) Up(dev string) error {
	l, err := ns.link(dev)
	if err != nil {
		return err
	}
	if err := ns.nl.LinkSetUp(l); err != nil {
		return ns.errorf("set %s up: %w", dev, err)
	}
	return nil
}

// Veth connects this namespace to peer with a veth pair named name here
// and peerName there, both up.
func (ns *NS) Veth(name string, peer *NS, peerName string) error {
	veth := &netlink.Veth{
		LinkAttrs:     netlink.LinkAttrs{Name: name},
		PeerName:      peerName,
		PeerNamespace: netlink.NsFd(peer.fd),
	}
	if err := ns.nl.LinkAdd(veth); err != nil {
		return ns.errorf("veth %s to %s/%s: %w", name, peer.Role, peerName, err)
	}
	if err := ns.Up(name); err != nil {
		return err
	}
	return peer.Up(peerName)
}

// Bridge creates bridge name with the given member interfaces, all up.
// IGMP snooping is off: with no querier on a lab segment it would decide
// on its own which ports hear VRRP and connection-sync multicast.
func (ns *NS) Bridge(name string, members ...string) error {
	snooping := false
	br := &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: name}, MulticastSnooping: &snooping}
	if err := ns.nl.LinkAdd(br); err != nil {
		return ns.errorf("bridge %s: %w", name, err)
	}
	if err := ns.Up(name); err != nil {
		return err
	}
	for _, m := range members {
		if err := ns.Enslave(name, m); err != nil {
			return err
		}
	}
	return nil
}

// Enslave adds dev to bridge and sets it up.
func (ns *NS) Enslave(bridge, dev string) error {
	br, err := ns.link(bridge)
	if err != nil {
		return err
	}
	l, err := ns.link(dev)
	if err != nil {
		return err
	}
	if err := ns.nl.LinkSetMaster(l, br); err != nil {
		return ns.errorf("add %s to bridge %s: %w", dev, bridge, err)
	}
	return ns.Up(dev)
}

// Plug cables this namespace to a port of bridge in sw: a veth named eth0
// here and port in sw, both up.
func (ns *NS) Plug(sw *NS, bridge, port string) error {
	if err := sw.Veth(port, ns, "eth0"); err != nil {
		return err
	}
	return sw.Enslave(bridge, port)
}

// Unplug pulls the cable Plug laid: deleting sw's end of the veth deletes
// both ends, so this namespace loses eth0 and every address on it.
func (ns *NS) Unplug(sw *NS, port string) error {
	l, err := sw.link(port)
	if err != nil {
		return err
	}
	if err := sw.nl.LinkDel(l); err != nil {
		return sw.errorf("delete port %s: %w", port, err)
	}
	return nil
}

// Addr adds an address (CIDR form) to dev. IPv6 addresses skip duplicate
// address detection, which would otherwise keep them unusable for a second
// or two.
func (ns *NS) Addr(dev, cidr string) error {
	addr, err := netlink.ParseAddr(cidr)
	if err != nil {
		return ns.errorf("address %q: %w", cidr, err)
	}
	if addr.IP.To4() == nil {
		addr.Flags |= unix.IFA_F_NODAD
	}
	l, err := ns.link(dev)
	if err != nil {
		return err
	}
	if err := ns.nl.AddrAdd(l, addr); err != nil {
		return ns.errorf("add %s to %s: %w", cidr, dev, err)
	}
	return nil
}

// HasAddr reports whether dev holds ip.
func (ns *NS) HasAddr(dev string, ip netip.Addr) (bool, error) {
	l, err := ns.link(dev)
	if err != nil {
		return false, err
	}
	addrs, err := ns.nl.AddrList(l, netlink.FAMILY_ALL)
	if err != nil {
		return false, ns.errorf("addresses of %s: %w", dev, err)
	}
	for _, a := range addrs {
		if got, ok := netip.AddrFromSlice(a.IP); ok && got.Unmap() == ip.Unmap() {
			return true, nil
		}
	}
	return false, nil
}

// MAC returns dev's hardware address.
func (ns *NS) MAC(dev string) (net.HardwareAddr, error) {
	l, err := ns.link(dev)
	if err != nil {
		return nil, err
	}
	return l.Attrs().HardwareAddr, nil
}

// Route adds a route written as for `ip route add`: a destination
// ("default", a prefix or an address) then any of "via GW", "dev DEV",
// "src ADDR". Anything else is passed to ip(8) as is.
func (ns *NS) Route(args ...string) error {
	r, ok := parseRoute(args)
	if !ok {
		argv := []string{"ip", "route", "add"}
		if strings.Contains(strings.Join(args, " "), ":") {
			argv = []string{"ip", "-6", "route", "add"}
		}
		_, err := ns.Try(append(argv, args...)...)
		return err
	}
	if r.dev != "" {
		l, err := ns.link(r.dev)
		if err != nil {
			return err
		}
		r.LinkIndex = l.Attrs().Index
	}
	if err := ns.nl.RouteAdd(&r.Route); err != nil {
		return ns.errorf("route %s: %w", strings.Join(args, " "), err)
	}
	return nil
}

type route struct {
	netlink.Route
	dev string
}

// parseRoute reads the `ip route add` words Route handles itself.
func parseRoute(args []string) (route, bool) {
	var r route
	if len(args)%2 != 1 {
		return r, false
	}
	if args[0] != "default" {
		dst := args[0]
		if !strings.Contains(dst, "/") {
			if strings.Contains(dst, ":") {
				dst += "/128"
			} else {
				dst += "/32"
			}
		}
		_, ipnet, err := net.ParseCIDR(dst)
		if err != nil {
			return r, false
		}
		r.Dst = ipnet
	}
	for i := 1; i < len(args); i += 2 {
		switch key, val := args[i], args[i+1]; key {
		case "via":
			if r.Gw = net.ParseIP(val); r.Gw == nil {
				return r, false
			}
		case "src":
			if r.Src = net.ParseIP(val); r.Src == nil {
				return r, false
			}
		case "dev":
			r.dev = val
		default:
			return r, false
		}
	}
	if r.Dst == nil && r.Gw == nil {
		return r, false
	}
	if r.Dst == nil && r.Gw.To4() == nil {
		r.Family = unix.AF_INET6
	}
	return r, true
}

// Sysctl sets a sysctl inside the namespace, e.g. Sysctl("net.ipv4.ip_forward", "1").
func (ns *NS) Sysctl(key, value string) error {
	path := "/proc/sys/" + strings.ReplaceAll(key, ".", "/")
	if err := ns.Do(func() error { return os.WriteFile(path, []byte(value+"\n"), 0o644) }); err != nil {
		return ns.errorf("sysctl %s=%s: %w", key, value, err)
	}
	return nil
}

// Netem puts a netem qdisc on dev (replacing its root qdisc), e.g.
// NetemQdiscAttrs{Loss: 100} drops everything dev sends.
func (ns *NS) Netem(dev string, attrs netlink.NetemQdiscAttrs) error {
	l, err := ns.link(dev)
	if err != nil {
		return err
	}
	q := netlink.NewNetem(netlink.QdiscAttrs{LinkIndex: l.Attrs().Index, Handle: netlink.MakeHandle(1, 0), Parent: netlink.HANDLE_ROOT}, attrs)
	if err := ns.nl.QdiscReplace(q); err != nil {
		return ns.errorf("netem on %s: %w", dev, err)
	}
	return nil
}

// ClearNetem removes the qdisc Netem put on dev.
func (ns *NS) ClearNetem(dev string) error {
	l, err := ns.link(dev)
	if err != nil {
		return err
	}
	q := netlink.NewNetem(netlink.QdiscAttrs{LinkIndex: l.Attrs().Index, Handle: netlink.MakeHandle(1, 0), Parent: netlink.HANDLE_ROOT}, netlink.NetemQdiscAttrs{})
	if err := ns.nl.QdiscDel(q); err != nil {
		return ns.errorf("remove netem from %s: %w", dev, err)
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

// DialContext opens a connection from inside the namespace. Use a literal
// address: for a name with both IPv4 and IPv6 addresses the dialer races
// them on other goroutines, outside the namespace.
func (ns *NS) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	var conn net.Conn
	err := ns.Do(func() error {
		var err error
		conn, err = (&net.Dialer{}).DialContext(ctx, network, addr)
		return err
	})
	return conn, err
}

// Dial opens a connection from inside the namespace with a timeout.
func (ns *NS) Dial(network, addr string, timeout time.Duration) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	return ns.DialContext(ctx, network, addr)
}

// Listen opens a listener inside the namespace. Serving it needs no
// further care: accepted connections belong to the listener's namespace.
func (ns *NS) Listen(network, addr string) (net.Listener, error) {
	var ln net.Listener
	err := ns.Do(func() error {
		var err error
		ln, err = net.Listen(network, addr)
		return err
	})
	return ln, err
}

// ListenPacket opens a packet socket (e.g. "udp") inside the namespace.
func (ns *NS) ListenPacket(network, addr string) (net.PacketConn, error) {
	var pc net.PacketConn
	err := ns.Do(func() error {
		var err error
		pc, err = net.ListenPacket(network, addr)
		return err
	})
	return pc, err
}

// HTTPClient returns a client whose connections start inside the
// namespace. Keep-alives are off so that every request is a new
// connection, which is what IPVS schedules.
func (ns *NS) HTTPClient(timeout time.Duration) *http.Client {
	return &http.Client{
		Timeout:   timeout,
		Transport: &http.Transport{DialContext: ns.DialContext, DisableKeepAlives: true},
	}
}

// WaitTCP waits until a TCP connection to addr from inside the namespace
// succeeds.
func (ns *NS) WaitTCP(addr string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		conn, err := ns.Dial("tcp", addr, time.Second)
		if err == nil {
			conn.Close()
			return nil
		}
		if time.Now().After(deadline) {
			return ns.errorf("nothing accepts on %s after %v: %w", addr, timeout, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
