package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"runtime"
	"sync"
	"time"

	"github.com/coreos/go-systemd/v22/daemon"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/lvsd/lvsd/anycast"
	"github.com/lvsd/lvsd/checks"
	"github.com/lvsd/lvsd/config"
	"github.com/lvsd/lvsd/director"
	"github.com/lvsd/lvsd/vrrp"
)

// lvsdDaemon wires the packages together: check transitions feed the
// director and VRRP tracking, VRRP state drives the VIPs and the sync
// daemons, and the control API reads and steers all three.
type lvsdDaemon struct {
	log *slog.Logger
	reg *prometheus.Registry

	dir   *director.Director // nil when the kernel has no IPVS (VRRP-only)
	sched *checks.Scheduler
	// fault samples lvsd's own resources for the eviction guard.
	fault *localFault
	// vr runs even without [[vrrp]], so a reload can add the first
	// instance and remove the last.
	vr       *vrrp.Manager
	sync     syncFollower // nil until a config has [vrrp.sync]; guarded by vrrpMu
	syncOpts director.SyncOptions
	vips     vrrp.AddressManager
	announce *anycast.Announcer // nil without IPVS

	// vrrpMu orders the sync follower's updates: VRRP transitions and a
	// reload moving [vrrp.sync] to another instance.
	vrrpMu     sync.Mutex
	vrrpMaster map[string]bool // instance -> master, as last reported

	reloadMu sync.Mutex // one reload at a time (SIGHUP and lvsd reload)

	applySysctls func(*config.Config) error
	checkRT      func(int) error

	mu         sync.Mutex
	cfg        *config.Config
	healthy    map[string]map[string]bool // service -> realserver -> healthy; absent = unknown
	lastReload time.Time
	reloadErr  error

	reloadOK   prometheus.Gauge
	reloadTime prometheus.Gauge
}

// daemonHost is what ties the daemon to the host: the kernel's IPVS table,
// interface addresses, sysctls, VRRP sockets and the preflight checks. The
// defaults are the real ones; tests swap them to run the whole daemon
// in-process against the fake IPVS.
type daemonHost struct {
	ipvs      director.IPVS // nil: the kernel's, when it has IPVS
	addrs     vrrp.AddressManager
	vrrp      vrrp.Options // Transport, Links, Announcer, Clock, OwnAddress
	sysctls   func(*config.Config) error
	preflight func(*config.Config) error
	// metrics wraps the registry every collector is registered on, so a
	// test can see the collectors themselves (their Describe), not only
	// the series they have produced so far.
	metrics func(prometheus.Registerer) prometheus.Registerer
	// sync reaches the kernel's connection-sync daemons; zero: the real ones.
	sync director.SyncOptions
	// fault says whether lvsd itself is in trouble; nil: its own resources
	// as sampled by localFault.
	fault func() (string, bool)
	// checkRT says whether the VRRP thread may run at a real-time
	// priority (vrrp.CheckRTPriority).
	checkRT func(int) error
	// announceDevice opens the device announced VIPs live on; nil: TUN.
	announceDevice func(name string) (anycast.Device, error)
}

type daemonOption func(*daemonHost)

// withSync runs the connection-sync daemons through o (its Control and
// Sysctl) instead of the kernel.
func withSync(o director.SyncOptions) daemonOption { return func(h *daemonHost) { h.sync = o } }

// withLocalFault makes f the eviction guard's word on whether lvsd itself
// is in trouble, instead of its sampled resources.
func withLocalFault(f func() (string, bool)) daemonOption { return func(h *daemonHost) { h.fault = f } }

// withIPVS programs ipvs instead of the kernel's table.
func withIPVS(ipvs director.IPVS) daemonOption { return func(h *daemonHost) { h.ipvs = ipvs } }

// withAddresses adds and removes VIPs through a instead of netlink.
func withAddresses(a vrrp.AddressManager) daemonOption { return func(h *daemonHost) { h.addrs = a } }

// withVRRP gives VRRP its transport, link watcher, announcer and clock;
// Logger, Registerer, Addresses and OnStateChange are the daemon's own.
func withVRRP(o vrrp.Options) daemonOption { return func(h *daemonHost) { h.vrrp = o } }

// withRTCheck decides whether a director.vrrp_rt_priority is permitted,
// instead of asking the kernel.
func withRTCheck(f func(int) error) daemonOption { return func(h *daemonHost) { h.checkRT = f } }

// withoutHostSetup skips the preflight checks (root, IPVS, interfaces) and
// leaves the host's sysctls alone.
func withoutHostSetup() daemonOption {
	return func(h *daemonHost) {
		h.preflight = func(*config.Config) error { return nil }
		h.sysctls = func(*config.Config) error { return nil }
	}
}

