package vrrp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os/exec"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/lvsd/lvsd/config"
	"github.com/prometheus/client_golang/prometheus"
)

// Transport opens the packet connection of one instance.
type Transport interface {
	// Open returns a Conn on iface sending from source. With multicast it
	// joins the VRRP group of source's family on iface.
	Open(iface string, source netip.Addr, multicast bool) (Conn, error)
}

// LinkWatcher reports whether network interfaces are up.
type LinkWatcher interface {
	// Watch calls report for every interface in ifaces with its current
	// state before it returns, then again on every change until ctx ends.
	Watch(ctx context.Context, ifaces []string, report func(iface string, up bool)) error
}

// Options are the collaborators of a Manager. Addresses is required; the
// others default to the Linux implementations and the wall clock.
type Options struct {
	Logger     *slog.Logger
	Registerer prometheus.Registerer
	Addresses  AddressManager
	// OnStateChange is called for every transition, in order per instance,
	// from a goroutine of the Manager (never under its locks).
	OnStateChange func(StateChange)
	Clock         Clock
	Transport     Transport
	Announcer     Announcer
	Links         LinkWatcher
	// OwnAddress reports whether an address belongs to this host, so our
	// own adverts are dropped even if they loop back.
	OwnAddress func(netip.Addr) bool
	// RTPriority is the SCHED_RR priority (1..99) of the timing thread
	// that sends adverts and runs the timers; 0 leaves it SCHED_OTHER.
	// It applies with the wall clock only.
	RTPriority int
}

// Manager runs every VRRP instance of a director.
type Manager struct {
	opts    Options
	log     *slog.Logger
	metrics *metrics

	// ops serializes Run's start and stop with Update, which start and
	// stop instances. Order: ops, then mu, then an instance's mu.
	ops     sync.Mutex
	started bool
	running bool
	runCtx  context.Context
	wg      sync.WaitGroup // every goroutine of every instance

	// mu guards the instance list, what is known about links and
	// services, and the track lists of the instances (written under both
	// mu and the instance's mu).
	mu          sync.Mutex
	instances   []*instance
	byName      map[string]*instance
	serviceDown map[string]bool
	linkUp      map[string]bool
	watches     []*linkWatch

	preemptHeld atomic.Bool // see HoldPreempt

	// ex runs the state machines; rtPriority is its thread's priority
	// (under ops).
	ex         *executor
	rtPriority int
}

