package director

// SyncManager runs the kernel's IPVS connection-sync daemons in step with
// VRRP, as keepalived's `lvs_sync_daemon IF INSTANCE` does, but without the
// three ways keepalived's switching loses connections across a failover
// (see the kernel's net/netfilter/ipvs/ip_vs_sync.c):
//
//  1. The master queues sync records in a message of sync_maxlen bytes
//     (1472 by default: 40 IPv4 records of 36 bytes) and sends a partly
//     filled message only once it is 2 s old (IPVS_SYNC_FLUSH_TIME, checked
//     every second). A master killed by SIGKILL still has its kernel thread,
//     which sends that tail up to 3 s later; but keepalived stops the new
//     master's backup daemon at takeover, so the tail is never read and the
//     connections in it are reset (40 of 50 survive in the field, 37-39 in
//     bench/connsync at 100 ms adverts; lvsd keeps 50). lvsd keeps
//     the backup daemon running in every state, and by default sizes master
//     messages to one record, so a record leaves as soon as the next one is
//     queued instead of waiting for the flush timer.
//  2. Stopping the master daemon frees its unsent tail. lvsd stops it only
//     Drain (4 s) after the instance leaves master, so a give-up or a
//     preemption does not drop the last records the new master needs.
//  3. With the default sync_threshold "3 50", a connection is synced at its
//     3rd inbound packet and then every 50th: a connection idle after its
//     handshake is never synced, and a quiet long-lived one (an LDAP pool)
//     is not refreshed, so the backup's copy expires (15 min) while the
//     master's lives on. The sysctls below sync at ESTABLISHED and refresh
//     every active connection every 10 s.

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/lvsd/lvsd/config"
)

// DefaultSyncDrain is how long the master daemon outlives mastership: the
// kernel's flush time (IPVS_SYNC_FLUSH_TIME, 2 s) plus its check period
// (IPVS_SYNC_CHECK_PERIOD, 1 s) plus a second of margin.
const DefaultSyncDrain = 4 * time.Second

// oneRecordMaxLen is a master sync_maxlen holding one IPv4 record: the
// 8-byte message header plus a 36-byte struct ip_vs_sync_v4. Larger records
// (IPv6, sequence options) get a message of their own size anyway.
const oneRecordMaxLen = 8 + 36

// SyncSysctls are the net.ipv4.vs settings connection sync depends on.
//   - sync_version 1: version 0 carries no timeout, no IPv6 and no fwmark.
//   - sync_threshold "3 0" with sync_refresh_period 10: a period of 0 hands
//     the decision to the refresh timer, so a TCP connection is synced when
//     it reaches ESTABLISHED (UDP at its first packet), on every state
//     change, and again after 10 s of activity (the kernel caps the gap at
//     half the timeout, never less than 10 s). The backup's copy therefore
//     never expires under a live connection, and a backup that (re)joins
//     learns every active connection within 10 s. Half-open (SYN_RECV)
//     connections are never synced.
//   - sync_retries 1: one resend 1.25 s (refresh/8) after each sync, so one
//     lost datagram costs a second, not a refresh period.
//   - sync_persist_mode 0: mode 1 syncs only persistence templates, and the
//     new master then resets every established TCP connection under them.
//   - backup_only 0: it disables balancing while a backup daemon runs, and
//     lvsd keeps one running on the master too. It only matters when a
//     director is also a real server of its own pool, which lvsd does not
//     support.
var SyncSysctls = []Sysctl{
	{"net/ipv4/vs/sync_version", "1", "sync protocol with timeouts and IPv6"},
	{"net/ipv4/vs/sync_threshold", "3\t0", "sync at ESTABLISHED, then by the refresh period"},
	{"net/ipv4/vs/sync_refresh_period", "10", "resync active connections every 10 s"},
	{"net/ipv4/vs/sync_retries", "1", "resend each sync once"},
	{"net/ipv4/vs/sync_persist_mode", "0", "sync connections, not only templates"},
	{"net/ipv4/vs/backup_only", "0", "keep balancing while the backup daemon runs"},
}

// writeSyncSysctl sets one setting under /proc/sys unless already set.
// Whitespace is normalised: the kernel prints "3\t0" for sync_threshold.
func writeSyncSysctl(s Sysctl) error {
	p := filepath.Join("/proc/sys", s.Path)
	if cur, err := os.ReadFile(p); err == nil && strings.Join(strings.Fields(string(cur)), " ") == strings.Join(strings.Fields(s.Value), " ") {
		return nil
	}
	if err := os.WriteFile(p, []byte(s.Value), 0o644); err != nil {
		return fmt.Errorf("set %s=%q (%s): %w", strings.ReplaceAll(s.Path, "/", "."), s.Value, s.Why, err)
	}
	return nil
}

// SyncOptions tunes a SyncManager; the zero value talks to the kernel.
type SyncOptions struct {
	Control SyncDaemonControl  // default: DialKernelSync(0)
	Logger  *slog.Logger       // default: slog.Default()
	Sysctl  func(Sysctl) error // default: write /proc/sys
	Drain   time.Duration      // default DefaultSyncDrain
	Timeout time.Duration      // per kernel request; default 5 s
	OnError func(error)        // every failed kernel request; default: log only
}

