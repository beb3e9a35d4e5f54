package vrrp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lvsd/lvsd/config"
	"github.com/lvsd/lvsd/internal/proc"
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
	// exec runs resource commands and tracked scripts (proc.Run; tests
	// replace it before Run).
	exec func(context.Context, []string, proc.RunOptions) proc.Result
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
		serviceDown: map[string]bool{}, linkUp: map[string]bool{}, ex: newExecutor(opts.Clock, opts.Logger), exec: proc.Run}
	if opts.Registerer != nil {
		if err := opts.Registerer.Register(haCollector{m}); err != nil {
			return nil, fmt.Errorf("vrrp: registering metrics: %w", err)
		}
	}
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

func (m *Manager) trackedInterfaces() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.trackedInterfacesLocked()
}

func (m *Manager) trackedInterfacesLocked() []string {
	var out []string
	for _, in := range m.instances {
		for _, ifc := range in.life.configured.watchedInterfaces() {
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
		if _, weighted := in.life.configured.weightOf("interface", iface); weighted {
			in.postTrack("interface", iface, up)
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
		if _, weighted := in.life.configured.weightOf("service", service); weighted {
			in.postTrack("service", service, !down)
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
// In a sync group the whole group takes over.
func (m *Manager) Takeover(name string) error {
	ins, err := m.lookupGroup(name)
	for _, in := range ins {
		in.takeover()
	}
	return err
}

// Giveup makes the named instance resign (priority 0, so the peer takes
// over after its Skew_Time) and stay backup until Takeover or Reset, even
// if the peer disappears.
// In a sync group the whole group gives up.
func (m *Manager) Giveup(name string) error {
	ins, err := m.lookupGroup(name)
	for _, in := range ins {
		in.giveup()
	}
	return err
}

// Reset clears a Takeover or Giveup: the configured priority and preempt
// settings decide again. It also ends a hold-off after a failed resource
// and clears a failed stop, once the operator has made sure the resource
// is stopped: lvsd stops it once more before it can start again. In a sync
// group it resets the whole group.
func (m *Manager) Reset(name string) error {
	ins, err := m.lookupGroup(name)
	for _, in := range ins {
		in.reset()
	}
	return err
}

// lookupGroup is the named instance, or every member of its sync group.
func (m *Manager) lookupGroup(name string) ([]*instance, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	in, ok := m.byName[name]
	if !ok {
		return nil, fmt.Errorf("vrrp: no instance %q", name)
	}
	g := in.life.configured.ha.syncGroup
	if g == "" {
		return []*instance{in}, nil
	}
	var out []*instance
	for _, x := range m.instances {
		if x.life.configured.ha.syncGroup == g {
			out = append(out, x)
		}
	}
	return out, nil
}

// StopBound is how long Run may take to return once its context ends: the
// masters stop their resources (all instances at once) before resigning.
func (m *Manager) StopBound() time.Duration {
	d := vipTimeout
	for _, in := range m.instanceList() {
		d = max(d, in.stopBound())
	}
	return d + time.Second
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
