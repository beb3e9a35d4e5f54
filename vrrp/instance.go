package vrrp

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"time"
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

// garpSecondBurst is when the second burst of announcements goes out after
// becoming master, as keepalived's garp_master_delay does by default.
const garpSecondBurst = 5 * time.Second

// settings is a normalized config.VRRP.
type settings struct {
	name          string
	vrid          uint8
	iface         string
	priority      int
	interval      time.Duration
	preempt       bool
	preemptDelay  time.Duration
	vips          []netip.Prefix
	peers         []netip.Addr
	source        netip.Addr
	checksum      Checksum
	garpRepeat    int
	garpInterval  time.Duration
	garpRefresh   time.Duration
	notify        []string
	notifyTimeout time.Duration
	trackServices []string
	trackIfaces   []string
}

func (s *settings) multicast() bool { return len(s.peers) == 0 }

func (s *settings) group() netip.Addr {
	if s.source.Is6() {
		return GroupV6
	}
	return GroupV4
}

func (s *settings) vipAddrs() []netip.Addr {
	out := make([]netip.Addr, len(s.vips))
	for i, p := range s.vips {
		out[i] = p.Addr()
	}
	return out
}

// Packet is one received VRRP packet with the IP facts filtering needs.
type Packet struct {
	Src, Dst netip.Addr
	// TTL is the IPv4 TTL or IPv6 hop limit; -1 when unknown.
	TTL     int
	Payload []byte
}

// Conn sends and receives the VRRP packets of one instance.
type Conn interface {
	Send(payload []byte, dst netip.Addr) error
	// Receive blocks for the next packet; it fails once Close is called.
	Receive() (Packet, error)
	Close() error
}

// instance is the RFC 5798 state machine of one virtual router. Every event
// (packet, timer, operator, fault) takes mu, so events are totally ordered.
type instance struct {
	cfg     settings
	clock   Clock
	conn    Conn
	addrs   AddressManager
	ann     Announcer
	log     *slog.Logger
	metrics *metrics
	ownAddr func(netip.Addr) bool
	changed func(StateChange)
	events  *queue
	life    lifecycle

	mu       sync.Mutex
	state    State
	since    time.Time
	override override
	faults   map[string]bool
	// masterAdverInterval is the interval learnt from the master (RFC 5798
	// Master_Adver_Interval); a master uses its own.
	masterAdverInterval time.Duration
	timer               Timer
	timerGen            uint64
	garpTimer           Timer
	garpGen             uint64
	garpBurstStart      time.Time
	// reannounceGen and reannounceTimers belong to the answer to a second
	// master (reannounce), apart from garpGen so that neither schedule
	// cancels the other.
	reannounceGen    uint64
	reannounceTimers []Timer
	lastReannounce   time.Time
	preemptSince     time.Time
	// preemptHeld is the Manager's HoldPreempt, shared by its instances.
	preemptHeld    *atomic.Bool
	masterAddr     netip.Addr
	masterPriority int
	loggedMismatch string
	holdsVIPs      bool
}

func (in *instance) effectivePriority() int {
	if in.override == overrideTakeover && in.cfg.priority < takeoverPriority {
		return takeoverPriority
	}
	return in.cfg.priority
}

// skew is Skew_Time of RFC 9568 section 6.1, in nanoseconds, not rounded.
func skew(priority int, interval time.Duration) time.Duration {
	return time.Duration(int64(256-priority) * int64(interval) / 256)
}

// masterDown is Master_Down_Interval.
func masterDown(priority int, interval time.Duration) time.Duration {
	return 3*interval + skew(priority, interval)
}

// start is the Startup event of the Initialize state.
func (in *instance) start() {
	in.mu.Lock()
	defer in.mu.Unlock()
	// A node killed while master left its VIPs on the interface; a backup
	// holding them would answer ARP for them beside the real master.
	in.holdsVIPs = true
	in.releaseVIPs()
	in.startLocked("startup")
}

func (in *instance) startLocked(reason string) {
	if len(in.faults) > 0 {
		in.setState(StateFault, reason+"; "+in.faultText())
		return
	}
	if in.effectivePriority() == priorityOwner {
		in.becomeMaster(reason + ", address owner")
		return
	}
	in.masterAdverInterval = in.cfg.interval
	in.setState(StateBackup, reason)
	in.armMasterDown(masterDown(in.effectivePriority(), in.masterAdverInterval))
}

