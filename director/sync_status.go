package director

import (
	"context"
	"time"
)

// SyncDaemonStatus is one kernel sync daemon as status and metrics show
// it: whether lvsd wants it now and whether the kernel runs it.
type SyncDaemonStatus struct {
	State     string // "master" or "backup"
	Wanted    bool
	Running   bool
	Interface string // as the kernel runs it, else as lvsd wants it
	SyncID    int
}

// SyncStatus is connection sync as a whole: the VRRP instance it follows
// and both daemons.
type SyncStatus struct {
	Instance string
	Master   bool // the instance is master here
	Daemons  []SyncDaemonStatus
}

// control is the kernel handle, which reconcile dials on first need.
func (m *SyncManager) control() SyncDaemonControl {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.ctl
}

// Status asks the kernel which daemons run now, so a daemon someone else
// stopped (ipvsadm --stop-daemon) shows as wanted but not running until
// the next reconcile starts it again.
func (m *SyncManager) Status(ctx context.Context) (SyncStatus, error) {
	m.mu.Lock()
	want, closing, inst, master := m.want, m.closing, m.instance, m.master
	masterOn := m.master || (!m.leftMaster.IsZero() && time.Since(m.leftMaster) < m.opts.Drain)
	ctl := m.ctl
	m.mu.Unlock()
	st := SyncStatus{Instance: inst, Master: master}
	var have []SyncDaemon
	if ctl != nil {
		var err error
		if have, err = ctl.Daemons(ctx); err != nil {
			return st, err
		}
	}
	for _, state := range []SyncState{SyncMaster, SyncBackup} {
		ds := SyncDaemonStatus{State: state.String()}
		ds.Wanted = want != nil && ((state == SyncBackup && !closing) || (state == SyncMaster && masterOn))
		if want != nil {
			ds.Interface, ds.SyncID = want.Interface, int(want.SyncID)
		}
		for _, h := range have {
			if h.State == state {
				ds.Running, ds.Interface, ds.SyncID = true, h.Interface, int(h.SyncID)
			}
		}
		if ds.Wanted || ds.Running {
			st.Daemons = append(st.Daemons, ds)
		}
	}
	return st, nil
}