// NewManager takes complete, validated instances (config.Parse has filled
// their defaults and checked them) and registers the metrics. Nothing
// touches the network until Run.
func NewManager(cfgs []config.VRRP, opts Options) (*Manager, error) {
	if opts.Addresses == nil {
		return nil, errors.New("vrrp: Options.Addresses is required")
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Clock == nil {
		opts.Clock = RealClock{}
	}
	if opts.Transport == nil {
		opts.Transport = RawTransport{}
	}
	if opts.Announcer == nil {
		opts.Announcer = &PacketAnnouncer{}
	}
	if opts.Links == nil {
		opts.Links = NetlinkLinks{}
	}
	if opts.OwnAddress == nil {
		opts.OwnAddress = newLocalAddrs(opts.Clock).has
	}
	met, err := newMetrics(opts.Registerer)
	if err != nil {
		return nil, fmt.Errorf("vrrp: registering metrics: %w", err)
	}
	all, err := settingsOfAll(cfgs)
	if err != nil {
		return nil, err
	}
	m := &Manager{opts: opts, log: opts.Logger, metrics: met, byName: map[string]*instance{},
		serviceDown: map[string]bool{}, linkUp: map[string]bool{}, ex: newExecutor(opts.Clock, opts.Logger)}
	m.rtPriority = opts.RTPriority
	for _, s := range all {
		in := m.newInstance(s)
		met.transition(s.name, StateInit)
		m.instances = append(m.instances, in)
		m.byName[s.name] = in
	}
	return m, nil
}

func settingsOfAll(cfgs []config.VRRP) ([]settings, error) {
	out := make([]settings, 0, len(cfgs))
	for i := range cfgs {
		s, err := settingsOf(&cfgs[i])
		if err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, nil
}

// changeHook records a transition in the metrics at once and hands it to
// the instance's event queue, so callbacks and notify scripts never run
// under the instance lock and always in order.
func (m *Manager) changeHook(in *instance) func(StateChange) {
	q := newQueue()
	in.events = q
	return func(c StateChange) {
		m.metrics.transition(c.Instance, c.To)
		q.push(c)
	}
}

// Run opens every instance's connection, starts the state machines and
// blocks until ctx ends. Then every master resigns with priority 0 and
// releases its VIPs before Run returns. Update may add, change and remove
// instances meanwhile.
func (m *Manager) Run(ctx context.Context) error {
	m.ops.Lock()
	if m.started {
		m.ops.Unlock()
		return errors.New("vrrp: manager already running")
	}
	m.started = true
	runCtx, stopRun := context.WithCancel(ctx)
	defer stopRun()
	m.runCtx = runCtx
	// Link states first, so an instance whose link is down starts in Fault.
	if err := m.watchLinks(m.trackedInterfaces()); err != nil {
		m.ops.Unlock()
		return fmt.Errorf("vrrp: watching links: %w", err)
	}
	if err := m.ex.startWaker(m.rtPriority); err != nil {
		m.ops.Unlock()
		return fmt.Errorf("vrrp: timing thread: %w", err)
	}
	m.running = true
	for _, in := range m.instanceList() {
		m.launch(in)
	}
	m.ops.Unlock()

	<-ctx.Done()

	// Resign every master, then let the event loops drain, so the final
	// transitions reach the callback and notify too.
	m.ops.Lock()
	m.running = false
	stopRun()
	ins := m.instanceList()
	for _, in := range ins {
		in.life.stopOpening()
	}
	for _, in := range ins {
		in.life.openers.Wait() // no connection appears after this
	}
	for _, in := range ins {
		in.shutdown("lvsd stopping")
		in.closeConn()
	}
	for _, in := range ins {
		in.work.close() // the VIPs are gone when Run returns
		in.events.close()
		m.ex.unregister(in)
	}
	m.ex.stopWaker()
	m.ops.Unlock()
	m.wg.Wait()
	return nil
}

// launch starts one instance of a running Manager (m.ops held): its event
// loop, its connection (or, when that cannot open yet, Fault and a retry),
// then its state machine.
func (m *Manager) launch(in *instance) {
	in.life.launched = true
	in.work = newWorker(in)
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		in.work.run()
	}()
	m.ex.register(in)
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		if in.life.after != nil {
			<-in.life.after
		}
		m.eventLoop(in)
	}()
	openCtx, stopOpening := context.WithCancel(m.runCtx)
	in.life.stopOpening = stopOpening
	if err := m.open(in); err != nil {
		// At boot the address may not be there yet (an IPv6 link-local
		// one is tentative for a while): wait in Fault, not exit.
		m.log.Warn("vrrp: cannot send adverts yet; retrying", "instance", in.name, "err", err)
		in.setFault(faultNoSocket, true)
		m.wg.Add(1)
		in.life.openers.Add(1)
		go func() {
			defer m.wg.Done()
			defer in.life.openers.Done()
			m.openWhenReady(openCtx, in, err)
		}()
	}
	in.start()
}

func (m *Manager) instanceList() []*instance {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.instances)
}

// faultNoSocket is the fault of an instance that cannot send yet.
const faultNoSocket = "no address or socket to send adverts"

// open finds the instance's source address (unless configured), opens its
// connection and starts receiving.
func (m *Manager) open(in *instance) error {
	c := in.life.configured
	src := c.source
	if !src.IsValid() {
		var err error
		if src, err = primaryAddress(c.iface, c.v4()); err != nil {
			return err
		}
	}
	conn, err := m.opts.Transport.Open(c.iface, src, c.multicast())
	if err != nil {
		return err
	}
	in.opened(src, conn)
	m.wg.Add(1)
	in.life.receivers.Add(1)
	go func() {
		defer m.wg.Done()
		defer in.life.receivers.Done()
		m.receiveLoop(in, conn)
	}()
	return nil
}