// shutdown is the Shutdown event: a master resigns with priority 0 so the
// backup takes over after Skew_Time instead of Master_Down_Interval.
func (in *instance) shutdown(reason string) {
	in.mu.Lock()
	defer in.mu.Unlock()
	in.leave(StateInit, reason)
}

// leave goes from any state to Init or Fault (or, for giveup, Backup),
// resigning first if master.
func (in *instance) leave(to State, reason string) {
	in.stopTimers()
	if in.state == StateMaster {
		in.sendAdvert(priorityResign)
		in.releaseVIPs()
	}
	in.setState(to, reason)
}

func (in *instance) stopTimers() {
	in.timerGen++
	if in.timer != nil {
		in.timer.Stop()
		in.timer = nil
	}
	in.garpGen++
	if in.garpTimer != nil {
		in.garpTimer.Stop()
		in.garpTimer = nil
	}
	in.stopReannounce()
}

func (in *instance) stopReannounce() {
	in.reannounceGen++
	for _, t := range in.reannounceTimers {
		t.Stop()
	}
	in.reannounceTimers = nil
}

// arm replaces the instance's one protocol timer (Master_Down_Timer in
// backup, Adver_Timer in master). A callback that lost a race with a newer
// arm sees a stale generation and does nothing.
func (in *instance) arm(d time.Duration, fire func()) {
	in.timerGen++
	gen := in.timerGen
	if in.timer != nil {
		in.timer.Stop()
	}
	in.timer = in.clock.AfterFunc(d, func() {
		in.mu.Lock()
		defer in.mu.Unlock()
		if gen == in.timerGen {
			fire()
		}
	})
}

func (in *instance) armMasterDown(d time.Duration) {
	in.arm(d, in.masterDownExpired)
}

func (in *instance) armAdver() {
	in.arm(in.cfg.interval, func() {
		in.sendAdvert(in.effectivePriority())
		in.armAdver()
	})
}

func (in *instance) masterDownExpired() {
	if in.state != StateBackup {
		return
	}
	if in.override == overrideGiveup {
		// Given up: stay backup; look again later so a later Takeover or
		// reset finds the timer running.
		in.armMasterDown(masterDown(in.effectivePriority(), in.masterAdverInterval))
		return
	}
	in.becomeMaster("master down timer expired")
}

func (in *instance) becomeMaster(reason string) {
	in.preemptSince = time.Time{}
	in.seeMaster(in.cfg.source, in.effectivePriority())
	in.setState(StateMaster, reason)
	// The VIPs and their announcement go before the first advert: a live
	// master we preempt drops the VIPs as soon as it hears the advert, and
	// adding them can take milliseconds, in which clients that still
	// point at it would find no VIP anywhere.
	in.claimVIPs()
	in.sendAdvert(in.effectivePriority())
	in.armAdver()
}

func (in *instance) claimVIPs() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	t0 := time.Now()
	if err := in.addrs.AddVIPs(ctx, in.cfg.iface, in.cfg.vips); err != nil {
		in.log.Error("vrrp: adding VIPs", "instance", in.cfg.name, "vip", in.cfg.vips, "err", err)
	}
	t1 := time.Now()
	in.holdsVIPs = true
	in.garpGen++
	in.announceBurst(in.garpGen, in.cfg.garpRepeat, true)
	in.log.Debug("vrrp: VIPs claimed", "instance", in.cfg.name, "add", t1.Sub(t0), "announce", time.Since(t1))
}

func (in *instance) releaseVIPs() {
	if !in.holdsVIPs {
		return
	}
	in.holdsVIPs = false
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := in.addrs.RemoveVIPs(ctx, in.cfg.iface, in.cfg.vips); err != nil {
		in.log.Error("vrrp: removing VIPs", "instance", in.cfg.name, "vip", in.cfg.vips, "err", err)
	}
}

// announceBurst sends left announcements garpInterval apart. The second
// burst starts garpSecondBurst after the first (keepalived's
// garp_master_delay), then one every garpRefresh if set.
func (in *instance) announceBurst(gen uint64, left int, first bool) {
	if gen != in.garpGen || in.state != StateMaster {
		return
	}
	if left == in.cfg.garpRepeat {
		in.garpBurstStart = in.clock.Now()
	}
	for left > 0 {
		if err := in.ann.Announce(in.cfg.iface, in.cfg.vips); err != nil {
			in.log.Warn("vrrp: announcing VIPs", "instance", in.cfg.name, "err", err)
		}
		in.metrics.announced(in.cfg.name)
		left--
		if left > 0 && in.cfg.garpInterval > 0 {
			in.afterGARP(gen, in.cfg.garpInterval, func() { in.announceBurst(gen, left, first) })
			return
		}
	}
	next := in.cfg.garpRefresh
	if first {
		next = garpSecondBurst
	}
	if next > 0 {
		wait := in.garpBurstStart.Add(next).Sub(in.clock.Now())
		in.afterGARP(gen, max(wait, 0), func() { in.announceBurst(gen, in.cfg.garpRepeat, false) })
	}
}

