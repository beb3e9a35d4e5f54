package anycast

import (
	"context"
	"errors"
	"log/slog"
	"maps"
	"net/netip"
	"sync"
	"time"

	"github.com/lvsd/lvsd/config"
)

// Director is what the announcer needs from the director, which owns the
// pools: whether a service can take traffic here now, and if not, why.
type Director interface {
	Ready(service string) (ready bool, why string)
}

// Device holds the announced VIPs; *TUN is the real one.
type Device interface {
	// Set makes the device hold exactly vips.
	Set(ctx context.Context, vips []netip.Prefix) error
	// Close withdraws everything: the device goes away.
	Close() error
}

// Options are what the announcer is built with; zero values are the real
// ones.
type Options struct {
	Logger     *slog.Logger
	Director   Director
	OpenDevice func(name string) (Device, error) // nil: OpenTUN
	// Repair is how often a pass runs without a trigger, to put back an
	// address someone removed by hand. 0: 10 s.
	Repair time.Duration
	Now    func() time.Time
}

// Announcer decides which VIPs this director announces and puts exactly
// those on the device. It runs a pass on every trigger (a director pass, a
// VRRP transition, a reload) and every Repair interval; a pass reads the
// director, decides (Decide) and applies, with the device I/O outside
// every lock.
type Announcer struct {
	log     *slog.Logger
	dir     Director
	open    func(string) (Device, error)
	repair  time.Duration
	now     func() time.Time
	metrics *metrics
	trigger chan struct{}

	mu    sync.Mutex
	cfg   *config.Config
	vrrp  map[string]string // instance -> last reported state
	state []VIPStatus       // as last applied

	// Used by Run only.
	dev     Device
	devName string
}

// New returns an announcer for cfg. It touches nothing until Run.
func New(cfg *config.Config, o Options) *Announcer {
	a := &Announcer{
		log: o.Logger, dir: o.Director, open: o.OpenDevice, repair: o.Repair, now: o.Now,
		metrics: newMetrics(), trigger: make(chan struct{}, 1), cfg: cfg, vrrp: map[string]string{},
	}
	if a.log == nil {
		a.log = slog.New(slog.DiscardHandler)
	}
	if a.open == nil {
		a.open = func(name string) (Device, error) { return OpenTUN(name) }
	}
	if a.repair <= 0 {
		a.repair = 10 * time.Second
	}
	if a.now == nil {
		a.now = time.Now
	}
	// A director that announces nothing has no BIRD to ask.
	a.metrics.bird = func() BIRD {
		cfg := a.config()
		if len(VIPsOf(cfg)) == 0 {
			return BIRD{}
		}
		return BIRD{Socket: cfg.Announce.BIRDSocket}
	}
	return a
}

// Update switches to a reloaded config.
func (a *Announcer) Update(cfg *config.Config) {
	a.mu.Lock()
	a.cfg = cfg
	a.mu.Unlock()
	a.Trigger()
}

// SetVRRP records the state a VRRP instance entered ("backup", "master",
// "fault", ...), for announce.track_vrrp.
func (a *Announcer) SetVRRP(instance, state string) {
	a.mu.Lock()
	a.vrrp[instance] = state
	a.mu.Unlock()
	a.Trigger()
}

// Trigger asks Run for a pass soon. It never blocks.
func (a *Announcer) Trigger() {
	select {
	case a.trigger <- struct{}{}:
	default:
	}
}

func (a *Announcer) config() *config.Config {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.cfg
}

// Run announces until ctx ends, then withdraws every VIP (the device goes)
// before it returns.
func (a *Announcer) Run(ctx context.Context) error {
	defer a.stop()
	t := time.NewTicker(a.repair)
	defer t.Stop()
	for {
		a.pass(ctx)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-a.trigger:
		case <-t.C:
		}
	}
}

func (a *Announcer) pass(ctx context.Context) {
	a.mu.Lock()
	cfg := a.cfg
	in := Inputs{VRRP: maps.Clone(a.vrrp), Track: cfg.Announce.TrackVRRP, Services: map[string]Readiness{}}
	a.mu.Unlock()
	vips := VIPsOf(cfg)
	for _, v := range vips {
		for _, s := range v.Services {
			ok, why := a.dir.Ready(s)
			in.Services[s] = Readiness{Ready: ok, Why: why}
		}
	}
	decisions := Decide(vips, in)
	err := a.apply(ctx, cfg.Announce.Device, decisions)
	if err != nil {
		for i := range decisions {
			if decisions[i].Announce {
				decisions[i].Announce, decisions[i].Reason = false, err.Error()
			}
		}
	}
	a.record(decisions)
}

