// Package status is the status document of a running lvsd: what GET
// /status serves on the control socket and the metrics listener, and what
// `lvsd status -json` prints. The daemon writes it with these types, and
// the CLI, the demo and the e2e tests read it with them, so a field added
// here reaches every reader at once.
//
// The JSON names are an API that monitoring scripts read: add fields,
// never rename or remove one.
package status

import (
	"time"

	"github.com/lvsd/lvsd/anycast"
	"github.com/lvsd/lvsd/vrrp"
)

// Report is the whole document.
type Report struct {
	Node       string     `json:"node"`
	Config     string     `json:"config"`
	Version    string     `json:"version"`
	LastReload time.Time  `json:"last_reload"`
	ReloadOK   bool       `json:"last_reload_successful"`
	ReloadErr  string     `json:"last_reload_error,omitempty"`
	Services   []Service  `json:"services"`
	VRRP       []Instance `json:"vrrp"`
	// Checks says whether the health checks keep their schedule.
	Checks CheckSchedule `json:"checks"`
	// EvictionGuard is present when lvsd runs a director.
	EvictionGuard *Guard `json:"eviction_guard,omitempty"`
	// Announce is active-active: each announced VIP and BIRD's BGP
	// sessions; absent when nothing is announced.
	Announce *anycast.Status `json:"announce,omitempty"`
	// Time is when the document was made: "since" and rates read
	// against it.
	Time time.Time `json:"time,omitzero"`
	// Sync is connection sync: the VRRP instance it follows and the
	// kernel's sync daemons; absent without [vrrp.sync].
	Sync *Sync `json:"sync,omitempty"`
	// Actions says which operator actions the status page offers, and how
	// they authenticate ("token" or "basic"); absent when they are off.
	Actions *Actions `json:"actions,omitempty"`
}

// Actions are the status page's operator actions ([director.web]).
type Actions struct {
	Auth string `json:"auth"` // "token" | "basic"
}

// Sync is the kernel's IPVS connection sync as lvsd runs it.
type Sync struct {
	Instance string       `json:"instance"`
	Master   bool         `json:"master"` // the instance is master here
	Daemons  []SyncDaemon `json:"daemons"`
	Error    string       `json:"error,omitempty"` // reading the kernel's daemons failed
}

// SyncDaemon is one kernel sync daemon: whether lvsd wants it now and
// whether the kernel runs it.
type SyncDaemon struct {
	State     string `json:"state"` // master | backup
	Wanted    bool   `json:"wanted"`
	Running   bool   `json:"running"`
	Interface string `json:"interface"`
	SyncID    int    `json:"sync_id"`
}

// Rates are per-second rates of the kernel's counters over the last
// Interval seconds, from two reads of the counters at least a second
// apart, taken as status is asked for.
type Rates struct {
	Interval      float64 `json:"interval_seconds"`
	Conns         float64 `json:"connections_per_second"`
	PacketsIn     float64 `json:"packets_in_per_second"`
	PacketsOut    float64 `json:"packets_out_per_second"`
	BytesIn       float64 `json:"bytes_in_per_second"`
	BytesOut      float64 `json:"bytes_out_per_second"`
	TotalConns    uint64  `json:"connections_total"`
	TotalPackets  uint64  `json:"packets_total"`
	TotalBytesIn  uint64  `json:"bytes_in_total"`
	TotalBytesOut uint64  `json:"bytes_out_total"`
}

// Guard is what the eviction guard does: whether lvsd counts itself in
// trouble, and the failed checks it holds instead of evicting.
type Guard struct {
	On         bool        `json:"on"`
	Fault      string      `json:"fault,omitempty"` // "fds: ...", "memory: ...", "checks: ...", "probes: ..."
	FaultSince time.Time   `json:"fault_since,omitzero"`
	Held       []HeldCheck `json:"held"`
}

// HeldCheck is one failed check the guard holds: its server stays in the
// table until the check passes again or, at the latest, Until.
type HeldCheck struct {
	Service    string    `json:"service"`
	RealServer string    `json:"realserver"`
	Since      time.Time `json:"since"`
	Until      time.Time `json:"until"`
	Reason     string    `json:"reason"` // the check's
	Why        string    `json:"why"`    // the guard's
}

// CheckSchedule says whether the health checks keep their schedule. When
// lvsd cannot (busy CPUs, more checks than it can run), it probes the
// checks behind less often instead of failing their servers.
type CheckSchedule struct {
	Checks   int           `json:"checks"`          // probes; a check shared by several services counts once
	Behind   int           `json:"behind_schedule"` // checks lvsd is late with
	BehindBy time.Duration `json:"behind_by_ns"`    // how late the most-behind one is
}

// Service is one configured virtual service.
type Service struct {
	Name string `json:"name"`
	// Address is the service's key as config.ServiceKey prints it:
	// "tcp/192.0.2.10:80", "fwmark/10" or "fwmark/10/inet6".
	Address     string       `json:"address"`
	Scheduler   string       `json:"scheduler"`
	InKernel    bool         `json:"in_kernel"`
	SorryActive bool         `json:"sorry_active"`
	RealServers []RealServer `json:"realservers"`
	// Protocol, VIP and Port, or FWMark, say the key in parts.
	Protocol string `json:"protocol,omitempty"` // tcp | udp | sctp
	VIP      string `json:"vip,omitempty"`
	Port     int    `json:"port,omitempty"`
	FWMark   uint32 `json:"fwmark,omitempty"`
	// Forwarding is the service's (a real server may override it).
	Forwarding string `json:"forwarding"`
	// QuorumUp is false while fewer servers are up than quorum asks for
	// (SorryActive then says whether the sorry server took over).
	QuorumUp bool `json:"quorum_up"`
	// Quorum is the configured quorum, 0 when none.
	Quorum int `json:"quorum,omitempty"`
	// Rates are the kernel's counters of the service; absent until two
	// reads are in, or when the kernel does not hold the service.
	Rates *Rates `json:"rates,omitempty"`
}

