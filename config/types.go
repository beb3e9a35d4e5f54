// Package config holds lvsd's configuration: the data decoded from one TOML
// file, its defaults and its validation. It imports nothing else of lvsd:
// the check types, each with its own keys, defaults and rules, are
// registered into it by package checks (see checktype.go), which every
// program that loads configs imports.
package config

import (
	"net/netip"
	"time"
)

// Config is one decoded and validated lvsd configuration file.
type Config struct {
	// Path is the file the config was read from; set by Load.
	Path     string     `toml:"-"`
	Director Director   `toml:"director"`
	Announce Announce   `toml:"announce"`
	VRRP     []VRRP     `toml:"vrrp"`
	Services []*Service `toml:"service"`
	// SyncGroups are keepalived's vrrp_sync_group (vrrp_syncgroup.go).
	SyncGroups []SyncGroup `toml:"vrrp_sync_group"`

	// Warnings are what Load found suspicious but valid (an active-active
	// service whose scheduler breaks consistency, ...), in file order.
	Warnings []*Error `toml:"-"`
}

// Announce configures active-active directors: the VIP of every service
// with announce = true is announced to the routers by the routing daemon
// (BIRD) on this director while the service has quorum here.
type Announce struct {
	// Device is the network device lvsd creates and holds the announced
	// VIPs on; BIRD's `protocol direct` exports its addresses. The kernel
	// deletes it when lvsd exits, however it exits. Default "lvsd-anycast".
	Device string `toml:"device"`
	// BIRDSocket is BIRD's control socket, read for status and metrics
	// (BGP sessions). Default "/run/bird/bird.ctl"; "" disables.
	BIRDSocket string `toml:"bird_socket"`
	// TrackVRRP names VRRP instances; while one of them is in fault (or
	// not running), no VIP is announced.
	TrackVRRP []string `toml:"track_vrrp"`
}

// Director holds node-wide settings.
type Director struct {
	Name              string   `toml:"name"`
	Interface         string   `toml:"interface"`
	ReconcileInterval Duration `toml:"reconcile_interval"` // default 30s
	MetricsListen     string   `toml:"metrics_listen"`     // default "127.0.0.1:9910"; "" disables
	ControlSocket     string   `toml:"control_socket"`     // default "/run/lvsd/lvsd.sock"
	OnExit            string   `toml:"on_exit"`            // keep | flush; default keep
	// OwnAll lets the reconciler delete kernel services that no config
	// entry names. Off by default so lvsd can share a kernel with others.
	OwnAll bool `toml:"own_all"`
	// Kernel settings users forget; each defaults to true.
	ExpireNodestConn        *bool `toml:"expire_nodest_conn"`
	ExpireQuiescentTemplate *bool `toml:"expire_quiescent_template"`
	IPForward               *bool `toml:"ip_forward"`
	// EvictionGuard holds mass failures while lvsd itself is in trouble.
	EvictionGuard EvictionGuard `toml:"eviction_guard"`
	// VRRPRTPriority is the SCHED_RR priority (1..99) of the thread that
	// sends VRRP adverts and runs the VRRP timers, as keepalived's
	// vrrp_rt_priority; 0 (the default) leaves it SCHED_OTHER.
	VRRPRTPriority int `toml:"vrrp_rt_priority"`
	// LockMemory keeps all of lvsd's memory in RAM (mlockall), so no
	// page of the VRRP path waits on swap: keepalived's vrrp_no_swap.
	LockMemory bool `toml:"lock_memory"`
	// Web is the status page on MetricsListen and its actions.
	Web Web `toml:"web"`
}

// VRRP is one VRRPv3 instance (one VRID on one interface).
type VRRP struct {
	Name            string   `toml:"name"`
	VRID            int      `toml:"vrid"`            // 1..255
	Interface       string   `toml:"interface"`       // default Director.Interface
	Priority        int      `toml:"priority"`        // 1..254, default 100
	AdvertInterval  Duration `toml:"advert_interval"` // default 1s; 10ms..40.95s in 10ms steps
	Preempt         *bool    `toml:"preempt"`         // default true
	PreemptDelay    Duration `toml:"preempt_delay"`
	VIPs            []Prefix `toml:"vips"`
	UnicastPeers    []Addr   `toml:"unicast_peers"`
	SourceAddress   Addr     `toml:"source_address"` // default: primary address of Interface
	TrackServices   []string `toml:"track_services"`
	TrackInterfaces []string `toml:"track_interfaces"`
	Notify          []string `toml:"notify"`
	NotifyTimeout   Duration `toml:"notify_timeout"` // default 10s
	// Checksum selects the IPv4 transmit form: "rfc5798" (with pseudo-header,
	// what keepalived 2.2 sends; the default) or "rfc9568" (message only).
	Checksum     string   `toml:"checksum"`
	GARPRepeat   int      `toml:"garp_repeat"`   // default 5
	GARPInterval Duration `toml:"garp_interval"` // default 0 (back to back)
	GARPRefresh  Duration `toml:"garp_refresh"`  // default 0 (off)
	Sync         *Sync    `toml:"sync"`
	// UnicastTTL is the TTL (IPv6: hop limit) of unicast adverts, as
	// keepalived's unicast_ttl; default 255. MinTTL drops unicast adverts
	// that arrive with a lower one: 255 keeps RFC 5798's proof that the
	// sender is on the link. Default 0, any. Multicast adverts are always
	// sent with 255 and must arrive with it.
	UnicastTTL int `toml:"unicast_ttl"`
	MinTTL     int `toml:"min_ttl"`
	// Auth signs and verifies adverts (vrrp_auth.go); nil: none.
	Auth *VRRPAuth `toml:"auth"`
	// Version is 3 (RFC 5798, the default) or 2 (RFC 3768), the latter
	// only to pair with a keepalived in its default mode (vrrp_v2.go).
	Version int `toml:"version"`
	// AuthPass is keepalived's auth_type PASS password for version 2: up
	// to 8 bytes in clear text in every advert; lvsd check warns.
	AuthPass string `toml:"auth_pass"`
	// HA for the services themselves (vrrp_resource.go, vrrp_track.go).
	HoldOff        Duration      `toml:"hold_off"` // default 1m
	Resources      []Resource    `toml:"resource"`
	TrackScripts   []TrackScript `toml:"track_script"`
	TrackInterface []TrackWeight `toml:"track_interface"`
	TrackService   []TrackWeight `toml:"track_service"`
	// SyncGroup is the vrrp_sync_group the instance belongs to, or "";
	// set by Parse from SyncGroups.
	SyncGroup string `toml:"-"`
}

