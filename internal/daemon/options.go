package daemon

import (
	"log/slog"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/lvsd/lvsd/anycast"
	"github.com/lvsd/lvsd/config"
	"github.com/lvsd/lvsd/director"
	"github.com/lvsd/lvsd/vrrp"
)

// host is what ties the daemon to the host it runs on: the kernel's IPVS
// table, interface addresses, sysctls, VRRP sockets and the preflight
// checks. The defaults are the real ones; tests swap them to run the whole
// daemon in-process against the fake IPVS.
type host struct {
	log     *slog.Logger
	version string

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
	// lockMemory locks (and unlocks) all of lvsd's memory: lockAllMemory.
	lockMemory func(on bool) error
	// announceDevice opens the device announced VIPs live on; nil: TUN.
	announceDevice func(name string) (anycast.Device, error)
}

func defaultHost() host {
	return host{
		log: slog.Default(), version: "devel",
		addrs: director.VIPs{}, sysctls: director.ApplySysctls, preflight: preflight, checkRT: vrrp.CheckRTPriority,
		lockMemory: lockAllMemory,
		metrics:    func(r prometheus.Registerer) prometheus.Registerer { return r },
	}
}

// Option changes what New builds the daemon with.
type Option func(*host)

// WithLogger logs through l instead of slog.Default.
func WithLogger(l *slog.Logger) Option { return func(h *host) { h.log = l } }

// WithVersion is the version status and lvsd_build_info report.
func WithVersion(v string) Option { return func(h *host) { h.version = v } }

// WithIPVS programs ipvs instead of the kernel's table.
func WithIPVS(ipvs director.IPVS) Option { return func(h *host) { h.ipvs = ipvs } }

// WithAddresses adds and removes VIPs through a instead of netlink.
func WithAddresses(a vrrp.AddressManager) Option { return func(h *host) { h.addrs = a } }

// WithVRRP gives VRRP its transport, link watcher, announcer and clock;
// Logger, Registerer, Addresses and OnStateChange are the daemon's own.
func WithVRRP(o vrrp.Options) Option { return func(h *host) { h.vrrp = o } }

// WithSync runs the connection-sync daemons through o (its Control and
// Sysctl) instead of the kernel.
func WithSync(o director.SyncOptions) Option { return func(h *host) { h.sync = o } }

// WithLocalFault makes f the eviction guard's word on whether lvsd itself
// is in trouble, instead of its sampled resources.
func WithLocalFault(f func() (string, bool)) Option { return func(h *host) { h.fault = f } }

// WithMemoryLock locks and unlocks lvsd's memory through f instead of
// mlockall.
func WithMemoryLock(f func(on bool) error) Option { return func(h *host) { h.lockMemory = f } }

// WithRTCheck decides whether a director.vrrp_rt_priority is permitted,
// instead of asking the kernel.
func WithRTCheck(f func(int) error) Option { return func(h *host) { h.checkRT = f } }

// WithAnnounceDevice gives the announcer a device other than a TUN device.
func WithAnnounceDevice(open func(name string) (anycast.Device, error)) Option {
	return func(h *host) { h.announceDevice = open }
}

// WithMetrics wraps the registerer every collector goes through.
func WithMetrics(wrap func(prometheus.Registerer) prometheus.Registerer) Option {
	return func(h *host) { h.metrics = wrap }
}

// WithoutHostSetup skips the preflight checks (root, IPVS, interfaces) and
// leaves the host's sysctls alone.
func WithoutHostSetup() Option {
	return func(h *host) {
		h.preflight = func(*config.Config) error { return nil }
		h.sysctls = func(*config.Config) error { return nil }
	}
}