// apply puts the announced VIPs on the device, opening it when the first
// VIP is configured and closing it when the last one goes.
func (a *Announcer) apply(ctx context.Context, name string, decisions []Decision) error {
	if a.dev != nil && (len(decisions) == 0 || a.devName != name) {
		a.closeDevice()
	}
	if len(decisions) == 0 {
		return nil
	}
	if a.dev == nil {
		dev, err := a.open(name)
		if err != nil {
			return err
		}
		a.dev, a.devName = dev, name
	}
	var want []netip.Prefix
	for _, d := range decisions {
		if d.Announce {
			want = append(want, d.VIP)
		}
	}
	return a.dev.Set(ctx, want)
}

func (a *Announcer) closeDevice() {
	if err := a.dev.Close(); err != nil {
		a.log.Warn("closing the announce device", "device", a.devName, "err", err)
	}
	a.dev, a.devName = nil, ""
}

// record keeps what the pass applied, for status and metrics, and logs
// every change.
func (a *Announcer) record(decisions []Decision) {
	now := a.now()
	a.mu.Lock()
	prev := map[netip.Prefix]VIPStatus{}
	for _, s := range a.state {
		prev[s.prefix] = s
	}
	next := make([]VIPStatus, 0, len(decisions))
	for _, d := range decisions {
		s := VIPStatus{VIP: d.VIP.Addr().String(), Services: d.Services, Announced: d.Announce, Reason: d.Reason, Since: now, prefix: d.VIP}
		p, seen := prev[d.VIP]
		if seen && p.Announced == d.Announce {
			s.Since = p.Since
		}
		delete(prev, d.VIP)
		next = append(next, s)
		a.metrics.set(s.VIP, d.Announce)
		switch {
		case d.Announce && (!seen || !p.Announced):
			a.metrics.transition(s.VIP, true)
			a.log.Info("vip announced", "vip", s.VIP, "reason", d.Reason)
		case !d.Announce && seen && p.Announced:
			a.metrics.transition(s.VIP, false)
			a.log.Warn("vip withdrawn", "vip", s.VIP, "reason", d.Reason)
		case !d.Announce && (!seen || p.Reason != d.Reason):
			a.log.Info("vip not announced", "vip", s.VIP, "reason", d.Reason)
		}
	}
	for _, gone := range prev {
		a.metrics.forget(gone.VIP)
		if gone.Announced {
			a.log.Info("vip withdrawn", "vip", gone.VIP, "reason", "no longer announced by the config")
		}
	}
	a.state = next
	a.mu.Unlock()
}

// stop withdraws everything: closing the device is the withdrawal.
func (a *Announcer) stop() {
	if a.dev != nil {
		a.closeDevice()
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	n := 0
	for i := range a.state {
		if a.state[i].Announced {
			n++
			a.metrics.transition(a.state[i].VIP, false)
		}
		a.state[i].Announced, a.state[i].Reason, a.state[i].Since = false, "lvsd stopped", a.now()
		a.metrics.set(a.state[i].VIP, false)
	}
	if n > 0 {
		a.log.Info("withdrew every vip: lvsd is stopping", "vips", n)
	}
}

// VIPs is the state of every announced VIP as of the last pass.
func (a *Announcer) VIPs() []VIPStatus {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := make([]VIPStatus, len(a.state))
	copy(out, a.state)
	return out
}

// Status is the VIPs and, when announce.bird_socket is set, the BGP
// sessions as BIRD reports them. BIRD is asked now, within ctx.
func (a *Announcer) Status(ctx context.Context) Status {
	cfg := a.config()
	st := Status{Device: cfg.Announce.Device, VIPs: a.VIPs(), BIRDSocket: cfg.Announce.BIRDSocket}
	if st.BIRDSocket == "" || len(VIPsOf(cfg)) == 0 {
		return st
	}
	sessions, err := Sessions(ctx, BIRD{Socket: st.BIRDSocket})
	st.Sessions = sessions
	if err != nil {
		st.BIRDError = err.Error()
	}
	return st
}

// Sessions lists BIRD's BGP protocols with the routes each exports.
func Sessions(ctx context.Context, b BIRD) ([]Session, error) {
	protos, err := b.Protocols(ctx)
	if err != nil {
		return nil, err
	}
	var out []Session
	var errs []error
	for _, p := range protos {
		if p.Proto != "BGP" {
			continue
		}
		s := Session{Protocol: p, BGPState: p.BGPState()}
		if p.Established() {
			routes, err := b.Exported(ctx, p.Name)
			if err != nil {
				errs = append(errs, err)
			}
			for _, r := range routes {
				s.Exported = append(s.Exported, r.String())
			}
		}
		out = append(out, s)
	}
	return out, errors.Join(errs...)
}