func newDaemon(cfg *config.Config, log *slog.Logger, opts ...daemonOption) (*lvsdDaemon, error) {
	h := daemonHost{addrs: director.VIPs{}, sysctls: director.ApplySysctls, preflight: preflight,
		metrics: func(r prometheus.Registerer) prometheus.Registerer { return r }, checkRT: vrrp.CheckRTPriority}
	for _, o := range opts {
		o(&h)
	}
	if err := h.preflight(cfg); err != nil {
		return nil, err
	}
	if err := h.checkRT(cfg.Director.VRRPRTPriority); err != nil {
		return nil, rtPriorityError(cfg, err)
	}
	d := &lvsdDaemon{log: log, cfg: cfg, healthy: map[string]map[string]bool{}, reg: prometheus.NewRegistry(),
		vips: h.addrs, applySysctls: h.sysctls, checkRT: h.checkRT, vrrpMaster: map[string]bool{}, syncOpts: h.sync}
	reg := h.metrics(d.reg)
	if err := d.registerOwnMetrics(reg); err != nil {
		return nil, err
	}
	if h.ipvs == nil && (director.HasIPVS() || director.MemoryBackend()) {
		if director.MemoryBackend() {
			log.Warn("LVSD_IPVS_BACKEND=memory: the IPVS table is kept in memory only, nothing is forwarded")
		}
		k, err := director.OpenKernel()
		if err != nil {
			return nil, err
		}
		h.ipvs = k
	}
	d.fault = newLocalFault(cfg, log)
	if h.fault == nil {
		h.fault = d.fault.fault
	}
	if h.ipvs != nil {
		var err error
		d.dir, err = director.New(cfg, h.ipvs, director.WithLogger(log), director.WithLocalFault(h.fault),
			director.WithOnRelease(d.onGuardRelease), director.WithPassHook(d.announceAfterPass))
		if err != nil {
			return nil, err
		}
		if err := d.dir.Register(reg); err != nil {
			return nil, fmt.Errorf("director metrics: %w", err)
		}
		d.announce = d.newAnnouncer(cfg, h)
		if err := d.announce.Register(reg); err != nil {
			return nil, fmt.Errorf("announce metrics: %w", err)
		}
	}
	d.sched = checks.NewScheduler(log, d.onTransition)
	d.fault.backlog = func() (int, time.Duration) { b := d.sched.Backlog(); return b.Behind, b.Worst }
	if err := d.sched.RegisterMetrics(reg); err != nil {
		return nil, fmt.Errorf("check metrics: %w", err)
	}
	if len(cfg.VRRP) > 0 {
		var err error
		d.sync, err = newSyncFollower(cfg, log, d.syncOpts)
		if err != nil {
			return nil, err
		}
	}
	// Without instances the manager opens no socket and watches no link.
	vo := h.vrrp
	vo.Logger, vo.Registerer, vo.Addresses, vo.OnStateChange = log, reg, d.vips, d.onStateChange
	vo.RTPriority = cfg.Director.VRRPRTPriority
	var err error
	d.vr, err = vrrp.NewManager(cfg.VRRP, vo)
	if err != nil {
		return nil, err
	}
	return d, nil
}

// rtPriorityError names the key of a real-time priority the kernel refused.
func rtPriorityError(cfg *config.Config, err error) error {
	return fmt.Errorf("%s: director.vrrp_rt_priority = %d: %w", cfg.Path, cfg.Director.VRRPRTPriority, err)
}

// preflight refuses to start, changing nothing, when the host cannot run
// cfg. A VRRP-only config needs no IPVS.
func preflight(cfg *config.Config) error {
	if len(cfg.Services) > 0 {
		return director.Preflight(cfg)
	}
	var errs []error
	if os.Geteuid() != 0 {
		errs = append(errs, errors.New("lvsd must run as root to add VIPs and send VRRP"))
	}
	for _, v := range cfg.VRRP {
		if _, err := net.InterfaceByName(v.Interface); err != nil {
			errs = append(errs, fmt.Errorf("vrrp[%s]: interface %q does not exist", v.Name, v.Interface))
		}
	}
	return errors.Join(errs...)
}

func (d *lvsdDaemon) registerOwnMetrics(reg prometheus.Registerer) error {
	build := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "lvsd_build_info", Help: "Always 1; the labels say which lvsd runs.",
	}, []string{"version", "goversion"})
	build.WithLabelValues(lvsdVersion(), runtime.Version()).Set(1)
	d.reloadOK = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "lvsd_config_last_reload_successful", Help: "1 if the last config load or reload was applied, 0 if it was rejected.",
	})
	d.reloadTime = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "lvsd_config_last_reload_timestamp_seconds", Help: "Unix time of the last config load or reload attempt.",
	})
	for _, c := range []prometheus.Collector{build, d.reloadOK, d.reloadTime,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{})} {
		if err := reg.Register(c); err != nil {
			return fmt.Errorf("metrics: %w", err)
		}
	}
	d.reloadOK.Set(1)
	d.reloadTime.SetToCurrentTime()
	d.lastReload = time.Now()
	return nil
}

