package vrrp

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/lvsd/lvsd/config"
	"github.com/prometheus/client_golang/prometheus"
)

// A reload changes the VRRP instances of a running Manager the way
// keepalived's SIGHUP does, but without a transition where none is needed:
//
//   - an unchanged instance is not touched (no advert, no announcement);
//   - a change that the same socket can carry is applied in place: a new
//     priority goes out with the next advert (a master that drops below its
//     peer is preempted by the peer, as the RFC has it), a master adds and
//     announces new VIPs and removes dropped ones, a backup only records
//     them; faults are re-evaluated against the new track lists;
//   - a change of interface, VRID, address family, source_address, VRRP
//     version or multicast/unicast needs a new socket: that instance alone
//     resigns (priority 0 if master) and starts again as backup;
//   - a removed instance resigns, releases its VIPs and stops, and its
//     metric series go; an added one starts as backup.

// lifecycle is what a running Manager keeps per instance to start and stop
// it on its own.
type lifecycle struct {
	// configured is the normalized config as given: Update compares it,
	// since the running cfg has the source address that open found.
	configured  settings
	launched    bool
	after       chan struct{} // event loop of the replaced instance, if any
	eventsDone  chan struct{} // closed when this instance's event loop ends
	stopOpening context.CancelFunc
	openers     sync.WaitGroup // the retry goroutine while the socket cannot open
	receivers   sync.WaitGroup // the receive loop
}

// linkWatch is one LinkWatcher.Watch call: Update starts one for the
// interfaces no earlier call covers, and stops it once none is tracked.
type linkWatch struct {
	ifaces  []string
	cancel  context.CancelFunc
	stopped bool // under Manager.mu: its late reports are ignored
}

func (m *Manager) newInstance(s settings) *instance {
	in := &instance{
		name: s.name, iface: s.iface, ex: m.ex, addrs: m.opts.Addresses, ann: m.opts.Announcer,
		log: m.log, met: m.metrics.forInstance(s.name), ownAddr: m.opts.OwnAddress,
		m: newMachine(s, m.preemptHeld.Load()), scripts: map[string]*scriptRunner{},
	}
	in.life.configured = s
	in.life.eventsDone = make(chan struct{})
	in.changed = m.changeHook(in)
	return in
}

// Update applies a reloaded [[vrrp]] section: Prepare, then apply. On an
// error nothing has changed. Safe to call while Run runs.
func (m *Manager) Update(cfgs []config.VRRP) error {
	apply, err := m.Prepare(cfgs)
	if err != nil {
		return err
	}
	apply()
	return nil
}

// Prepare checks cfgs as NewManager does and readies what applying them
// needs that can fail (watching links no instance tracked before), without
// changing any instance. The returned apply changes the instances and
// cannot fail; a caller that does not call it leaves them as they were.
// lvsd's reload prepares VRRP, then updates the director, then applies, so
// a rejected reload changes neither.
func (m *Manager) Prepare(cfgs []config.VRRP) (apply func(), err error) {
	next, err := settingsOfAll(cfgs)
	if err != nil {
		return nil, err
	}
	m.ops.Lock()
	defer m.ops.Unlock()
	if m.running {
		if err := m.watchLinks(interfacesOf(next)); err != nil {
			return nil, fmt.Errorf("vrrp: watching links: %w", err)
		}
	}
	return func() { m.apply(next) }, nil
}