// Sync configures the kernel IPVS connection-sync daemons for a VRRP instance.
type Sync struct {
	Interface string `toml:"interface"` // default the instance's interface
	SyncID    int    `toml:"sync_id"`   // default the VRID
	Port      int    `toml:"port"`      // default 8848
	Group     Addr   `toml:"group"`     // default 224.0.0.81
	TTL       int    `toml:"ttl"`       // default 1
	// MaxLen is the sync message size. Default 0: the master sends one
	// connection per message, so a record never waits for the kernel's 2 s
	// flush timer; the backup reads messages up to the MTU (see director/sync.go).
	MaxLen int `toml:"maxlen"`
}

// Service is one IPVS virtual service and its pool of real servers.
type Service struct {
	Name      string `toml:"name"`
	VIP       Addr   `toml:"vip"`
	Port      int    `toml:"port"`
	Protocol  string `toml:"protocol"` // tcp | udp | sctp; default tcp
	FWMark    uint32 `toml:"fwmark"`   // instead of vip/port/protocol
	Family    string `toml:"family"`   // inet | inet6; for fwmark services, default inet
	Scheduler string `toml:"scheduler"`
	// SchedFlags are sh/mh flags: "sh-fallback", "sh-port" (mh-* likewise).
	SchedFlags         []string `toml:"sched_flags"`
	Forwarding         string   `toml:"forwarding"` // nat | dr | tun; default nat
	Persistence        Duration `toml:"persistence"`
	PersistenceNetmask string   `toml:"persistence_netmask"` // e.g. "255.255.255.0" or "64"
	OnePacket          bool     `toml:"one_packet"`
	// Quorum is the number of healthy real servers below which the sorry
	// server takes over. Hysteresis keeps it from flapping, as keepalived's
	// does: the pool is lost below Quorum-Hysteresis and regained at
	// Quorum+Hysteresis.
	Quorum      int    `toml:"quorum"`
	Hysteresis  int    `toml:"hysteresis"`
	SorryServer Addr   `toml:"sorry_server"` // "ip:port" or "ip"
	OnFailure   string `toml:"on_failure"`   // remove | drain; default remove
	// Alpha: real servers start unknown and enter only once healthy.
	// Default true; false starts them healthy.
	Alpha *bool `toml:"alpha"`
	// Announce makes the service active-active: its VIP is announced over
	// BGP (see Announce) while the service has quorum on this director.
	Announce    bool          `toml:"announce"`
	Checks      []*Check      `toml:"check"`
	RealServers []*RealServer `toml:"realserver"`

	// Line is the line of the [[service]] header, for messages.
	Line int `toml:"-"`
}

// RealServer is one backend of a service.
type RealServer struct {
	Address        Addr   `toml:"address"`
	Port           int    `toml:"port"`       // default the service port
	Weight         int    `toml:"weight"`     // default 1; 0..65535
	Forwarding     string `toml:"forwarding"` // default the service's
	UpperThreshold int    `toml:"upper_threshold"`
	LowerThreshold int    `toml:"lower_threshold"`
	// Warmup ramps the weight from 1 to Weight over this long after the
	// server (re)enters the table, so wlc does not flood it.
	Warmup Duration `toml:"warmup"`
	// Checks replaces the service's checks for this server when non-empty.
	Checks []*Check `toml:"check"`

	Line int `toml:"-"`
}

// Check is one health check. Common keys live here; the keys of its type
// live in Settings, the struct that type registered (see checktype.go), and
// a key of another type is a config error.
type Check struct {
	Type          string   `toml:"type"`     // one of CheckTypes()
	Interval      Duration `toml:"interval"` // default 5s
	Timeout       Duration `toml:"timeout"`  // default min(2s, interval/2)
	Rise          int      `toml:"rise"`     // default 2
	Fall          int      `toml:"fall"`     // default 3
	Port          int      `toml:"port"`     // default the real server's port
	SourceAddress Addr     `toml:"source_address"`
	// Warmup delays the first probe by a random time up to this long.
	Warmup Duration `toml:"warmup"`

	// Settings holds the keys of Type; nil only while Type is unknown.
	// Copies of a check share it: after Load nothing may change it.
	Settings CheckSettings `toml:"-"`

	Line int `toml:"-"`
	// complete is set by Load and NewCheck once defaults are filled and
	// every rule passed.
	complete bool
}

// Duration is a time.Duration decoded from a TOML string like "1.5s".
type Duration struct{ time.Duration }

// Addr is an IP address, optionally with a port ("10.0.0.1", "10.0.0.1:80", "[::1]:53").
type Addr struct {
	IP   netip.Addr
	Port int // 0 when absent
}

// Prefix is an address with prefix length ("192.0.2.10/24"); a bare address gets /32 or /128.
type Prefix struct{ netip.Prefix }