// run starts everything, reports READY to systemd and blocks until ctx
// ends; then VRRP resigns first, so the peer takes over while this node
// still forwards.
func (d *lvsdDaemon) run(ctx context.Context) error {
	cfg := d.config()
	d.logWarnings(cfg)
	if d.dir != nil {
		if err := d.applySysctls(cfg); err != nil {
			d.log.Warn("kernel settings", "err", err)
		}
	}
	if err := d.syncStaticVIPs(ctx, nil, cfg); err != nil {
		return err
	}
	d.sched.Update(targetsOf(cfg, nil))
	d.markUncheckedHealthy(cfg)

	listeners, err := d.startListeners(cfg)
	if err != nil {
		return err
	}
	defer func() {
		for _, l := range listeners {
			l.Close()
		}
		if cfg.Director.ControlSocket != "" {
			os.Remove(cfg.Director.ControlSocket)
		}
	}()

	compCtx, stopComponents := context.WithCancel(context.Background())
	defer stopComponents()
	var wg sync.WaitGroup
	errc := make(chan error, 4)
	start := func(name string, f func(context.Context) error) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := f(compCtx); err != nil && !errors.Is(err, context.Canceled) {
				errc <- fmt.Errorf("%s: %w", name, err)
			}
		}()
	}
	if d.dir != nil {
		if _, err := d.dir.Reconcile(ctx); err != nil {
			d.log.Error("first reconcile pass", "err", err)
		}
		start("director", d.dir.Run)
		start("local fault", d.fault.run)
		// After the first pass: nothing is announced before the kernel
		// holds the pool.
		start("announce", d.announce.Run)
	}
	start("checks", d.sched.Run)
	d.holdPreemptUntilChecked(compCtx, cfg)
	vrDone := make(chan struct{})
	if d.vr != nil {
		go func() {
			defer close(vrDone)
			if err := d.vr.Run(compCtx); err != nil {
				errc <- err
			}
		}()
	} else {
		close(vrDone)
	}
	d.log.Info("lvsd running", "node", cfg.Director.Name, "services", len(cfg.Services), "vrrp_instances", len(cfg.VRRP), "version", lvsdVersion())
	_, _ = daemon.SdNotify(false, daemon.SdNotifyReady)
	go d.watchdog(compCtx)

	var runErr error
	select {
	case <-ctx.Done():
	case runErr = <-errc:
	}
	_, _ = daemon.SdNotify(false, daemon.SdNotifyStopping)
	d.log.Info("lvsd stopping")
	stopComponents()
	// Masters with resources stop them before they resign.
	vrBound := 5 * time.Second
	if d.vr != nil {
		vrBound = max(vrBound, d.vr.StopBound())
	}
	select {
	case <-vrDone:
	case <-time.After(vrBound):
		d.log.Warn("VRRP did not stop in time", "waited", vrBound)
	}
	wg.Wait()
	d.shutdownKernel(d.config())
	return runErr
}

// shutdownKernel stops the sync daemons and, with on_exit = "flush",
// removes what lvsd programmed. With "keep" the table and static VIPs stay,
// so restarting lvsd never interrupts traffic.
func (d *lvsdDaemon) shutdownKernel(cfg *config.Config) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	d.vrrpMu.Lock()
	follower := d.sync
	d.vrrpMu.Unlock()
	if follower != nil {
		if err := follower.Close(ctx); err != nil {
			d.log.Warn("stopping sync daemons", "err", err)
		}
	}
	if cfg.Director.OnExit != "flush" {
		return
	}
	if d.dir != nil {
		if err := d.dir.Flush(ctx); err != nil {
			d.log.Error("on_exit = flush", "err", err)
		}
	}
	if err := d.syncStaticVIPs(ctx, cfg, nil); err != nil {
		d.log.Error("on_exit = flush: removing VIPs", "err", err)
	}
}

// watchdog pings systemd only while the daemon still answers: each ping
// waits for a status snapshot, which takes the locks of the daemon, the
// director, the checks and VRRP. A deadlock in any of them stops the
// pings, and systemd restarts lvsd after WatchdogSec.
func (d *lvsdDaemon) watchdog(ctx context.Context) {
	every, err := daemon.SdWatchdogEnabled(false)
	if err != nil || every == 0 {
		return
	}
	t := time.NewTicker(every / 3)
	defer t.Stop()
	var answered chan struct{} // of the snapshot still running, if any
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if answered == nil {
			answered = make(chan struct{})
			go func(done chan struct{}) { d.Status(); close(done) }(answered)
		}
		select {
		case <-answered:
			answered = nil
			_, _ = daemon.SdNotify(false, daemon.SdNotifyWatchdog)
		case <-time.After(every / 3):
			d.log.Error("watchdog: no status snapshot within a third of WatchdogSec; not pinging systemd")
		case <-ctx.Done():
			return
		}
	}
}