// apply moves the instances to next. VIPs are released everywhere before
// any are added, so a VIP moving between instances is never removed after
// its new owner added it.
func (m *Manager) apply(next []settings) {
	m.ops.Lock()
	defer m.ops.Unlock()
	if m.running {
		// Normally Prepare did this; a concurrent update may have pruned.
		if err := m.watchLinks(interfacesOf(next)); err != nil {
			m.log.Error("vrrp: watching links", "err", err)
		}
	}

	m.mu.Lock()
	wanted := map[string]settings{}
	for _, s := range next {
		wanted[s.name] = s
	}
	var retire []*instance
	var removed []string
	inPlace := map[string]settings{}
	for _, in := range m.instances {
		s, keep := wanted[in.name]
		switch {
		case !keep:
			retire = append(retire, in)
			removed = append(removed, in.name)
			m.log.Info("vrrp: instance removed by reload", "instance", in.name)
		case restartReason(in.life.configured, s) != "":
			retire = append(retire, in)
			m.log.Info("vrrp: instance restarts for reload", "instance", in.name, "reason", restartReason(in.life.configured, s))
		case len(changedSettings(in.life.configured, s)) > 0:
			inPlace[in.name] = s
		}
	}
	old := m.byName
	// Retiring instances leave the list first, so link and service
	// events no longer reach them.
	m.instances = slices.DeleteFunc(slices.Clone(m.instances), func(in *instance) bool { return slices.Contains(retire, in) })
	m.mu.Unlock()

	for _, in := range retire {
		reason := "removed by reload"
		if !slices.Contains(removed, in.name) {
			reason = "restart for reload: " + restartReason(in.life.configured, wanted[in.name])
		}
		m.retire(in, reason)
	}
	for _, name := range removed {
		m.metrics.forget(name)
	}

	m.mu.Lock()
	// Dropped VIPs are off every interface before any instance adds one.
	for name, s := range inPlace {
		old[name].dropVIPs(s.vips)
	}
	for name := range inPlace {
		old[name].flush()
	}
	var list, launch []*instance
	byName := map[string]*instance{}
	for _, s := range next {
		in := old[s.name]
		switch {
		case in != nil && !slices.Contains(retire, in):
			if _, ok := inPlace[s.name]; ok {
				m.log.Info("vrrp: instance updated in place", "instance", s.name, "changed", strings.Join(changedSettings(in.life.configured, s), ","))
				in.reconfigure(s)
				m.refreshFaultsLocked(in)
				if m.running && in.life.launched {
					m.startScripts(in)
				}
				in.flush()
			}
		default:
			fresh := m.newInstance(s)
			switch {
			case in == nil:
				m.metrics.transition(s.name, StateInit)
			case in.life.launched:
				fresh.life.after = in.life.eventsDone // notify stays in order across the restart
			}
			in = fresh
			m.refreshFaultsLocked(in)
			launch = append(launch, in)
		}
		list = append(list, in)
		byName[s.name] = in
	}
	m.instances, m.byName = list, byName
	m.mu.Unlock()

	if m.running {
		for _, in := range launch {
			m.launch(in)
		}
		m.ex.resync() // sync groups as the reload left them
		m.pruneWatches()
	}
}

// retire stops one instance of a running Manager: a master resigns with
// priority 0 and releases its VIPs. Its notify calls still run, in order.
func (m *Manager) retire(in *instance, reason string) {
	if !m.running || !in.life.launched {
		return // never started, or Run already stopped it
	}
	in.life.stopOpening()
	in.life.openers.Wait()
	in.shutdownWait(reason, in.stopBound()+time.Second) // its resources stop first
	in.closeConn()
	in.stopScripts()
	in.life.receivers.Wait() // so no packet counts into a forgotten series
	in.work.close()          // its VIPs are gone before another instance adds them
	in.ops.close()
	in.events.close()
	m.ex.unregister(in)
}

// restartReason says why moving from old to next needs a new socket, or "".
func restartReason(old, next settings) string {
	switch {
	case old.iface != next.iface:
		return fmt.Sprintf("interface %s -> %s", old.iface, next.iface)
	case old.vrid != next.vrid:
		return fmt.Sprintf("vrid %d -> %d", old.vrid, next.vrid)
	case old.vips[0].Addr().Is4() != next.vips[0].Addr().Is4():
		return "address family changed"
	case old.source != next.source:
		return fmt.Sprintf("source_address %v -> %v", old.source, next.source)
	case old.version != next.version:
		// The peer drops adverts of the other version: resigning first
		// says so, where a silent switch would look like a dead master.
		return fmt.Sprintf("version %d -> %d", old.version, next.version)
	case old.multicast() != next.multicast():
		if next.multicast() {
			return "unicast -> multicast"
		}
		return "multicast -> unicast"
	}
	return ""
}

// changedSettings names the settings that differ and apply in place.
func changedSettings(old, next settings) []string {
	var out []string
	add := func(changed bool, name string) {
		if changed {
			out = append(out, name)
		}
	}
	add(old.priority != next.priority, "priority")
	add(old.interval != next.interval, "advert_interval")
	add(old.preempt != next.preempt, "preempt")
	add(old.preemptDelay != next.preemptDelay, "preempt_delay")
	add(!slices.Equal(old.vips, next.vips), "vips")
	add(!slices.Equal(old.peers, next.peers), "unicast_peers")
	add(old.checksum != next.checksum, "checksum")
	add(garpChanged(old, next), "garp")
	add(!slices.Equal(old.notify, next.notify), "notify")
	add(old.notifyTimeout != next.notifyTimeout, "notify_timeout")
	add(!slices.Equal(old.trackServices, next.trackServices), "track_services")
	add(!slices.Equal(old.trackIfaces, next.trackIfaces), "track_interfaces")
	add(old.unicastTTL != next.unicastTTL, "unicast_ttl")
	add(old.minTTL != next.minTTL, "min_ttl")
	add(!old.auth.equal(&next.auth), "auth")
	add(old.v2Auth != next.v2Auth, "auth_pass")
	return append(out, haChanged(old.ha, next.ha)...)
}

