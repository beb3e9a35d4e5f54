package vrrp

import (
	"net/netip"
	"time"
)

// EventKind names what happened to a virtual router. The Machine reacts to
// each with a new state and a list of Actions; it never performs them.
//
// Authenticated adverts (an HMAC trailer, auth_gate.go) and VRRPv2 are checked and
// decoded before the machine: it only ever sees EvAdvert with a verified
// Advert. Weighted tracking is EvTrack, which moves the effective
// priority (machine_track.go); a sync group is the executor feeding one
// instance's changes to its siblings as EvSync and EvSyncState
// (syncgroup.go, machine_sync.go); resources are ActResource, run off the
// timing path, whose outcome comes back as EvResource
// (machine_resources.go).
type EventKind uint8

const (
	_ EventKind = iota
	// EvStartup is the Startup event of the Initialize state.
	EvStartup
	// EvShutdown stops the instance: a master resigns with priority 0.
	EvShutdown
	// EvAdvert is a received advertisement that passed every check of
	// RFC 5798 section 7.1 that does not need the state machine.
	EvAdvert
	// EvTimer says time has reached the machine's Next deadline.
	EvTimer
	// EvFault sets (On) or clears one fault reason.
	EvFault
	// EvTakeover, EvGiveup and EvReset are the operator's verbs.
	EvTakeover
	EvGiveup
	EvReset
	// EvPreemptHold holds (On) or releases preemption of a live master.
	EvPreemptHold
	// EvReconfigure applies reloaded settings in place.
	EvReconfigure
	// EvDropVIPs is the first half of a reload: VIPs no longer listed go.
	EvDropVIPs
	// EvDone says the executor has performed every action up to the
	// ActDone with the same Token; Err is the first error among them.
	EvDone
	// EvTrack is one result of a tracked script, or the state of a
	// weighted tracked interface or service: Track, Up, Detail, Duration.
	EvTrack
	// EvResource is the outcome of the ActResource with the same Token:
	// Err (nil: success), Detail, Duration.
	EvResource
	// EvSync is a sync group moving this instance with its siblings to
	// SyncTo (master or backup).
	EvSync
	// EvSyncState is what the siblings of a sync group impose: the Faults
	// (sync-group reasons) the instance must have, and the Delta their
	// tracking adds to its priority.
	EvSyncState
)

// Event is one input of the Machine. Only the fields of its Kind are set.
type Event struct {
	Kind   EventKind
	Reason string // EvShutdown, EvFault
	On     bool   // EvFault, EvPreemptHold
	// Src and Advert: EvAdvert.
	Src    netip.Addr
	Advert Advert
	// Settings: EvReconfigure.
	Settings *settings
	// VIPs: EvDropVIPs (the VIPs the new config lists).
	VIPs []netip.Prefix
	// Token and Err: EvDone, EvResource.
	Token uint64
	Err   error
	// Track, Up, Detail and Duration: EvTrack; Detail and Duration also
	// EvResource.
	Track    string
	Up       bool
	Detail   string
	Duration time.Duration
	// SyncTo: EvSync. Faults and Delta: EvSyncState.
	SyncTo State
	Faults []string
	Delta  int
}

// ActionKind names what the Machine asks of its executor.
type ActionKind uint8

const (
	_ ActionKind = iota
	// ActSend sends an advert with Priority to every destination. It is
	// on the timing path: the executor sends at once, without allocating.
	ActSend
	// ActNotify reports a transition (callback, notify script, metrics);
	// the executor queues it and never waits for it.
	ActNotify
	// ActAddVIPs, ActRemoveVIPs and ActAnnounce are slow (netlink, packet
	// sockets): the executor performs them in order, off the timing path.
	ActAddVIPs
	ActRemoveVIPs
	// ActAnnounce sends one gratuitous ARP / unsolicited NA per VIP. One
	// whose Term has ended (the instance left master since) is skipped.
	ActAnnounce
	// ActDone asks for EvDone{Token} once every slow action before it has
	// been performed.
	ActDone
	// ActResource runs Op of Resource (Argv, killed with its process group
	// after Timeout) and reports EvResource{Token}. It is slow and runs
	// off the timing path, in order, one at a time per instance; a stop
	// runs only once the address actions before it are done.
	ActResource
	// ActCancel kills the ActResource with Token if it still runs (a start
	// or status of a mastership that has ended). It is immediate.
	ActCancel
)

// Action is one output of the Machine.
type Action struct {
	Kind     ActionKind
	Priority uint8
	VIPs     []netip.Prefix
	Term     uint64
	Token    uint64
	Change   StateChange
	// Resource, Op, Argv, Timeout and Reason (why it runs): ActResource.
	Resource string
	Op       ResourceOp
	Argv     []string
	Timeout  time.Duration
	Reason   string
}

// slow says whether the executor must keep the action off the timing path.
func (a *Action) slow() bool {
	switch a.Kind {
	case ActAddVIPs, ActRemoveVIPs, ActAnnounce, ActDone, ActResource:
		return true
	}
	return false
}
