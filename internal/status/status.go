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