func (in *instance) afterGARP(gen uint64, d time.Duration, f func()) {
	in.garpTimer = in.clock.AfterFunc(d, func() {
		in.mu.Lock()
		defer in.mu.Unlock()
		f()
	})
}

func (in *instance) sendAdvert(priority int) {
	if in.conn == nil {
		return // not open yet: the instance is in Fault until it is
	}
	ad := Advert{VRID: in.cfg.vrid, Priority: uint8(priority), Interval: in.cfg.interval, Addrs: in.cfg.vipAddrs()}
	dsts := in.cfg.peers
	if in.cfg.multicast() {
		dsts = []netip.Addr{in.cfg.group()}
	}
	for _, dst := range dsts {
		b, err := ad.Encode(in.cfg.source, dst, in.cfg.checksum)
		if err == nil {
			err = in.conn.Send(b, dst)
		}
		if err != nil {
			in.log.Warn("vrrp: sending advert", "instance", in.cfg.name, "dst", dst, "err", err)
			continue
		}
		in.metrics.sent(in.cfg.name)
	}
}

func (in *instance) setState(to State, reason string) {
	from := in.state
	if from == to {
		return
	}
	in.state = to
	in.since = in.clock.Now()
	if to != StateBackup {
		in.preemptSince = time.Time{}
	}
	prio := in.effectivePriority()
	if to == StateFault || in.override == overrideGiveup && to == StateBackup {
		prio = 0
	}
	in.log.Info("vrrp: state change", "instance", in.cfg.name, "from", from.String(), "to", to.String(), "priority", prio, "reason", reason)
	in.changed(StateChange{Instance: in.cfg.name, From: from, To: to, Priority: prio, Reason: reason})
}

// handle runs the receive checks of RFC 5798 section 7.1 that need the
// instance, then the state machine.
func (in *instance) handle(p Packet) {
	name := in.cfg.name
	if in.ownAddr != nil && in.ownAddr(p.Src) || p.Src == in.cfg.source {
		in.metrics.drop(name, "own_address")
		return
	}
	multicast := p.Dst.IsMulticast()
	if multicast && p.TTL != ttlRequired {
		in.metrics.drop(name, "ttl")
		return
	}
	ad, _, err := Decode(p.Payload, p.Src, p.Dst)
	if err != nil {
		in.metrics.drop(name, DropReason(err))
		return
	}
	if ad.VRID != in.cfg.vrid {
		return // another virtual router sharing the link: not an error
	}
	in.mu.Lock() // a reload may change the peers
	defer in.mu.Unlock()
	if !in.cfg.multicast() && !slices.Contains(in.cfg.peers, p.Src) {
		in.metrics.drop(name, "unknown_sender")
		return
	}
	if ad.Interval == 0 {
		in.metrics.drop(name, "interval")
		return
	}
	in.metrics.received(name)
	in.checkConsistency(p.Src, ad)
	in.receive(p.Src, ad)
}

// checkConsistency logs, once per distinct problem, an advert whose VIPs or
// interval differ from ours. RFC 5798 7.1 asks for a log, not a drop: the
// packet still elects a master, which avoids split brain on misconfiguration.
func (in *instance) checkConsistency(src netip.Addr, ad Advert) {
	var problem string
	theirs := slices.Clone(ad.Addrs)
	ours := in.cfg.vipAddrs()
	sort.Slice(theirs, func(i, j int) bool { return theirs[i].Less(theirs[j]) })
	sort.Slice(ours, func(i, j int) bool { return ours[i].Less(ours[j]) })
	switch {
	case !slices.Equal(theirs, ours):
		problem = fmt.Sprintf("peer %v advertises VIPs %v, we have %v", src, ad.Addrs, in.cfg.vipAddrs())
	case ad.Interval != in.cfg.interval:
		problem = fmt.Sprintf("peer %v advertises interval %v, we have %v (backups adopt the master's)", src, ad.Interval, in.cfg.interval)
	}
	if problem != "" && problem != in.loggedMismatch {
		in.log.Warn("vrrp: configuration mismatch", "instance", in.cfg.name, "problem", problem)
	}
	in.loggedMismatch = problem
}