// RealServer is one real server of a service: its health as the director
// holds it, the details of its latest checks, and what the kernel held at
// the director's last pass.
type RealServer struct {
	Address      string        `json:"address"`
	Health       string        `json:"health"` // unknown | up | down
	Reason       string        `json:"reason,omitempty"`
	Latency      time.Duration `json:"latency_ns"`
	LastCheck    time.Time     `json:"last_check,omitempty"`
	Weight       int           `json:"weight"`        // configured
	KernelWeight int           `json:"kernel_weight"` // -1: not in the kernel table
	Drained      bool          `json:"drained"`
	// HeldByGuard: the server failed its checks, but the eviction guard
	// keeps it in the table (see eviction_guard).
	HeldByGuard bool   `json:"held_by_guard,omitempty"`
	ActiveConns uint64 `json:"active_conns"`
	InactConns  uint64 `json:"inactive_conns"`
	// Consecutive probe results (the fewest successes and the most failures
	// of any of the server's checks): how far it is from rise or fall.
	Successes int `json:"consecutive_successes"`
	Failures  int `json:"consecutive_failures"`
	// HealthSince is when Health last changed (or lvsd first knew the
	// server).
	HealthSince time.Time `json:"health_since,omitzero"`
	// LastResult is the latest probe's result, "ok" or "failed" (of the
	// check probed last when the server has several); "" before the first.
	LastResult string `json:"last_check_result,omitempty"`
	// Warming: back from a failure or a drain, its weight still ramps up
	// (warmup).
	Warming    bool   `json:"warming"`
	Forwarding string `json:"forwarding"`
	// Rates are the kernel's counters of the destination.
	Rates *Rates `json:"rates,omitempty"`
}

// Instance is one VRRP instance.
type Instance struct {
	Name           string   `json:"name"`
	VRID           int      `json:"vrid"`
	Interface      string   `json:"interface"`
	State          string   `json:"state"`
	Priority       int      `json:"priority"`
	MasterPriority int      `json:"master_priority"`
	VIPs           []string `json:"vips"`
	// PreemptHeld: a backup that will not preempt a lower master until
	// the first health checks have decided every real server.
	PreemptHeld bool `json:"preempt_held,omitempty"`
	// Master is the master's address as last heard (ours when master).
	Master string `json:"master,omitempty"`
	// Since is the time of the last transition.
	Since time.Time `json:"since,omitzero"`
	// Transitions counts state changes since lvsd started; Adverts and
	// Drops count adverts and dropped packets (by reason), the same
	// counters as /metrics.
	Transitions     uint64            `json:"transitions"`
	AdvertsSent     uint64            `json:"adverts_sent"`
	AdvertsReceived uint64            `json:"adverts_received"`
	Drops           map[string]uint64 `json:"drops"`
	// Auth is [vrrp.auth] (mode, key ids, never keys) and the adverts it
	// accepted and dropped; absent without it.
	Auth *vrrp.AuthStatus `json:"auth,omitempty"`
	// Version is the VRRP version spoken (3, or 2 to pair with keepalived);
	// AuthPass: version 2 with a clear-text auth_pass (never the password).
	Version  int  `json:"version"`
	AuthPass bool `json:"auth_pass,omitempty"`
	// Priority above is the effective one (moved by tracked weights);
	// ConfiguredPriority is the config's.
	ConfiguredPriority int      `json:"configured_priority"`
	Faults             []string `json:"faults,omitempty"`
	SyncGroup          string   `json:"sync_group,omitempty"`
	// Tracks are the tracked scripts, interfaces and services with their
	// weights; Resources the services the instance runs while master.
	Tracks    []vrrp.TrackStatus    `json:"tracks,omitempty"`
	Resources []vrrp.ResourceStatus `json:"resources,omitempty"`
	// ResourceFailure is the last resource failure (a failed start, a
	// status that failed, a failed stop); HoldOffUntil ends the hold-off
	// it caused; Releasing: leaving master, stopping the resources first.
	ResourceFailure string    `json:"resource_failure,omitempty"`
	HoldOffUntil    time.Time `json:"hold_off_until,omitzero"`
	Releasing       bool      `json:"releasing,omitempty"`
}

// Service returns the service named name, or nil.
func (r *Report) Service(name string) *Service {
	for i := range r.Services {
		if r.Services[i].Name == name {
			return &r.Services[i]
		}
	}
	return nil
}

// RealServer returns the real server at address ("ip:port") of the service
// named service, or of any service when service is "", or nil.
func (r *Report) RealServer(service, address string) *RealServer {
	for i := range r.Services {
		s := &r.Services[i]
		if service != "" && s.Name != service {
			continue
		}
		for j := range s.RealServers {
			if s.RealServers[j].Address == address {
				return &s.RealServers[j]
			}
		}
	}
	return nil
}

// Instance returns the VRRP instance named name, or nil.
func (r *Report) Instance(name string) *Instance {
	for i := range r.VRRP {
		if r.VRRP[i].Name == name {
			return &r.VRRP[i]
		}
	}
	return nil
}
