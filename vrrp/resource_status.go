package vrrp

import "time"

// The vocabulary of resources: what runs, the states a resource goes
// through, and how the status API shows them.

// ResourceOp is what an ActResource runs.
type ResourceOp uint8

const (
	OpStart ResourceOp = iota + 1
	OpStop
	OpStatus
)

func (o ResourceOp) String() string {
	switch o {
	case OpStart:
		return "start"
	case OpStop:
		return "stop"
	case OpStatus:
		return "status"
	}
	return "op"
}

// resState is one resource's state.
type resState uint8

const (
	resStopped resState = iota
	resStarting
	resRunning
	resStopping
	resFailed // a start or status failed: stop it
	resStopFailed
	resUnknown // may run: stop it before any start
	resRestart // running, to be restarted in place: stop, then start
)

// String is the state's word in status; the metric uses its number.
func (s resState) String() string {
	return [...]string{"stopped", "starting", "running", "stopping", "failed", "stop_failed", "unknown", "restarting"}[s]
}

// ResourceRun is the last run of a resource's command.
type ResourceRun struct {
	Op       string        `json:"op"`
	OK       bool          `json:"ok"`
	Result   string        `json:"result"` // "exit 0", "exit 1: OUTPUT", "timed out after 10s: process group killed"
	Duration time.Duration `json:"duration_ns"`
	At       time.Time     `json:"at"`
}

// ResourceStatus is one resource as the status API shows it.
type ResourceStatus struct {
	Name      string `json:"name"`
	State     string `json:"state"` // stopped, starting, running, stopping, failed, stop_failed, unknown, restarting
	Exclusive bool   `json:"exclusive"`
	// Restarts in place this mastership, and failed status runs in a row.
	Restarts int          `json:"restarts"`
	Falls    int          `json:"consecutive_failures"`
	Last     *ResourceRun `json:"last,omitempty"`
	// Removed: a reload removed it; it is being stopped.
	Removed bool `json:"removed,omitempty"`
}

func (m *Machine) resourceStatus() []ResourceStatus {
	var out []ResourceStatus
	add := func(r *resource, removed bool) {
		st := ResourceStatus{Name: r.cfg.name, State: r.state.String(), Exclusive: r.cfg.exclusive,
			Restarts: r.restarts, Falls: r.falls, Removed: removed}
		if r.last.Op != "" {
			last := r.last
			st.Last = &last
		}
		out = append(out, st)
	}
	for _, r := range m.res.list {
		add(r, false)
	}
	for _, r := range m.res.orphans {
		add(r, true)
	}
	return out
}