// receive is the advert event of RFC 5798 sections 6.4.2 and 6.4.3.
func (in *instance) receive(src netip.Addr, ad Advert) {
	local := in.effectivePriority()
	prio := int(ad.Priority)
	switch in.state {
	case StateBackup:
		if prio == priorityResign {
			in.seeMaster(src, 0)
			in.armMasterDown(skew(local, in.masterAdverInterval))
			return
		}
		in.seeMaster(src, prio)
		in.masterAdverInterval = ad.Interval
		mdi := masterDown(local, in.masterAdverInterval)
		if !in.cfg.preempt || prio >= local || in.override == overrideGiveup {
			in.preemptSince = time.Time{}
			in.armMasterDown(mdi)
			return
		}
		if in.preemptHeld != nil && in.preemptHeld.Load() && in.override != overrideTakeover {
			// A live master is serving; wait for the hold to lift. The
			// preempt_delay runs meanwhile, from when we first could have
			// preempted.
			if in.preemptSince.IsZero() {
				in.preemptSince = in.clock.Now()
			}
			in.armMasterDown(mdi)
			return
		}
		// A lower-priority master and preemption on: let the timer run out,
		// but no later than preempt_delay after we first saw it.
		if in.cfg.preemptDelay > 0 {
			now := in.clock.Now()
			if in.preemptSince.IsZero() {
				in.preemptSince = now
			}
			if left := in.preemptSince.Add(in.cfg.preemptDelay).Sub(now); left > 0 {
				in.armMasterDown(min(mdi, left))
			}
		}
	case StateMaster:
		if prio == priorityResign {
			// Another router was master too, and has just stepped down
			// (see below) or stopped: the RFC's immediate advert, and our
			// VIPs announced again, since the link may have learnt its MAC.
			in.reannounce()
			in.armAdver()
			return
		}
		if prio < local || prio == local && src.Compare(in.cfg.source) < 0 {
			in.reannounce()
			return
		}
		// Stepping down, we resign with priority 0 (RFC 5798 sends it only
		// on shutdown). In a healed split brain the winner may never have
		// heard an advert of ours, as ours crossed or followed its own; the
		// resignation tells it that the link may still point at us.
		in.seeMaster(src, prio)
		in.masterAdverInterval = ad.Interval
		in.leave(StateBackup, fmt.Sprintf("higher priority master %v (%d)", src, prio))
		in.armMasterDown(masterDown(local, in.masterAdverInterval))
	}
}

// reannounce answers a second master that will step down (a healed
// partition), as keepalived's garp_lower_prio_delay and
// garp_lower_prio_repeat do. The advert goes at once so the peer yields
// now (one for each of its adverts: an answer, never an amplification). The link's ARP caches may point at the peer, so we announce the
// VIPs now and again reannounceDelay later: the peer's own announcements,
// sent while it thought it was master, can reach a client after our first
// burst and win its cache, which in DR mode (the loser has no VIPs and
// does not forward) loses the traffic until the entry expires. At most one
// cycle starts a second, so a peer that keeps sending cannot make us
// flood; the delayed burst belongs to its cycle and is not rate-limited,
// though a newer cycle replaces it with its own, later one.
func (in *instance) reannounce() {
	in.sendAdvert(in.effectivePriority())
	now := in.clock.Now()
	if !in.lastReannounce.IsZero() && now.Sub(in.lastReannounce) < time.Second {
		return
	}
	in.lastReannounce = now
	in.stopReannounce()
	gen := in.reannounceGen
	in.reannounceBurst(gen, in.cfg.garpRepeat)
	in.afterReannounce(gen, in.reannounceDelay(), func() { in.reannounceBurst(gen, in.cfg.garpRepeat) })
}

// reannounceDelay is how long after answering a second master the VIPs
// are announced again. The peer yields on our immediate advert or, if
// that is lost, on the next one an interval later; it may still be adding
// its VIPs (it handles our advert only after its first announcement), so
// a second interval is allowed for that: 2 × advert interval. A peer that
// does not cancel its burst on stepping down (we do) sends garp_repeat
// frames garp_interval apart, so we also wait out a whole burst.
func (in *instance) reannounceDelay() time.Duration {
	return max(2*in.cfg.interval, time.Duration(in.cfg.garpRepeat)*in.cfg.garpInterval)
}