// openWhenReady retries open twice a second until it works or ctx ends,
// logging only when the reason changes.
func (m *Manager) openWhenReady(ctx context.Context, in *instance, last error) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-time.After(500 * time.Millisecond):
		}
		err := m.open(in)
		if err == nil {
			m.log.Info("vrrp: sending adverts now", "instance", in.name, "source", in.source())
			in.setFault(faultNoSocket, false)
			return
		}
		if err.Error() != last.Error() {
			m.log.Warn("vrrp: cannot send adverts yet; retrying", "instance", in.name, "err", err)
			last = err
		}
	}
}

func (m *Manager) receiveLoop(in *instance, conn Conn) {
	for {
		p, err := conn.Receive()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			in.met.drop("receive_error")
			time.Sleep(10 * time.Millisecond) // do not spin on a persistent error
			continue
		}
		in.handle(p)
	}
}

// eventLoop delivers one instance's transitions to the callback and the
// notify command, in order.
func (m *Manager) eventLoop(in *instance) {
	defer close(in.life.eventsDone)
	for {
		c, ok := in.events.pop()
		if !ok {
			return
		}
		if m.opts.OnStateChange != nil {
			m.opts.OnStateChange(c)
		}
		if argv, _ := in.notifyCommand(); len(argv) > 0 {
			m.runNotify(in, c)
		}
	}
}

// runNotify runs the notify argv with instance, state and priority
// appended, without a shell, killed after notify_timeout.
func (m *Manager) runNotify(in *instance, c StateChange) {
	notify, timeout := in.notifyCommand()
	if len(notify) == 0 {
		return // a reload removed it
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	argv := append(slices.Clone(notify[1:]), c.Instance, c.To.String(), strconv.Itoa(c.Priority))
	cmd := exec.CommandContext(ctx, notify[0], argv...)
	// A group of its own, so the timeout also kills what the command started.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = time.Second
	out, err := cmd.CombinedOutput()
	if err != nil {
		m.log.Warn("vrrp: notify failed", "instance", c.Instance, "state", c.To.String(), "err", err, "output", string(out))
	}
}

func (m *Manager) trackedInterfaces() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.trackedInterfacesLocked()
}

func (m *Manager) trackedInterfacesLocked() []string {
	var out []string
	for _, in := range m.instances {
		for _, ifc := range append([]string{in.iface}, in.life.configured.trackIfaces...) {
			if !slices.Contains(out, ifc) {
				out = append(out, ifc)
			}
		}
	}
	return out
}

func (m *Manager) linkChangedLocked(iface string, up bool) {
	m.linkUp[iface] = up
	for _, in := range m.instances {
		if in.iface == iface || slices.Contains(in.life.configured.trackIfaces, iface) {
			in.setFault(linkFault(iface), !up)
		}
	}
}

// SetServiceDown records whether a service has lost every healthy real
// server. Each instance that lists the service in track_services goes to
// Fault while it is down, like keepalived's track with weight 0: a master
// resigns with priority 0 and drops its VIPs, a backup will not take over.
// When the last fault clears the instance starts again as backup.
func (m *Manager) SetServiceDown(service string, down bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.serviceDown[service] = down
	for _, in := range m.instances {
		if slices.Contains(in.life.configured.trackServices, service) {
			in.setFault(serviceFault(service), down)
		}
	}
}

// HoldPreempt, while held, keeps every instance from preempting a live
// master of lower priority; it still takes over when no master is heard.
// lvsd holds it at start until the first health checks have decided every
// real server: a director that preempted sooner would take the VIPs with
// an IPVS table still empty of servers not yet proven healthy.
func (m *Manager) HoldPreempt(held bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.preemptHeld.Store(held)
	for _, in := range m.instances {
		in.holdPreempt(held)
	}
}

func (m *Manager) lookup(name string) (*instance, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	in, ok := m.byName[name]
	if !ok {
		return nil, fmt.Errorf("vrrp: no instance %q", name)
	}
	return in, nil
}

