package vrrp

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"sort"
	"sync/atomic"
	"time"

	"github.com/lvsd/lvsd/internal/proc"
)

// State is the state of one VRRP instance. Fault is keepalived's FAULT: a
// tracked interface or service is down, the instance holds no VIPs, sends
// no adverts and will not become master until the fault clears.
type State int

const (
	StateInit State = iota
	StateBackup
	StateMaster
	StateFault
)

func (s State) String() string {
	switch s {
	case StateInit:
		return "init"
	case StateBackup:
		return "backup"
	case StateMaster:
		return "master"
	case StateFault:
		return "fault"
	}
	return fmt.Sprintf("state(%d)", int(s))
}

// StateChange reports one transition of one instance.
type StateChange struct {
	Instance string
	From, To State
	// Priority is the priority the instance advertises in its new state.
	Priority int
	// Reason says what caused the transition, for logs.
	Reason string
}

// AddressManager puts the VIPs on and off the interface. lvsd's director
// implements it with netlink; the vrrp package never touches addresses.
type AddressManager interface {
	AddVIPs(ctx context.Context, iface string, vips []netip.Prefix) error
	RemoveVIPs(ctx context.Context, iface string, vips []netip.Prefix) error
}

// Announcer tells the link that the VIPs moved: one gratuitous ARP per IPv4
// VIP, one unsolicited neighbour advertisement per IPv6 VIP.
type Announcer interface {
	Announce(iface string, vips []netip.Prefix) error
}

// override is an operator decision that outlives advert exchanges.
type override int

const (
	overrideNone override = iota
	overrideTakeover
	overrideGiveup
)

func (o override) String() string {
	return [...]string{"", "takeover", "giveup"}[o]
}

// takeoverPriority is what Takeover advertises: above every priority a
// config may set for a director (255 is reserved for address owners, which
// a director never is, since accept mode needs VIPs to move).
const takeoverPriority = 254

// Packet is one received VRRP packet with the IP facts filtering needs.
type Packet struct {
	Src, Dst netip.Addr
	// TTL is the IPv4 TTL or IPv6 hop limit; -1 when unknown.
	TTL     int
	Payload []byte
}

// Conn sends and receives the VRRP packets of one instance.
type Conn interface {
	// Send writes one packet; it must not keep payload after it returns
	// (the executor reuses the buffer for the next advert).
	Send(payload []byte, dst netip.Addr) error
	// Receive blocks for the next packet; it fails once Close is called.
	Receive() (Packet, error)
	Close() error
}

// instance is the executor's side of one virtual router: its Machine, its
// socket and pre-encoded adverts (all under the executor's lock), and the
// worker that performs its slow actions outside that lock.
type instance struct {
	name  string
	iface string // fixed: a new interface makes a new instance
	ex    *executor
	addrs AddressManager
	ann   Announcer
	log   *slog.Logger
	met   instanceMetrics
	// ownAddr reports addresses of this host (it may do I/O: call it
	// outside the executor's lock).
	ownAddr func(netip.Addr) bool
	changed func(StateChange)
	events  *queue
	work    *worker
	// ops runs the resources' commands, in order, off the timing path;
	// exec runs one command (proc.Run; tests replace it).
	ops     *opRunner
	exec    func(context.Context, []string, proc.RunOptions) proc.Result
	scripts map[string]*scriptRunner // the tracked scripts running, by name
	life    lifecycle
	// term mirrors the machine's, for the worker to skip stale
	// announcements without the executor's lock.
	term atomic.Uint64

	// Under ex.mu:
	m        *Machine
	conn     Conn
	adverts  []encodedAdvert
	mismatch string // the configuration mismatch last logged
	lastPrio int    // the master priority last exported
	signer   signer // [vrrp.auth] (auth_sign.go)

	// gate checks received adverts against min_ttl and [vrrp.auth]
	// before the executor's lock (auth_gate.go); it has its own.
	gate gate
	// stopped, when set, is closed once the machine is in Init with its
	// resources stopped (shutdownWait).
	stopped chan struct{}
}

// encodedAdvert is an advert for one destination, encoded once; a send
// with another priority patches it in place.
type encodedAdvert struct {
	dst netip.Addr
	b   []byte
}

// rebuildAdverts encodes the adverts anew after the settings or the
// source changed (ex.mu held).
func (in *instance) rebuildAdverts() {
	in.adverts = in.adverts[:0]
	c := &in.m.cfg
	in.followSettings()
	if !c.source.IsValid() {
		return
	}
	ad := Advert{VRID: c.vrid, Interval: c.interval, Addrs: c.vipAddrs(), Version: uint8(c.version), V2Auth: c.v2Auth}
	for _, dst := range c.destinations() {
		b, err := ad.Encode(c.source, dst, c.checksum)
		if err != nil {
			in.log.Error("vrrp: encoding advert", "instance", in.name, "dst", dst, "err", err)
			continue
		}
		b = append(b, make([]byte, in.signer.room())...) // the trailer's
		in.adverts = append(in.adverts, encodedAdvert{dst: dst, b: b})
	}
}