func garpChanged(old, next settings) bool {
	return old.garpRepeat != next.garpRepeat || old.garpInterval != next.garpInterval || old.garpRefresh != next.garpRefresh
}

// refreshFaultsLocked makes the instance's link and service faults match
// its track lists and what the Manager knows (m.mu held). New faults are
// set before stale ones clear, so swapping one for another makes no
// transition.
func (m *Manager) refreshFaultsLocked(in *instance) {
	want := map[string]bool{}
	for _, ifc := range append([]string{in.iface}, in.life.configured.trackIfaces...) {
		if up, known := m.linkUp[ifc]; known && !up {
			want[linkFault(ifc)] = true
		}
	}
	for _, svc := range in.life.configured.trackServices {
		if m.serviceDown[svc] {
			want[serviceFault(svc)] = true
		}
	}
	// Weighted ones move the priority instead (machine_track.go).
	for _, w := range in.life.configured.ha.weights {
		switch w.kind {
		case "interface":
			if up, known := m.linkUp[w.name]; known {
				in.postTrack(w.kind, w.name, up)
			}
		case "service":
			if down, known := m.serviceDown[w.name]; known {
				in.postTrack(w.kind, w.name, !down)
			}
		}
	}
	for r := range want {
		in.setFault(r, true)
	}
	for _, r := range in.faultList() {
		if trackFault(r) && !want[r] {
			in.setFault(r, false)
		}
	}
}

func linkFault(iface string) string  { return "interface " + iface + " down" }
func serviceFault(svc string) string { return "service " + svc + " down" }
func trackFault(reason string) bool {
	return (strings.HasPrefix(reason, "interface ") || strings.HasPrefix(reason, "service ")) && strings.HasSuffix(reason, " down")
}

// watchLinks starts one watch for the interfaces in ifaces that no watch
// covers yet (m.ops held, m.mu not: the watcher reports at once).
func (m *Manager) watchLinks(ifaces []string) error {
	m.mu.Lock()
	var fresh []string
	for _, ifc := range ifaces {
		if !slices.ContainsFunc(m.watches, func(w *linkWatch) bool { return slices.Contains(w.ifaces, ifc) }) {
			fresh = append(fresh, ifc)
		}
	}
	m.mu.Unlock()
	if len(fresh) == 0 {
		return nil
	}
	ctx, cancel := context.WithCancel(m.runCtx)
	w := &linkWatch{ifaces: fresh, cancel: cancel}
	report := func(iface string, up bool) {
		m.mu.Lock()
		defer m.mu.Unlock()
		if !w.stopped {
			m.linkChangedLocked(iface, up)
		}
	}
	if err := m.opts.Links.Watch(ctx, fresh, report); err != nil {
		cancel()
		return err
	}
	m.mu.Lock()
	m.watches = append(m.watches, w)
	m.mu.Unlock()
	return nil
}

// pruneWatches stops watches none of whose interfaces is tracked any more,
// and forgets those links' states, so a later watch reports them afresh.
func (m *Manager) pruneWatches() {
	m.mu.Lock()
	defer m.mu.Unlock()
	tracked := m.trackedInterfacesLocked()
	m.watches = slices.DeleteFunc(m.watches, func(w *linkWatch) bool {
		if slices.ContainsFunc(w.ifaces, func(ifc string) bool { return slices.Contains(tracked, ifc) }) {
			return false
		}
		w.cancel()
		w.stopped = true
		for _, ifc := range w.ifaces {
			delete(m.linkUp, ifc)
		}
		return true
	})
}

func interfacesOf(ss []settings) []string {
	var out []string
	for _, s := range ss {
		for _, ifc := range s.watchedInterfaces() {
			if !slices.Contains(out, ifc) {
				out = append(out, ifc)
			}
		}
	}
	return out
}

// forget deletes every series of a removed instance.
func (m *metrics) forget(instance string) {
	if m == nil {
		return
	}
	l := prometheus.Labels{"vrrp_instance": instance}
	m.state.DeletePartialMatch(l)
	m.transitions.DeletePartialMatch(l)
	m.sentTotal.DeletePartialMatch(l)
	m.receivedTotal.DeletePartialMatch(l)
	m.drops.DeletePartialMatch(l)
	m.masterPriority.DeletePartialMatch(l)
	m.announcements.DeletePartialMatch(l)
	m.authAccepted.DeletePartialMatch(l)
}
