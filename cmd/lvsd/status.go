package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/lvsd/lvsd/anycast"
	"github.com/lvsd/lvsd/vrrp"
)

// StatusReport is the JSON document served on GET /status and printed by
// `lvsd status`. Field names are part of the API: add, never rename.
type StatusReport struct {
	Node       string           `json:"node"`
	Config     string           `json:"config"`
	Version    string           `json:"version"`
	LastReload time.Time        `json:"last_reload"`
	ReloadOK   bool             `json:"last_reload_successful"`
	ReloadErr  string           `json:"last_reload_error,omitempty"`
	Services   []ServiceStatus  `json:"services"`
	VRRP       []InstanceStatus `json:"vrrp"`
	Checks     CheckSchedule    `json:"checks"`
	// EvictionGuard is present when lvsd runs a director.
	EvictionGuard *GuardReport `json:"eviction_guard,omitempty"`
	// Announce is active-active: each announced VIP and BIRD's BGP
	// sessions; absent when nothing is announced.
	Announce *anycast.Status `json:"announce,omitempty"`
}

// GuardReport is what the eviction guard does: whether lvsd counts itself
// in trouble, and the failed checks it holds instead of evicting.
type GuardReport struct {
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

type ServiceStatus struct {
	Name        string             `json:"name"`
	Address     string             `json:"address"` // "tcp 192.0.2.10:80" or "fwmark 10"
	Scheduler   string             `json:"scheduler"`
	InKernel    bool               `json:"in_kernel"`
	SorryActive bool               `json:"sorry_active"`
	RealServers []RealServerStatus `json:"realservers"`
}

type RealServerStatus struct {
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

type InstanceStatus struct {
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
	// AuthPass: version 2 with a clear-text auth_pass.
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

func init() {
	register(command{name: "status", summary: "show services, real servers with health and weight, and VRRP state of a running lvsd", run: runStatus})
}

func runStatus(args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("status", "Show what a running lvsd is doing: each service with its real servers' health,\nlast check reason and latency, weight and connections, and each VRRP instance's state.", stderr)
	socket := fs.String("socket", defaultSocket, "control socket of the running lvsd")
	asJSON := fs.Bool("json", false, "print the raw JSON status document")
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	var st StatusReport
	if err := newControlClient(*socket).do("GET", "/status", &st); err != nil {
		fmt.Fprintln(stderr, "lvsd status:", err)
		return 1
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		_ = enc.Encode(st)
		return 0
	}
	printStatus(stdout, st)
	return 0
}

// printStatus renders the report the way ipvsadm -L does, with health
// columns added, because that is the table our users already read.
func printStatus(w io.Writer, st StatusReport) {
	fmt.Fprintf(w, "lvsd %s on %s, config %s", st.Version, st.Node, st.Config)
	if !st.LastReload.IsZero() {
		ok := "ok"
		if !st.ReloadOK {
			ok = "FAILED: " + st.ReloadErr
		}
		fmt.Fprintf(w, ", last reload %s (%s)", st.LastReload.Format(time.RFC3339), ok)
	}
	fmt.Fprintln(w)
	fmt.Fprintf(w, "checks behind schedule: %d of %d", st.Checks.Behind, st.Checks.Checks)
	if st.Checks.Behind > 0 {
		fmt.Fprintf(w, ", by up to %s (probed less often until lvsd catches up)", st.Checks.BehindBy.Round(time.Millisecond))
	}
	fmt.Fprintln(w)
	if len(st.VRRP) > 0 {
		fmt.Fprintln(w, "\nVRRP")
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "  INSTANCE\tVRID\tIFACE\tSTATE\tPRIO\tMASTER-PRIO\tAUTH\tVIPS")
		for _, v := range st.VRRP {
			state := v.State
			if v.PreemptHeld && v.State == "backup" {
				state += " (no preempt until first checks)"
			}
			switch {
			case v.Releasing:
				state += " (stopping resources)"
			case !v.HoldOffUntil.IsZero():
				state += " (hold-off until " + v.HoldOffUntil.Format(time.TimeOnly) + ")"
			}
			if v.SyncGroup != "" {
				state += " [group " + v.SyncGroup + "]"
			}
			fmt.Fprintf(tw, "  %s\t%d\t%s\t%s\t%d\t%d\t%s\t%s\n", v.Name, v.VRID, v.Interface, state, v.Priority, v.MasterPriority, authWord(&v), strings.Join(v.VIPs, ","))
		}
		tw.Flush()
		printAuth(w, st.VRRP)
		printHA(w, st.VRRP)
	}
	printGuard(w, st.EvictionGuard)
	printAnnounce(w, st.Announce)
	fmt.Fprintln(w, "\nSERVICES")
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "  SERVICE / REALSERVER\tHEALTH\tWEIGHT\tKERNEL\tACTIVE\tINACT\tLATENCY\tREASON")
	for _, s := range st.Services {
		flag := ""
		if !s.InKernel {
			flag = " [not in kernel]"
		}
		if s.SorryActive {
			flag += " [SORRY SERVER ACTIVE]"
		}
		fmt.Fprintf(tw, "  %s  %s %s%s\t\t\t\t\t\t\t\n", s.Name, s.Address, s.Scheduler, flag)
		for _, r := range s.RealServers {
			kw := "-"
			if r.KernelWeight >= 0 {
				kw = fmt.Sprint(r.KernelWeight)
			}
			health := r.Health
			if r.Drained {
				health += ",drained"
			}
			if r.HeldByGuard {
				health += ",held"
			}
			lat := "-"
			if r.Latency > 0 {
				lat = r.Latency.Round(10 * time.Microsecond).String()
			}
			fmt.Fprintf(tw, "    -> %s\t%s\t%d\t%s\t%d\t%d\t%s\t%s\n", r.Address, health, r.Weight, kw, r.ActiveConns, r.InactConns, lat, r.Reason)
		}
	}
	tw.Flush()
}

// authWord is an instance's AUTH column: "-" without [vrrp.auth], else
// the mode and the key that signs.
func authWord(v *InstanceStatus) string {
	a := v.Auth
	switch {
	case v.Version == 2 && v.AuthPass:
		return "v2 auth_pass (clear text)"
	case v.Version == 2:
		return "v2, none"
	case a == nil:
		return "-"
	case a.ActiveKey == 0:
		return a.Mode
	}
	return fmt.Sprintf("%s key %d", a.Mode, a.ActiveKey)
}

// printAuth says, per authenticated instance, what it verified, accepted
// unsigned and dropped: the numbers to read before each rollout step.
func printAuth(w io.Writer, vrrps []InstanceStatus) {
	for _, v := range vrrps {
		a := v.Auth
		if a == nil {
			continue
		}
		var dropped []string
		for _, r := range vrrp.AuthReasons {
			if n := a.Drops[r]; n > 0 {
				dropped = append(dropped, fmt.Sprintf("%s %d", r, n))
			}
		}
		if len(dropped) == 0 {
			dropped = []string{"none"}
		}
		line := fmt.Sprintf("  %s auth: %s, keys %v, verified %d, unsigned accepted %d", v.Name, a.AntiReplay, a.KeyIDs, a.Verified, a.Unsigned)
		if a.LastUnsignedFrom != "" {
			line += " (last from " + a.LastUnsignedFrom + ")"
		}
		fmt.Fprintf(w, "%s; dropped: %s\n", line, strings.Join(dropped, ", "))
	}
}

// guardListed is how many held checks the text status lists; JSON has all.
const guardListed = 20

// printGuard says what the eviction guard holds, when lvsd is in trouble
// or holds anything.
func printGuard(w io.Writer, g *GuardReport) {
	if g == nil || g.Fault == "" && len(g.Held) == 0 {
		return
	}
	fmt.Fprintln(w, "\nEVICTION GUARD")
	if g.Fault != "" {
		fmt.Fprintf(w, "  lvsd is in trouble since %s: %s\n", g.FaultSince.Format(time.RFC3339), g.Fault)
	} else {
		fmt.Fprintln(w, "  lvsd is out of trouble; the checks are judging the held servers again")
	}
	if len(g.Held) == 0 {
		fmt.Fprintln(w, "  holding nothing: every failed check is applied")
		return
	}
	fmt.Fprintf(w, "  holding %d failed checks: their servers stay in the table\n", len(g.Held))
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "  SERVICE / REALSERVER\tSINCE\tUNTIL\tREASON\tWHY")
	for i, h := range g.Held {
		if i == guardListed {
			fmt.Fprintf(tw, "  ... and %d more (lvsd status -json lists them all)\t\t\t\t\n", len(g.Held)-i)
			break
		}
		fmt.Fprintf(tw, "  %s/%s\t%s\t%s\t%s\t%s\n", h.Service, h.RealServer, h.Since.Format(time.TimeOnly), h.Until.Format(time.TimeOnly), h.Reason, h.Why)
	}
	tw.Flush()
}
