package daemon

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/lvsd/lvsd/config"
	"github.com/lvsd/lvsd/director"
	"github.com/lvsd/lvsd/internal/status"
)

// connSync runs the kernel's IPVS connection-sync daemons in step with
// VRRP: master daemon while the instance with [vrrp.sync] is master,
// backup daemon always (director.SyncManager). It starts with the first
// config that has [vrrp.sync], at start or at a reload.
type connSync struct {
	log  *slog.Logger
	opts director.SyncOptions

	// mu orders the follower's updates: VRRP transitions, and a reload
	// moving [vrrp.sync] to another instance.
	mu       sync.Mutex
	follower syncFollower    // nil until a config has [vrrp.sync]
	master   map[string]bool // instance -> master, as last reported
}

// syncFollower is what connSync needs of director.SyncManager.
type syncFollower interface {
	OnState(instance string, master bool)
	Update(cfg *config.Config)
	Close(ctx context.Context) error
	Status(ctx context.Context) (director.SyncStatus, error)
}

func newConnSync(log *slog.Logger, opts director.SyncOptions) *connSync {
	opts.Logger = log
	return &connSync{log: log, opts: opts, master: map[string]bool{}}
}

// syncInstance is the VRRP instance with [vrrp.sync], or "".
func syncInstance(cfg *config.Config) string {
	for _, v := range cfg.VRRP {
		if v.Sync != nil {
			return v.Name
		}
	}
	return ""
}

// start starts the backup daemon when cfg has [vrrp.sync]; a daemon the
// kernel refuses stops lvsd from starting.
func (s *connSync) start(cfg *config.Config) error {
	if syncInstance(cfg) == "" {
		return nil
	}
	f, err := director.NewSyncManager(cfg, s.opts)
	if err != nil {
		return err
	}
	s.mu.Lock()
	s.follower = f
	s.mu.Unlock()
	return nil
}

// onState hears a VRRP transition.
func (s *connSync) onState(instance string, master bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.master[instance] = master
	if s.follower != nil {
		s.follower.OnState(instance, master)
	}
}

// Prepare starts connection sync when next is the first config with
// [vrrp.sync]: the backup daemon starting is the check that it can run (a
// wrong interface, a kernel without memory), and it is stopped again if
// the reload is refused. The commit installs it, or hands next to the
// running one; when [vrrp.sync] moved to another instance, the follower
// hears that instance's state now, not at its next transition.
func (s *connSync) Prepare(c *change) (func(), error) {
	inst := syncInstance(c.next)
	s.mu.Lock()
	running := s.follower != nil
	s.mu.Unlock()
	var added syncFollower
	if inst != "" && !running {
		f, err := director.NewSyncManager(c.next, s.opts)
		if err != nil {
			return nil, fmt.Errorf("vrrp[%s]: [vrrp.sync]: %w", inst, err)
		}
		added = f
		c.onAbort(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := f.Close(ctx); err != nil {
				s.log.Warn("stopping the connection sync of a rejected reload", "err", err)
			}
		})
	}
	return func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		if added != nil {
			s.follower = added
		}
		if s.follower == nil {
			return
		}
		s.follower.Update(c.next)
		if inst != "" && inst != syncInstance(c.old) {
			s.follower.OnState(inst, s.master[inst])
		}
	}, nil
}

// status is connection sync for the status document; nil without
// [vrrp.sync].
func (s *connSync) status(ctx context.Context) *status.Sync {
	s.mu.Lock()
	f := s.follower
	s.mu.Unlock()
	if f == nil {
		return nil
	}
	st, err := f.Status(ctx)
	if st.Instance == "" && err == nil {
		return nil // [vrrp.sync] was removed: both daemons stopped
	}
	out := &status.Sync{Instance: st.Instance, Master: st.Master, Daemons: []status.SyncDaemon{}}
	if err != nil {
		out.Error = err.Error()
	}
	for _, d := range st.Daemons {
		out.Daemons = append(out.Daemons, status.SyncDaemon{State: d.State, Wanted: d.Wanted, Running: d.Running, Interface: d.Interface, SyncID: d.SyncID})
	}
	return out
}

// close stops the sync daemons, letting the master's drain finish.
func (s *connSync) close(ctx context.Context) {
	s.mu.Lock()
	f := s.follower
	s.mu.Unlock()
	if f == nil {
		return
	}
	if err := f.Close(ctx); err != nil {
		s.log.Warn("stopping sync daemons", "err", err)
	}
}

// syncUpDesc is connection sync's metric: the alert on a sync daemon that
// should run and does not reads it.
var syncUpDesc = prometheus.NewDesc("lvsd_sync_daemon_up",
	"1 if the kernel runs the IPVS sync daemon of this state, 0 if lvsd wants it running and it does not; absent when neither.",
	[]string{"state"}, nil)

// Describe implements prometheus.Collector.
func (s *connSync) Describe(ch chan<- *prometheus.Desc) { ch <- syncUpDesc }

// Collect implements prometheus.Collector: it asks the kernel now, so a
// daemon stopped behind lvsd's back shows at the next scrape.
func (s *connSync) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), statusTimeout)
	defer cancel()
	st := s.status(ctx)
	if st == nil || st.Error != "" {
		return
	}
	for _, d := range st.Daemons {
		up := 0.0
		if d.Running {
			up = 1
		}
		ch <- prometheus.MustNewConstMetric(syncUpDesc, prometheus.GaugeValue, up, d.State)
	}
}
