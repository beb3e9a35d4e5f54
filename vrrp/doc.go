// Package vrrp implements VRRPv3 (RFC 5798 as amended by RFC 9568) for a pair
// of lvsd directors, and VRRPv2 (RFC 3768) per instance to pair with a
// keepalived in its default mode. It is built in layers:
//
//   - packet.go: Encode and Decode, pure functions. IPv4 checksums are sent
//     in the form the instance's checksum setting names ("rfc5798", with the
//     pseudo-header, what keepalived 2.2 sends and accepts; or "rfc9568",
//     message only) and accepted in either form. packet_v2.go converts
//     VRRPv2 (RFC 3768, version = 2: keepalived's default) adverts: whole
//     seconds, the message-only checksum, the 8 bytes of authentication
//     data. The state machine never sees the version: the settings give v2
//     its checksum form and RFC 3768's Skew_Time in seconds (skewBase), and
//     the gate drops adverts of the other version, auth type or password
//     (drop reasons version, auth_type, password).
//   - Transport and Conn: one raw IP socket (protocol 112) per instance,
//     bound to the interface, TTL/hop limit 255, multicast loop off
//     (RawTransport). Received packets are dropped, and counted in
//     lvsd_vrrp_drops_total{vrrp_instance,reason}, for: ttl (multicast only),
//     version, type, checksum, truncated, own_address, unknown_sender
//     (unicast mode: not a unicast peer), interval (zero). Adverts of other
//     VRIDs on the link are ignored without counting. VIP or interval
//     differences from ours are logged once per change, not dropped, as RFC
//     5798 7.1 asks: dropping them would turn a misconfiguration into a
//     split brain.
//   - auth.go: keepalived 2.4's auth_hmac trailer (HMAC-SHA256 with a
//     sequence number), pure sign and verify functions; auth_replay.go the
//     per-sender anti-replay state; auth_sign.go signs on the timing path
//     without allocating; auth_gate.go checks min_ttl and [vrrp.auth]
//     between decoding and the executor, so a rejected advert (missing,
//     malformed, unknown_key, bad_hmac, stale, replay) never reaches the
//     machine, and a flood of them costs the timers no lock time.
//   - machine.go, machine_announce.go, machine_events.go: the RFC state
//     machine, pure: Machine.Handle(now, Event) returns Actions; it does no
//     I/O, reads no clock, starts no goroutine, takes no lock, and its
//     timers are deadlines (Next). Skew_Time and Master_Down_Interval are
//     computed in nanoseconds; a backup adopts the master's advertised
//     interval; on a priority tie the higher primary address wins and a
//     backup never takes over; a master answers a priority-0 advert at
//     once; stopping sends priority 0 so the peer takes over after
//     Skew_Time.
//   - executor.go, instance.go, worker.go: the executor serializes the
//     events of every machine under one lock, held only for the machine
//     and for sending adverts (pre-encoded, patched in place, no
//     allocation). Address changes and announcements run in order on a
//     worker per instance, outside that lock; notify runs from a queue per
//     instance. A stuck netlink call therefore delays no advert and no
//     timer of any instance.
//   - timer_linux.go: with the wall clock, one goroutine locked to its OS
//     thread wakes from a timerfd (not the Go timer heap), runs the timers
//     and sends the adverts; director.vrrp_rt_priority puts that thread
//     under SCHED_RR. Before a backup's Master_Down_Timer fires, that
//     thread reads the adverts already queued in the socket, so a starved
//     receiving goroutine never turns into a false takeover.
//   - Manager: runs every instance of a director (one per VRID and family on
//     an interface; a node can be master of some and backup of others). It
//     receives complete values: config.Parse fills every default and
//     checks every rule.
//
// Semantics beyond the RFC, chosen to match what keepalived users expect:
//
//   - Fault state. An instance whose interface or a track_interfaces link is
//     down, or which lists a service in track_services that has no healthy
//     real server (Manager.SetServiceDown), is in Fault, like keepalived's
//     track with weight 0: a master resigns with priority 0 and removes its
//     VIPs, no adverts are sent, and it will not become master. When the last
//     fault clears it restarts as backup and wins back mastership by the
//     usual rules (preempt, priority).
//   - Weighted tracking (machine_track.go, track_runner.go): tracked scripts,
//     interfaces and services with a weight move the effective priority,
//     which the adverts carry and the RFC timers use; weight 0 is Fault.
//   - Sync groups (machine_sync.go, syncgroup.go): members share their
//     faults and tracked weights, become master together once every one
//     wants to, and step down together.
//   - Resources (machine_resources.go, resource_runner.go): commands started
//     in order on becoming master, with the VIPs added after them and
//     removed before they stop, monitored, restarted in place, and stopped
//     before a master resigns; a failed start or monitor resigns and holds
//     off; a failed stop is exposed and kept in Fault (lvsd cannot fence).
//   - preempt_delay: a backup with preemption on that hears a lower-priority
//     master takes over preempt_delay after it first heard it (without a
//     delay, after Master_Down_Interval, as the RFC has it). If that master
//     dies first, the normal timer applies.
//   - Takeover (lvsd takeover): the instance advertises priority 254 and
//     becomes master at once; the old master steps down on the first advert,
//     so a planned handover waits for no timeout. It holds until Giveup or
//     Reset; preemption by the peer does not undo it.
//   - Giveup (lvsd giveup): a master resigns with priority 0 (the peer takes
//     over after its Skew_Time) and the instance stays backup, even if the
//     peer disappears, until Takeover or Reset.
//   - Becoming master: AddVIPs on the injected AddressManager (lvsd's
//     director does netlink), then garp_repeat gratuitous ARPs / unsolicited
//     NAs (R=0 S=0 O=1) garp_interval apart, the same again 5 s later, then
//     every garp_refresh if set. Taking over from silence (Master_Down
//     expired, or the master resigned), nobody holds the VIPs: the first
//     advert goes at once and the VIPs follow. Preempting a live master
//     (or an operator takeover), the first advert waits until the VIPs are
//     added and announced, at most 5 s: the old master drops them when it
//     hears that advert, and keeps serving until then. A master that hears a second master about
//     to yield (a healed partition) answers with an advert at once and
//     announces again, now and after max(2 × interval, garp_repeat ×
//     garp_interval), at most one such cycle a second, since the link's ARP
//     caches may point at the loser (keepalived's garp_lower_prio_delay and
//     garp_lower_prio_repeat). Leaving master: RemoveVIPs, and every pending
//     announcement is cancelled. At startup the VIPs are removed, in case a
//     killed predecessor left them.
//   - Reload (Manager.Update, lvsd's SIGHUP): unchanged instances are not
//     touched; priority, interval, preempt, VIPs, peers, checksum, garp,
//     notify and track lists change in place with no transition (a master
//     adds, announces and removes only the VIPs that changed); a new
//     interface, VRID, family, source_address or multicast/unicast restarts
//     that instance alone (priority 0, then backup); removed instances
//     resign and their metric series go; added ones start as backup.
//   - notify: the argv runs on every transition with instance, state and
//     priority appended, without a shell, in order per instance, killed
//     (with its process group) after notify_timeout.
//
// Accept mode is on by construction: the VIPs are ordinary local addresses
// while master, which IPVS needs to see the traffic.
package vrrp
