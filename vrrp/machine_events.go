package vrrp

import (
	"net/netip"
)

// EventKind names what happened to a virtual router. The Machine reacts to
// each with a new state and a list of Actions; it never performs them.
//
// Room for what comes later, without another rewrite:
//   - authenticated adverts (an HMAC trailer, auth_gate.go) and VRRPv2
//     are checked and decoded before the machine: it only ever sees
//     EvAdvert with a verified Advert;
//   - weighted priority tracking is one more event that moves the
//     effective priority (the machine already separates configured and
//     effective priority for Takeover);
//   - a sync group is an executor that feeds one instance's transitions to
//     its siblings as EvFault/EvTakeover/EvGiveup-like events;
//   - resources started on becoming master are slow actions followed by an
//     ActDone, whose EvDone carries the error that makes the machine resign
//     and hold off.
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
	// Token and Err: EvDone.
	Token uint64
	Err   error
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
)

// Action is one output of the Machine.
type Action struct {
	Kind     ActionKind
	Priority uint8
	VIPs     []netip.Prefix
	Term     uint64
	Token    uint64
	Change   StateChange
}

// slow says whether the executor must keep the action off the timing path.
func (a *Action) slow() bool {
	switch a.Kind {
	case ActAddVIPs, ActRemoveVIPs, ActAnnounce, ActDone:
		return true
	}
	return false
}