// send sends an advert with priority to every destination (ex.mu held),
// signed when [vrrp.auth] signs. This is the timing path: it must not
// allocate or block.
func (in *instance) send(now time.Time, priority uint8) {
	if in.conn == nil {
		return // not open yet: the instance is in Fault until it is
	}
	c := &in.m.cfg
	signed := in.signer.sign(now, c.source, in.adverts, priority)
	for i := range in.adverts {
		e := &in.adverts[i]
		if e.b[2] != priority || signed {
			e.b[2] = priority
			setChecksum(e.b, c.source, e.dst, c.checksum, signed)
		}
		if err := in.conn.Send(e.b, e.dst); err != nil {
			in.log.Warn("vrrp: sending advert", "instance", in.name, "dst", e.dst, "err", err)
			continue
		}
		in.met.sent()
	}
}

// handle runs the receive checks of RFC 5798 section 7.1, then gives the
// advert to the machine. Decoding and the own-address lookup happen
// outside the executor's lock.
func (in *instance) handle(p Packet) {
	if in.ownAddr != nil && in.ownAddr(p.Src) {
		in.met.drop("own_address")
		return
	}
	if p.Dst.IsMulticast() && p.TTL != ttlRequired || in.gate.ttlDrop(&p) {
		in.met.drop("ttl")
		return
	}
	ad, _, extra, err := decode(p.Payload, p.Src, p.Dst)
	if err != nil {
		in.met.drop(DropReason(err))
		return
	}
	if !in.authenticate(&p, &ad, extra) {
		return
	}
	in.ex.receive(in, p.Src, ad)
}

// accept is the part of the receive checks that needs the settings
// (ex.mu held); false means dropped.
func (in *instance) accept(src netip.Addr, ad *Advert) bool {
	c := &in.m.cfg
	if ad.VRID != c.vrid {
		return false // another virtual router sharing the link: not an error
	}
	if src == c.source {
		in.met.drop("own_address")
		return false
	}
	if !c.multicast() && !slices.Contains(c.peers, src) {
		in.met.drop("unknown_sender")
		return false
	}
	if ad.Interval == 0 {
		in.met.drop("interval")
		return false
	}
	in.met.received()
	in.checkConsistency(src, ad)
	return true
}

// checkConsistency logs, once per distinct problem, an advert whose VIPs or
// interval differ from ours. RFC 5798 7.1 asks for a log, not a drop: the
// packet still elects a master, which avoids split brain on misconfiguration.
func (in *instance) checkConsistency(src netip.Addr, ad *Advert) {
	c := &in.m.cfg
	var problem string
	theirs := slices.Clone(ad.Addrs)
	ours := c.vipAddrs()
	sort.Slice(theirs, func(i, j int) bool { return theirs[i].Less(theirs[j]) })
	sort.Slice(ours, func(i, j int) bool { return ours[i].Less(ours[j]) })
	switch {
	case !slices.Equal(theirs, ours):
		problem = fmt.Sprintf("peer %v advertises VIPs %v, we have %v", src, ad.Addrs, c.vipAddrs())
	case ad.Interval != c.interval:
		problem = fmt.Sprintf("peer %v advertises interval %v, we have %v (backups adopt the master's)", src, ad.Interval, c.interval)
	}
	if problem != "" && problem != in.mismatch {
		in.log.Warn("vrrp: configuration mismatch", "instance", in.name, "problem", problem)
	}
	in.mismatch = problem
}

// do performs one slow action, outside the executor's lock. err collects
// the first failure since the last ActDone.
func (in *instance) do(a *Action, err *error) {
	keep := func(e error) {
		if *err == nil {
			*err = e
		}
	}
	switch a.Kind {
	case ActAddVIPs:
		ctx, cancel := context.WithTimeout(context.Background(), vipTimeout)
		t0 := time.Now()
		if e := in.addrs.AddVIPs(ctx, in.iface, a.VIPs); e != nil {
			in.log.Error("vrrp: adding VIPs", "instance", in.name, "vip", a.VIPs, "err", e)
			keep(e)
		}
		cancel()
		in.log.Debug("vrrp: VIPs added", "instance", in.name, "vip", a.VIPs, "took", time.Since(t0))
	case ActRemoveVIPs:
		ctx, cancel := context.WithTimeout(context.Background(), vipTimeout)
		if e := in.addrs.RemoveVIPs(ctx, in.iface, a.VIPs); e != nil {
			in.log.Error("vrrp: removing VIPs", "instance", in.name, "vip", a.VIPs, "err", e)
			keep(e)
		}
		cancel()
	case ActAnnounce:
		if a.Term != in.term.Load() {
			return // left master since: a stale announcement would mislead the link
		}
		if e := in.ann.Announce(in.iface, a.VIPs); e != nil {
			in.log.Warn("vrrp: announcing VIPs", "instance", in.name, "err", e)
		}
		in.met.announced()
	case ActDone:
		e := *err
		*err = nil
		in.ex.post(in, Event{Kind: EvDone, Token: a.Token, Err: e})
	case ActResource:
		in.logResource(a)
		in.runResource(context.Background(), a)
	}
}

