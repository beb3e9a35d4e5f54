package config

import "time"

// EvictionGuard is [director.eviction_guard]: when lvsd itself is behind
// or short of file descriptors or memory, and most of a pool or of all real
// servers fail at once in a way lvsd's own trouble could explain (timeouts,
// local errors), the director keeps the last known-good table instead of
// emptying it. The rule is in director/guard.go and the README.
type EvictionGuard struct {
	// Threshold is the share of a pool, or of all real servers, in percent,
	// that must fail at once for the guard to hold: more than this many.
	// Default 50 ("most"); 0 turns the guard off, as Envoy's panic threshold.
	Threshold int `toml:"threshold"`
	// Window is how close together failures must come to count as "at
	// once", and how long a failure waits to be judged while lvsd is in
	// trouble. Default 10s.
	Window Duration `toml:"window"`
	// MaxHold bounds every hold: a held failure is applied after this long
	// whatever lvsd's state. Default 2m.
	MaxHold Duration `toml:"max_hold"`
	// FDLimit: lvsd is short of file descriptors when this percentage of
	// its RLIMIT_NOFILE, or of the host's fs.file-max, is in use. Default
	// 90; 0 does not watch file descriptors.
	FDLimit int `toml:"fd_limit"`
	// MemoryLimit: lvsd is short of memory when this percentage of its
	// cgroup's memory.max (or, without one, of the host's memory) is in
	// use, not counting reclaimable page cache. Default 90; 0 does not
	// watch memory.
	MemoryLimit int `toml:"memory_limit"`
	// ChecksBehind: the checks are behind when a probe starts this much
	// later than its schedule. Default 2s; 0 does not watch the checks.
	ChecksBehind Duration `toml:"checks_behind"`
}

// On reports whether the guard may hold failures at all.
func (g EvictionGuard) On() bool { return g.Threshold > 0 }

func (l *loader) evictionGuard(g *EvictionGuard, at loc) {
	given := l.given[at.raw()]
	if given.unset("threshold", g.Threshold == 0) {
		g.Threshold = 50
	}
	if g.Threshold < 0 || g.Threshold > 99 {
		l.errorf(at.key("threshold"), "%d out of range 0..99 (percent; 0 turns the guard off)", g.Threshold)
	}
	if given.unset("window", g.Window.Duration == 0) {
		g.Window.Duration = 10 * time.Second
	}
	if given.unset("max_hold", g.MaxHold.Duration == 0) {
		g.MaxHold.Duration = 2 * time.Minute
	}
	switch {
	case g.Window.Duration <= 0:
		l.errorf(at.key("window"), "must be positive")
	case g.MaxHold.Duration < g.Window.Duration:
		l.errorf(at.key("max_hold"), "%s is shorter than window (%s): a failure waits up to window to be judged", g.MaxHold.Duration, g.Window.Duration)
	}
	if given.unset("fd_limit", g.FDLimit == 0) {
		g.FDLimit = 90
	}
	if g.FDLimit < 0 || g.FDLimit > 100 {
		l.errorf(at.key("fd_limit"), "%d out of range 0..100 (percent; 0 does not watch file descriptors)", g.FDLimit)
	}
	if given.unset("memory_limit", g.MemoryLimit == 0) {
		g.MemoryLimit = 90
	}
	if g.MemoryLimit < 0 || g.MemoryLimit > 100 {
		l.errorf(at.key("memory_limit"), "%d out of range 0..100 (percent; 0 does not watch memory)", g.MemoryLimit)
	}
	if given.unset("checks_behind", g.ChecksBehind.Duration == 0) {
		g.ChecksBehind.Duration = 2 * time.Second
	}
}
