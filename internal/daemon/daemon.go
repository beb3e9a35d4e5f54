// Package daemon is `lvsd run`: it builds the director, the checks, VRRP,
// connection sync, the announcer and the listeners from one config, runs
// them, moves them all to a new config on Reload, and joins what each
// knows into one status document. cmd/lvsd keeps the flags, the signals
// and the exit codes.
//
// How the parts are wired: the checks report verdicts to the director,
// the one owner of real-server health and pool state; the director tells
// VRRP which tracked services are down and the announcer which services
// are ready; VRRP's transitions drive the VIPs, connection sync and the
// announcer. A reload is a loop over the parts (reload.go): each prepares
// (checks and builds, may fail, changes nothing), then each commits (cannot
// fail), in an order that reload.go spells out.
package daemon

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/lvsd/lvsd/anycast"
	"github.com/lvsd/lvsd/checks"
	"github.com/lvsd/lvsd/config"
	"github.com/lvsd/lvsd/director"
	"github.com/lvsd/lvsd/vrrp"
)

// Daemon is one running lvsd.
type Daemon struct {
	log     *slog.Logger
	version string
	reg     *prometheus.Registry
	// vrrpReg holds VRRP's collectors alone, which status reads its
	// counts from (vrrpcounters.go).
	vrrpReg *prometheus.Registry
	rates   *rates

	dir      *director.Director // nil when the kernel has no IPVS (VRRP-only)
	sched    *checks.Scheduler
	checks   *checksPart
	announce *anycast.Announcer // nil without IPVS
	fault    *localFault
	// vr runs even without [[vrrp]], so a reload can add the first
	// instance and remove the last.
	vr       *vrrp.Manager
	vrrp     *vrrpPart
	sync     *connSync
	vips     *staticVIPs
	sysctls  *sysctlsPart
	memory   *memoryLock
	control  *endpoint // the control socket
	metricsL *endpoint // the metrics listener

	// parts are what a reload moves, in commit order (reloadOrder).
	parts []preparer

	reloadMu sync.Mutex // one reload at a time (SIGHUP and lvsd reload)

	mu         sync.Mutex
	cfg        *config.Config
	lastReload time.Time
	reloadErr  error

	reloadOK   prometheus.Gauge
	reloadTime prometheus.Gauge
}

// New checks that the host can run cfg (root, IPVS, interfaces, a
// permitted VRRP priority) and builds every part, touching nothing on the
// host but connection sync (whose first start must fail here, not later)
// and, with director.lock_memory, lvsd's own memory: Run starts them.
func New(cfg *config.Config, opts ...Option) (_ *Daemon, err error) {
	h := defaultHost()
	for _, o := range opts {
		o(&h)
	}
	log := h.log
	if err := h.preflight(cfg); err != nil {
		return nil, err
	}
	if err := h.checkRT(cfg.Director.VRRPRTPriority); err != nil {
		return nil, rtPriorityError(cfg, err)
	}
	d := &Daemon{log: log, version: h.version, cfg: cfg, reg: prometheus.NewRegistry(), vrrpReg: prometheus.NewRegistry()}
	// Locked first, so that what the rest builds is locked too.
	d.memory = &memoryLock{lock: h.lockMemory, log: log}
	if err := d.memory.start(cfg); err != nil {
		return nil, err
	}
	defer func() {
		if err != nil && d.memory.locked() {
			d.memory.undo(cfg)
		}
	}()
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
	d.sync = newConnSync(log, h.sync)
	if err := reg.Register(d.sync); err != nil {
		return nil, fmt.Errorf("connection sync metrics: %w", err)
	}

	// VRRP before the director, which tells it which tracked services
	// are down. Without instances the manager opens no socket and
	// watches no link.
	vo := h.vrrp
	vo.Logger, vo.Registerer, vo.Addresses, vo.OnStateChange = log, teeRegisterer{reg, d.vrrpReg}, h.addrs, d.onStateChange
	vo.RTPriority = cfg.Director.VRRPRTPriority
	if d.vr, err = vrrp.NewManager(cfg.VRRP, vo); err != nil {
		return nil, err
	}
	d.vrrp = &vrrpPart{vr: d.vr, checkRT: h.checkRT}

	if h.ipvs != nil {
		d.dir, err = director.New(cfg, h.ipvs, director.WithLogger(log), director.WithLocalFault(h.fault),
			director.WithServiceWatcher(d.vr), director.WithPassHook(d.announceAfterPass))
		if err != nil {
			return nil, err
		}
		if err := d.dir.Register(reg); err != nil {
			return nil, fmt.Errorf("director metrics: %w", err)
		}
		d.rates = &rates{read: d.dir.Counters, now: time.Now}
		// It runs even with nothing announced, so a reload can add the
		// first announced service.
		d.announce = anycast.New(cfg, anycast.Options{Logger: log, Director: d.dir, OpenDevice: h.announceDevice})
		if err := d.announce.Register(reg); err != nil {
			return nil, fmt.Errorf("announce metrics: %w", err)
		}
	}
	d.checks = &checksPart{dir: d.dir}
	d.sched = checks.NewScheduler(log, d.checks.verdict, checks.WithDoubt(d.checks.doubt))
	d.checks.sched = d.sched
	// The eviction guard counts lvsd in trouble when its checks fall
	// behind their schedule (guard.checks_behind).
	d.fault.backlog = func() (int, time.Duration) { b := d.sched.Backlog(); return b.Behind, b.Worst }
	if err := d.sched.RegisterMetrics(reg); err != nil {
		return nil, fmt.Errorf("check metrics: %w", err)
	}
	d.vips = &staticVIPs{addrs: h.addrs, log: log}
	d.sysctls = &sysctlsPart{apply: h.sysctls, log: log, on: d.dir != nil}
	d.control = newControlSocket(d, log)
	d.metricsL = newMetricsListener(d, log)
	d.parts = d.reloadOrder()

	// Last, as it is the one part that starts something in the kernel.
	if err := d.sync.start(cfg); err != nil {
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

func (d *Daemon) config() *config.Config {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.cfg
}

// logWarnings logs what `lvsd check` warns about, at start and reload.
func (d *Daemon) logWarnings(cfg *config.Config) {
	for _, w := range cfg.Warnings {
		d.log.Warn("config warning", "warning", w.Error())
	}
}

// onStateChange hears every VRRP transition: the announcer withdraws on a
// fault of the instances it tracks, and connection sync follows the
// instance with [vrrp.sync].
func (d *Daemon) onStateChange(c vrrp.StateChange) {
	if d.announce != nil {
		d.announce.SetVRRP(c.Instance, c.To.String())
	}
	d.sync.onState(c.Instance, c.To == vrrp.StateMaster)
}

// announceAfterPass is the director's pass hook: what the announcer may
// announce follows what the kernel table holds.
func (d *Daemon) announceAfterPass() {
	if d.announce != nil {
		d.announce.Trigger()
	}
}