func (d *lvsdDaemon) startListeners(cfg *config.Config) ([]net.Listener, error) {
	var out []net.Listener
	if cfg.Director.ControlSocket != "" {
		l, err := listenControlSocket(cfg.Director.ControlSocket)
		if err != nil {
			return nil, err
		}
		out = append(out, l)
		go func() {
			_ = (&http.Server{Handler: controlHandler(d, false), ReadHeaderTimeout: 5 * time.Second}).Serve(l)
		}()
	}
	if cfg.Director.MetricsListen != "" {
		l, err := net.Listen("tcp", cfg.Director.MetricsListen)
		if err != nil {
			for _, o := range out {
				o.Close()
			}
			return nil, fmt.Errorf("metrics_listen: %w", err)
		}
		out = append(out, l)
		mux := http.NewServeMux()
		mux.Handle("/metrics", promhttp.HandlerFor(d.reg, promhttp.HandlerOpts{Registry: d.reg}))
		mux.Handle("/status", controlHandler(d, true))
		go func() { _ = (&http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}).Serve(l) }()
	}
	return out, nil
}

func (d *lvsdDaemon) config() *config.Config {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.cfg
}

// targetsOf lists every real server that has checks. Servers without
// checks are taken as healthy, as in keepalived.
// targetsOf is what the checks probe under cfg; renames (new service name
// to old, see director.Renames) lets renamed services keep their verdicts.
func targetsOf(cfg *config.Config, renames map[string]string) []checks.Target {
	var out []checks.Target
	for _, s := range cfg.Services {
		for _, rs := range s.RealServers {
			if len(rs.Checks) == 0 {
				continue
			}
			out = append(out, checks.Target{
				Service: s.Name, RealServer: rs.Key(), Addr: rs.AddrPort(),
				Checks: rs.Checks, StartHealthy: !s.AlphaOn(), Previous: renames[s.Name],
			})
		}
	}
	return out
}

func (d *lvsdDaemon) markUncheckedHealthy(cfg *config.Config) {
	for _, s := range cfg.Services {
		for _, rs := range s.RealServers {
			if len(rs.Checks) == 0 {
				d.onTransition(checks.Transition{Service: s.Name, RealServer: rs.Key(), Healthy: true, Reason: "no checks configured", Weight: -1})
			}
		}
	}
}

func (d *lvsdDaemon) onTransition(t checks.Transition) {
	level := slog.LevelInfo
	if !t.Healthy {
		level = slog.LevelWarn
	}
	d.log.Log(context.Background(), level, "real server health", "service", t.Service, "realserver", t.RealServer,
		"healthy", t.Healthy, "reason", t.Reason, "weight", t.Weight)
	if d.dir != nil {
		d.dir.SetHealth(t.Service, t.RealServer, director.Health{Known: true, Healthy: t.Healthy, Weight: t.Weight,
			Cause: causeOf(t.Reason), Reason: t.Reason})
	}
	d.mu.Lock()
	m := d.healthy[t.Service]
	if m == nil {
		m = map[string]bool{}
		d.healthy[t.Service] = m
	}
	m[t.RealServer] = t.Healthy
	down := d.serviceDownLocked(t.Service)
	d.mu.Unlock()
	if d.vr != nil {
		d.vr.SetServiceDown(t.Service, down)
	}
}

// serviceDownLocked says a service is down only once every real server has
// a verdict and none is healthy: a director that has not finished its first
// checks must not hand over VRRP mastership for that. Nor while the
// eviction guard keeps failed servers of the service in the table: VRRP
// follows the table the director keeps.
func (d *lvsdDaemon) serviceDownLocked(name string) bool {
	if d.dir != nil && d.dir.Holding(name) {
		return false
	}
	for _, s := range d.cfg.Services {
		if s.Name != name {
			continue
		}
		for _, rs := range s.RealServers {
			healthy, known := d.healthy[name][rs.Key()]
			if !known || healthy {
				return false
			}
		}
		return len(s.RealServers) > 0
	}
	return false
}

func (d *lvsdDaemon) onStateChange(c vrrp.StateChange) {
	d.vrrpMu.Lock()
	defer d.vrrpMu.Unlock()
	d.vrrpMaster[c.Instance] = c.To == vrrp.StateMaster
	if d.announce != nil {
		d.announce.SetVRRP(c.Instance, c.To.String())
	}
	if d.sync != nil {
		d.sync.OnState(c.Instance, c.To == vrrp.StateMaster)
	}
}