// The operator's and the Manager's events.

func (in *instance) start()                 { in.ex.post(in, Event{Kind: EvStartup}) }
func (in *instance) shutdown(reason string) { in.ex.post(in, Event{Kind: EvShutdown, Reason: reason}) }
func (in *instance) takeover()              { in.ex.post(in, Event{Kind: EvTakeover}) }
func (in *instance) giveup()                { in.ex.post(in, Event{Kind: EvGiveup}) }
func (in *instance) reset()                 { in.ex.post(in, Event{Kind: EvReset}) }
func (in *instance) holdPreempt(on bool)    { in.ex.post(in, Event{Kind: EvPreemptHold, On: on}) }
func (in *instance) dropVIPs(next []netip.Prefix) {
	in.ex.post(in, Event{Kind: EvDropVIPs, VIPs: next})
}
func (in *instance) setFault(reason string, on bool) {
	in.ex.post(in, Event{Kind: EvFault, Reason: reason, On: on})
}

// reconfigure applies settings that the same socket carries, without a
// transition. The caller re-evaluates faults afterwards.
func (in *instance) reconfigure(s settings) {
	in.life.configured = s
	in.ex.post(in, Event{Kind: EvReconfigure, Settings: &s})
}

func (in *instance) status() InstanceStatus {
	in.ex.mu.Lock()
	defer in.ex.mu.Unlock()
	st := in.m.status()
	st.Auth = in.gate.status(&in.m.cfg.auth)
	st.Version = versionOf(in.m.cfg.version)
	st.AuthPass = in.m.cfg.v2Auth.Type == V2AuthPassword
	return st
}

func (in *instance) faultList() []string {
	in.ex.mu.Lock()
	defer in.ex.mu.Unlock()
	return in.m.Faults()
}

// notifyCommand is the notify argv and timeout, which a reload may change.
func (in *instance) notifyCommand() ([]string, time.Duration) {
	in.ex.mu.Lock()
	defer in.ex.mu.Unlock()
	return in.m.cfg.notify, in.m.cfg.notifyTimeout
}

func (in *instance) source() netip.Addr {
	in.ex.mu.Lock()
	defer in.ex.mu.Unlock()
	return in.m.cfg.source
}

// opened gives the instance its socket and the source address open found.
func (in *instance) opened(src netip.Addr, conn Conn) {
	in.ex.mu.Lock()
	defer in.ex.mu.Unlock()
	in.m.setSource(src)
	in.conn = conn
	in.rebuildAdverts()
}

func (in *instance) closeConn() {
	in.ex.mu.Lock()
	defer in.ex.mu.Unlock()
	if in.conn != nil {
		in.conn.Close()
	}
}

// InstanceStatus is one instance as the status API shows it.
type InstanceStatus struct {
	Name              string         `json:"name"`
	VRID              int            `json:"vrid"`
	Interface         string         `json:"interface"`
	State             string         `json:"state"`
	Since             time.Time      `json:"since"`
	Priority          int            `json:"priority"`
	EffectivePriority int            `json:"effective_priority"`
	Override          string         `json:"override,omitempty"`
	PreemptHeld       bool           `json:"preempt_held,omitempty"`
	Faults            []string       `json:"faults,omitempty"`
	Master            string         `json:"master,omitempty"`
	MasterPriority    int            `json:"master_priority"`
	MasterInterval    time.Duration  `json:"master_interval"`
	VIPs              []netip.Prefix `json:"vips"`
	// Auth is [vrrp.auth] and what it rejected; nil without it.
	Auth *AuthStatus `json:"auth,omitempty"`
	// Version is the VRRP version spoken, 3 or 2; AuthPass says a version
	// 2 instance carries an auth_pass (never the password itself).
	Version  int  `json:"version"`
	AuthPass bool `json:"auth_pass,omitempty"`
	// HA for the services (machine_track.go, machine_resources.go).
	SyncGroup       string           `json:"sync_group,omitempty"`
	Tracks          []TrackStatus    `json:"tracks,omitempty"`
	Resources       []ResourceStatus `json:"resources,omitempty"`
	ResourceFailure string           `json:"resource_failure,omitempty"`
	HoldOffUntil    time.Time        `json:"hold_off_until,omitzero"`
	// Releasing: leaving master, stopping the resources before resigning.
	Releasing bool `json:"releasing,omitempty"`
}
