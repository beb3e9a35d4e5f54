package config

import (
	"path/filepath"
	"time"
)

// Resource is one service a VRRP instance runs while it is master, as
// heartbeat's haresources and Pacemaker's resource groups do: started in
// order on becoming master, stopped in reverse on leaving it, watched with
// its status command in between.
type Resource struct {
	Name string `toml:"name"`
	// Start, Stop and Status are argv lists run without a shell; Status is
	// optional (no monitoring without it).
	Start  []string `toml:"start"`
	Stop   []string `toml:"stop"`
	Status []string `toml:"status"`
	// Timeout bounds each run; StartTimeout and StopTimeout override it for
	// start and stop. A run still going is killed with its process group.
	Timeout      Duration `toml:"timeout"`       // default 20s
	StartTimeout Duration `toml:"start_timeout"` // default Timeout
	StopTimeout  Duration `toml:"stop_timeout"`  // default Timeout
	// MonitorInterval is how often Status runs while the resource runs.
	MonitorInterval Duration `toml:"monitor_interval"` // default 10s
	// Fall is how many failed Status runs in a row make a failure.
	Fall int `toml:"fall"` // default 1
	// Restarts is how many failures are restarted in place in one
	// mastership before the instance hands over.
	Restarts int `toml:"restarts"` // default 1
	// Exclusive: never run on both directors at once (lvsd waits for the
	// old master's release before starting it). Default true.
	Exclusive *bool `toml:"exclusive"`
}

// ExclusiveOn reports whether the resource must never run on both nodes.
func (r *Resource) ExclusiveOn() bool { return r.Exclusive == nil || *r.Exclusive }

// Defaults of the HA keys of [[vrrp]].
const (
	DefaultHoldOff         = time.Minute
	DefaultResourceTimeout = 20 * time.Second
	DefaultMonitorInterval = 10 * time.Second
)

// vrrpHA checks the HA keys of one [[vrrp]]: hold_off, resources and
// tracking (vrrp_track.go).
func (l *loader) vrrpHA(v *VRRP, cfg *Config, at loc) {
	g := l.given[at.raw()]
	if g.unset("hold_off", v.HoldOff.Duration == 0) {
		v.HoldOff.Duration = DefaultHoldOff
	}
	if v.HoldOff.Duration < 0 {
		l.errorf(at.key("hold_off"), "must not be negative")
	}
	names := map[string]int{}
	for i := range v.Resources {
		r := &v.Resources[i]
		rat := l.locs[r]
		l.resource(r, rat)
		if r.Name == "" {
			continue
		}
		if j, dup := names[r.Name]; dup {
			l.errorf(rat.key("name"), "duplicate resource name %q (resource[%d] has it)", r.Name, j+1)
		} else {
			names[r.Name] = i
		}
	}
	l.tracking(v, cfg, at)
}

func (l *loader) resource(r *Resource, at loc) {
	g := l.given[at.raw()]
	switch {
	case r.Name == "":
		l.errorf(at.key("name"), "required")
	case !validName.MatchString(r.Name):
		l.errorf(at.key("name"), "invalid name %q (use letters, digits and . _ - : / @)", r.Name)
	}
	l.argv(at, "start", r.Start, true, `["/usr/local/sbin/myproxy-ha", "start"]`)
	l.argv(at, "stop", r.Stop, true, `["/usr/local/sbin/myproxy-ha", "stop"]`)
	l.argv(at, "status", r.Status, false, "")
	if g.unset("timeout", r.Timeout.Duration == 0) {
		r.Timeout.Duration = DefaultResourceTimeout
	}
	l.positive(at.key("timeout"), r.Timeout.Duration)
	for _, t := range []struct {
		key string
		d   *Duration
	}{{"start_timeout", &r.StartTimeout}, {"stop_timeout", &r.StopTimeout}} {
		if g.unset(t.key, t.d.Duration == 0) {
			t.d.Duration = r.Timeout.Duration // its error, if any, is timeout's
			continue
		}
		l.positive(at.key(t.key), t.d.Duration)
	}
	if g["monitor_interval"] && len(r.Status) == 0 {
		l.errorf(at.key("monitor_interval"), "needs status (the command that monitors the resource)")
	}
	if g.unset("monitor_interval", r.MonitorInterval.Duration == 0) {
		r.MonitorInterval.Duration = DefaultMonitorInterval
	}
	l.positive(at.key("monitor_interval"), r.MonitorInterval.Duration)
	if g.unset("fall", r.Fall == 0) {
		r.Fall = 1
	}
	if r.Fall < 1 {
		l.errorf(at.key("fall"), "%d: must be at least 1", r.Fall)
	}
	if g.unset("restarts", r.Restarts == 0) {
		r.Restarts = 1
	}
	if r.Restarts < 0 {
		l.errorf(at.key("restarts"), "must not be negative")
	}
	if r.Exclusive == nil {
		r.Exclusive = boolPtr(true)
	}
}

// argv checks a command list: required or optional, and run without a
// shell, so its program must be an absolute path.
func (l *loader) argv(at loc, key string, argv []string, required bool, example string) {
	switch {
	case len(argv) == 0 && required:
		l.errorf(at.key(key), "required (an argv list such as %s)", example)
	case len(argv) == 0:
	case !filepath.IsAbs(argv[0]):
		l.errorf(at.key(key).elem(0, "1"), "%q must be an absolute path (%s runs without a shell)", argv[0], key)
	}
}

func (l *loader) positive(at loc, d time.Duration) {
	if d <= 0 {
		l.errorf(at, "must be positive")
	}
}