// reannounceBurst sends left announcements garp_interval apart, like the
// master burst, unless a newer cycle or leaving master cancelled it.
func (in *instance) reannounceBurst(gen uint64, left int) {
	for ; left > 0; left-- {
		if err := in.ann.Announce(in.cfg.iface, in.cfg.vips); err != nil {
			in.log.Warn("vrrp: announcing VIPs", "instance", in.cfg.name, "err", err)
		}
		in.metrics.announced(in.cfg.name)
		if left > 1 && in.cfg.garpInterval > 0 {
			rest := left - 1
			in.afterReannounce(gen, in.cfg.garpInterval, func() { in.reannounceBurst(gen, rest) })
			return
		}
	}
}

func (in *instance) afterReannounce(gen uint64, d time.Duration, f func()) {
	t := in.clock.AfterFunc(d, func() {
		in.mu.Lock()
		defer in.mu.Unlock()
		if gen == in.reannounceGen && in.state == StateMaster {
			f()
		}
	})
	in.reannounceTimers = append(in.reannounceTimers, t)
}

func (in *instance) closeConn() {
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.conn != nil {
		in.conn.Close()
	}
}

// notifyCommand is the notify argv and timeout, which a reload may change.
func (in *instance) notifyCommand() ([]string, time.Duration) {
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.cfg.notify, in.cfg.notifyTimeout
}

func (in *instance) source() netip.Addr {
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.cfg.source
}

// seeMaster records who is master now, for Status and the metric.
func (in *instance) seeMaster(addr netip.Addr, priority int) {
	in.masterAddr, in.masterPriority = addr, priority
	in.metrics.master(in.cfg.name, priority)
}

// setFault records one fault reason (tracked interface or service) as on or
// off. The first fault moves the instance to Fault; clearing the last one
// restarts it from Initialize.
func (in *instance) setFault(reason string, on bool) {
	in.mu.Lock()
	defer in.mu.Unlock()
	if on == in.faults[reason] {
		return
	}
	if on {
		in.faults[reason] = true
		if in.state != StateFault && in.state != StateInit {
			in.leave(StateFault, reason)
		}
		return
	}
	delete(in.faults, reason)
	if len(in.faults) == 0 && in.state == StateFault {
		in.stopTimers()
		in.startLocked(reason + " cleared")
	}
}

func (in *instance) faultText() string {
	var rs []string
	for r := range in.faults {
		rs = append(rs, r)
	}
	sort.Strings(rs)
	return fmt.Sprint(rs)
}

// takeover makes this node master now and keeps it there (priority 254)
// until giveup or reset: the peer master hears a higher priority at once
// and steps down, so a planned handover waits for no timer.
func (in *instance) takeover() {
	in.mu.Lock()
	defer in.mu.Unlock()
	in.override = overrideTakeover
	switch in.state {
	case StateBackup:
		in.becomeMaster("operator takeover")
	case StateMaster:
		in.sendAdvert(in.effectivePriority())
		in.armAdver()
	}
}

// giveup resigns mastership with a priority-0 advert, so the peer takes
// over after its Skew_Time, and stays backup until takeover or reset.
func (in *instance) giveup() {
	in.mu.Lock()
	defer in.mu.Unlock()
	in.override = overrideGiveup
	if in.state == StateMaster {
		in.leave(StateBackup, "operator giveup")
		in.masterAdverInterval = in.cfg.interval
		in.armMasterDown(masterDown(in.effectivePriority(), in.masterAdverInterval))
	}
}

// reset drops an operator override; the protocol decides from here on.
func (in *instance) reset() {
	in.mu.Lock()
	defer in.mu.Unlock()
	was := in.override
	in.override = overrideNone
	if was == overrideTakeover && in.state == StateMaster {
		in.sendAdvert(in.effectivePriority()) // tell the peer our real priority now
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
}

func (in *instance) status() InstanceStatus {
	in.mu.Lock()
	defer in.mu.Unlock()
	st := InstanceStatus{
		Name: in.cfg.name, VRID: int(in.cfg.vrid), Interface: in.cfg.iface,
		State: in.state.String(), Since: in.since,
		Priority: in.cfg.priority, EffectivePriority: in.effectivePriority(),
		Override: in.override.String(), PreemptHeld: in.preemptHeld != nil && in.preemptHeld.Load(),
		MasterPriority: in.masterPriority,
		MasterInterval: in.masterAdverInterval, VIPs: in.cfg.vips,
	}
	if in.masterAddr.IsValid() {
		st.Master = in.masterAddr.String()
	}
	for r := range in.faults {
		st.Faults = append(st.Faults, r)
	}
	sort.Strings(st.Faults)
	return st
}