// Takeover makes the named instance master now, for planned maintenance:
// it advertises priority 254, so the current master steps down on the
// first advert instead of after a timeout, and keeps it until Giveup or
// Reset. A faulty instance takes over once the fault clears.
func (m *Manager) Takeover(name string) error {
	in, err := m.lookup(name)
	if err == nil {
		in.takeover()
	}
	return err
}

// Giveup makes the named instance resign (priority 0, so the peer takes
// over after its Skew_Time) and stay backup until Takeover or Reset, even
// if the peer disappears.
func (m *Manager) Giveup(name string) error {
	in, err := m.lookup(name)
	if err == nil {
		in.giveup()
	}
	return err
}

// Reset clears a Takeover or Giveup: the configured priority and preempt
// settings decide again.
func (m *Manager) Reset(name string) error {
	in, err := m.lookup(name)
	if err == nil {
		in.reset()
	}
	return err
}

// Status returns every instance, in config order.
func (m *Manager) Status() []InstanceStatus {
	ins := m.instanceList()
	out := make([]InstanceStatus, len(ins))
	for i, in := range ins {
		out[i] = in.status()
	}
	return out
}

// primaryAddress is the address adverts come from when source_address is
// not set: the first IPv4 address of the interface, or its IPv6 link-local
// address (RFC 5798 section 5.1.2.1 requires link-local for IPv6).
func primaryAddress(iface string, v4 bool) (netip.Addr, error) {
	ifc, err := net.InterfaceByName(iface)
	if err != nil {
		return netip.Addr{}, err
	}
	addrs, err := ifc.Addrs()
	if err != nil {
		return netip.Addr{}, fmt.Errorf("addresses of %s: %w", iface, err)
	}
	for _, a := range addrs {
		ipn, ok := a.(*net.IPNet)
		if !ok {
			continue
		}
		ip, ok := netip.AddrFromSlice(ipn.IP)
		if !ok {
			continue
		}
		ip = ip.Unmap()
		if v4 && ip.Is4() || !v4 && ip.Is6() && ip.IsLinkLocalUnicast() {
			return ip, nil
		}
	}
	family := "IPv4"
	if !v4 {
		family = "IPv6 link-local"
	}
	return netip.Addr{}, fmt.Errorf("interface %s has no %s address to send adverts from", iface, family)
}

// localAddrs answers "is this one of our addresses" from a cache refreshed
// at most once a second, since every received advert asks.
type localAddrs struct {
	clock Clock
	mu    sync.Mutex
	at    time.Time
	set   map[netip.Addr]bool
}

func newLocalAddrs(c Clock) *localAddrs { return &localAddrs{clock: c} }

func (l *localAddrs) has(a netip.Addr) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if now := l.clock.Now(); l.set == nil || now.Sub(l.at) > time.Second {
		l.at = now
		l.set = map[netip.Addr]bool{}
		if addrs, err := net.InterfaceAddrs(); err == nil {
			for _, x := range addrs {
				if ipn, ok := x.(*net.IPNet); ok {
					if ip, ok := netip.AddrFromSlice(ipn.IP); ok {
						l.set[ip.Unmap()] = true
					}
				}
			}
		}
	}
	return l.set[a.Unmap()]
}

// PrepareRTPriority checks that the timing thread may run under SCHED_RR
// at priority (0: SCHED_OTHER), changing nothing, and returns the apply
// that sets it on the running thread. lvsd's reload prepares it with the
// rest and applies it only if the whole reload is accepted.
func (m *Manager) PrepareRTPriority(priority int) (apply func(), err error) {
	if err := CheckRTPriority(priority); err != nil {
		return nil, err
	}
	return func() {
		m.ops.Lock()
		defer m.ops.Unlock()
		m.rtPriority = priority
		if w := m.ex.thread(); w != nil {
			if err := w.setRT(priority); err != nil {
				m.log.Error("vrrp: setting the timing thread's priority", "priority", priority, "err", err)
			}
		}
	}, nil
}