// SyncManager keeps the kernel's sync daemons as the VRRP state of the
// instance with [vrrp.sync] asks: the backup daemon always, the master
// daemon while the instance is master (and Drain longer). Its methods are
// safe for concurrent use and never block on the kernel: a worker applies
// the latest wanted state.
type SyncManager struct {
	ctl     SyncDaemonControl
	closer  func() error
	log     *slog.Logger
	opts    SyncOptions
	kick    chan struct{}
	done    chan struct{}
	stopped chan struct{}

	mu         sync.Mutex
	instance   string      // VRRP instance driving sync; "" = none
	want       *SyncDaemon // settings for both daemons (State ignored)
	master     bool        // instance is master
	leftMaster time.Time   // when it last stopped being master
	closing    bool
	managed    bool // lvsd has wanted daemons, so it owns them
}

// NewSyncManager applies SyncSysctls and starts the backup daemon for the
// instance of cfg that has [vrrp.sync]. Daemons left by an earlier run or
// another tool are replaced when their settings differ.
func NewSyncManager(cfg *config.Config, opts SyncOptions) (*SyncManager, error) {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Sysctl == nil {
		opts.Sysctl = writeSyncSysctl
	}
	if opts.Drain <= 0 {
		opts.Drain = DefaultSyncDrain
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 5 * time.Second
	}
	m := &SyncManager{log: opts.Logger, opts: opts, kick: make(chan struct{}, 1),
		done: make(chan struct{}), stopped: make(chan struct{})}
	m.instance, m.want = syncWanted(cfg)
	m.ctl = opts.Control
	if m.want != nil && m.ctl == nil {
		// Dialing first: resolving the IPVS family can load ip_vs, and
		// the sysctls below only exist once it is loaded.
		k, err := DialKernelSync(0)
		if err != nil {
			return nil, err
		}
		m.ctl, m.closer = k, k.Close
	}
	if m.want != nil {
		var errs []error
		for _, s := range SyncSysctls {
			if err := opts.Sysctl(s); err != nil {
				errs = append(errs, err)
			}
		}
		if err := errors.Join(errs...); err != nil {
			if m.closer != nil {
				m.closer()
			}
			return nil, fmt.Errorf("connection sync: %w", err)
		}
	}
	// The first reconcile runs here so a bad interface fails the start.
	if err := m.reconcile(); err != nil {
		if m.closer != nil {
			m.closer()
		}
		return nil, err
	}
	go m.run()
	return m, nil
}

// syncWanted picks the instance with [vrrp.sync] (config allows one) and
// the daemon settings it asks for.
func syncWanted(cfg *config.Config) (string, *SyncDaemon) {
	if cfg == nil {
		return "", nil
	}
	for i := range cfg.VRRP {
		v := &cfg.VRRP[i]
		if v.Sync == nil {
			continue
		}
		s := v.Sync
		d := SyncDaemon{Interface: s.Interface, MaxLen: uint16(s.MaxLen),
			Group: s.Group.IP, Port: uint16(s.Port), TTL: uint8(s.TTL)}
		if d.Interface == "" {
			d.Interface = v.Interface
		}
		if d.Interface == "" {
			d.Interface = cfg.Director.Interface
		}
		d.SyncID = uint8(s.SyncID)
		if s.SyncID == 0 {
			d.SyncID = uint8(v.VRID)
		}
		return v.Name, &d
	}
	return "", nil
}

// daemonFor gives the kernel settings of one daemon. The master's default
// maxlen is one record (see the package comment); the backup's is the
// kernel's, from the MTU, since it is the receive buffer and must hold the
// peer's largest message, whoever the peer is.
func daemonFor(want SyncDaemon, state SyncState) SyncDaemon {
	d := want
	d.State = state
	if state == SyncMaster && d.MaxLen == 0 {
		d.MaxLen = oneRecordMaxLen
	}
	return d
}

// OnState is the VRRP state-change hook; other instances are ignored.
func (m *SyncManager) OnState(instance string, master bool) {
	m.mu.Lock()
	if instance != m.instance || m.closing {
		m.mu.Unlock()
		return
	}
	if m.master && !master {
		m.leftMaster = time.Now()
	}
	m.master = master
	m.mu.Unlock()
	m.log.Info("connection sync follows vrrp", "instance", instance, "master", master)
	m.poke()
}

// Update takes a reloaded config: daemons whose settings changed are
// restarted, and removing [vrrp.sync] stops both.
func (m *SyncManager) Update(cfg *config.Config) {
	inst, want := syncWanted(cfg)
	m.mu.Lock()
	if inst != m.instance {
		m.master = false
		m.leftMaster = time.Time{}
	}
	m.instance, m.want = inst, want
	m.mu.Unlock()
	if want != nil {
		for _, s := range SyncSysctls {
			if err := m.opts.Sysctl(s); err != nil {
				m.report(err)
			}
		}
	}
	m.poke()
}

func (m *SyncManager) poke() {
	select {
	case m.kick <- struct{}{}:
	default:
	}
}

func (m *SyncManager) run() {
	defer close(m.stopped)
	var drain *time.Timer
	var drainC <-chan time.Time
	for {
		select {
		case <-m.done:
			if drain != nil {
				drain.Stop()
			}
			return
		case <-m.kick:
		case <-drainC:
			drainC = nil
		}
		if err := m.reconcile(); err != nil {
			m.report(err)
		}
		// A master daemon kept for draining needs another look later.
		if wait := m.drainLeft(); wait > 0 {
			if drain != nil {
				drain.Stop()
			}
			drain = time.NewTimer(wait)
			drainC = drain.C
		}
	}
}

func (m *SyncManager) report(err error) {
	m.mu.Lock()
	inst := m.instance
	m.mu.Unlock()
	m.log.Error("connection sync", "instance", inst, "err", err)
	if m.opts.OnError != nil {
		m.opts.OnError(err)
	}
}

// drainLeft is how long a no-longer-wanted master daemon still runs.
func (m *SyncManager) drainLeft() time.Duration {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.master || m.want == nil || m.leftMaster.IsZero() {
		return 0
	}
	return time.Until(m.leftMaster.Add(m.opts.Drain))
}

// reconcile makes the kernel's daemons match the wanted state: the
// backup daemon unless closing, the master daemon while master or draining.
func (m *SyncManager) reconcile() error {
	m.mu.Lock()
	want, closing, inst := m.want, m.closing, m.instance
	masterOn := m.master || (!m.leftMaster.IsZero() && time.Since(m.leftMaster) < m.opts.Drain)
	if want != nil {
		m.managed = true
	}
	managed := m.managed
	m.mu.Unlock()
	// Without [vrrp.sync] daemons started by someone else are theirs.
	if !managed {
		return nil
	}
	if m.control() == nil {
		k, err := DialKernelSync(0)
		if err != nil {
			return err
		}
		m.mu.Lock()
		m.ctl, m.closer = k, k.Close
		m.mu.Unlock()
	}

	ctx, cancel := context.WithTimeout(context.Background(), m.opts.Timeout)
	defer cancel()
	have, err := m.ctl.Daemons(ctx)
	if err != nil {
		return err
	}
	running := map[SyncState]*SyncDaemon{}
	for i := range have {
		running[have[i].State] = &have[i]
	}
	var errs []error
	for _, state := range []SyncState{SyncBackup, SyncMaster} {
		var target *SyncDaemon
		if want != nil && ((state == SyncBackup && !closing) || (state == SyncMaster && masterOn)) {
			d := daemonFor(*want, state)
			target = &d
		}
		if err := m.converge(ctx, inst, state, running[state], target); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// converge stops or (re)starts one daemon. A running daemon counts as
// right when the settings lvsd chose match; fields the kernel fills in
// (maxlen, group, port, ttl left at 0) are compared only when set.
func (m *SyncManager) converge(ctx context.Context, inst string, state SyncState, have, want *SyncDaemon) error {
	if have != nil && want != nil && sameDaemon(*have, *want) {
		return nil
	}
	if have != nil {
		if err := m.ctl.StopDaemon(ctx, state); err != nil && !errors.Is(err, ErrNoDaemon) {
			return err
		}
		m.log.Info("stopped sync daemon", "instance", inst, "state", state.String(), "interface", have.Interface)
	}
	if want == nil {
		return nil
	}
	if err := m.ctl.StartDaemon(ctx, *want); err != nil {
		return err
	}
	m.log.Info("started sync daemon", "instance", inst, "state", state.String(),
		"interface", want.Interface, "sync_id", want.SyncID, "maxlen", want.MaxLen)
	return nil
}

func sameDaemon(have, want SyncDaemon) bool {
	return have.State == want.State && have.Interface == want.Interface && have.SyncID == want.SyncID &&
		(want.MaxLen == 0 || have.MaxLen == want.MaxLen) &&
		(!want.Group.IsValid() || have.Group == want.Group) &&
		(want.Port == 0 || have.Port == want.Port) &&
		(want.TTL == 0 || have.TTL == want.TTL)
}

// Close stops both daemons. A master daemon still draining (the instance
// left master less than Drain ago, or is master now and is being shut
// down) is stopped once the drain ends or ctx is done, whichever is first:
// its unsent tail is what the new master needs. The backup daemon stops at
// once.
func (m *SyncManager) Close(ctx context.Context) error {
	m.mu.Lock()
	if m.closing {
		m.mu.Unlock()
		return nil
	}
	m.closing = true
	if m.master {
		m.master, m.leftMaster = false, time.Now()
	}
	m.mu.Unlock()
	close(m.done)
	<-m.stopped

	err := m.reconcile()
	if wait := m.drainLeft(); wait > 0 {
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
		}
	}
	m.mu.Lock()
	m.leftMaster = time.Time{}
	m.mu.Unlock()
	err = errors.Join(err, m.reconcile())
	if m.closer != nil {
		err = errors.Join(err, m.closer())
	}
	return err
}
