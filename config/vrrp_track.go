package config

import (
	"slices"
	"time"
)

// Weighted tracking, as keepalived's vrrp_script/track_script and
// track_interface with weight: while a tracked object fails, a negative
// weight is added to the instance's priority; while it passes, a positive
// one is; weight 0 puts the instance in FAULT while it fails. The
// priority stays within 1..254.

// TrackScript is a command run every Interval (keepalived's vrrp_script
// with its track_script weight): exit 0 passes.
type TrackScript struct {
	Name     string   `toml:"name"`
	Command  []string `toml:"command"`
	Interval Duration `toml:"interval"` // default 1s
	Timeout  Duration `toml:"timeout"`  // default Interval
	Rise     int      `toml:"rise"`     // default 1
	Fall     int      `toml:"fall"`     // default 1
	Weight   int      `toml:"weight"`   // -253..253; default 0 (FAULT while failing)
}

// TrackWeight is a tracked interface or service with a weight.
type TrackWeight struct {
	Name   string `toml:"name"`
	Weight int    `toml:"weight"` // -253..253; default 0 (FAULT while down)
}

// MaxTrackWeight bounds a weight, as in keepalived: any weight can move
// any priority across the whole range 1..254.
const MaxTrackWeight = 253

func (l *loader) tracking(v *VRRP, cfg *Config, at loc) {
	names := map[string]int{}
	for i := range v.TrackScripts {
		s := &v.TrackScripts[i]
		sat := l.locs[s]
		l.trackScript(s, sat)
		if s.Name == "" {
			continue
		}
		if j, dup := names[s.Name]; dup {
			l.errorf(sat.key("name"), "duplicate track_script name %q (track_script[%d] has it)", s.Name, j+1)
		} else {
			names[s.Name] = i
		}
	}
	l.trackWeights(v.TrackInterface, v.TrackInterfaces, "track_interface", "track_interfaces", func(w *TrackWeight, wat loc) {
		if w.Name == v.Interface && w.Name != "" {
			l.errorf(wat.key("name"), "%s is the instance's own interface, which is always tracked (down is FAULT)", w.Name)
		}
	})
	l.trackWeights(v.TrackService, v.TrackServices, "track_service", "track_services", func(w *TrackWeight, wat loc) {
		if w.Name != "" && cfg.Service(w.Name) == nil {
			l.errorf(wat.key("name"), "unknown service %q", w.Name)
		}
	})
}

func (l *loader) trackScript(s *TrackScript, at loc) {
	g := l.given[at.raw()]
	switch {
	case s.Name == "":
		l.errorf(at.key("name"), "required")
	case !validName.MatchString(s.Name):
		l.errorf(at.key("name"), "invalid name %q (use letters, digits and . _ - : / @)", s.Name)
	}
	l.argv(at, "command", s.Command, true, `["/usr/local/bin/check-uplink", "--quick"]`)
	if g.unset("interval", s.Interval.Duration == 0) {
		s.Interval.Duration = time.Second
	}
	l.positive(at.key("interval"), s.Interval.Duration)
	if g.unset("timeout", s.Timeout.Duration == 0) {
		s.Timeout.Duration = s.Interval.Duration // its error, if any, is interval's
	} else {
		l.positive(at.key("timeout"), s.Timeout.Duration)
	}
	for _, k := range []struct {
		key string
		n   *int
	}{{"rise", &s.Rise}, {"fall", &s.Fall}} {
		if g.unset(k.key, *k.n == 0) {
			*k.n = 1
		}
		if *k.n < 1 {
			l.errorf(at.key(k.key), "%d: must be at least 1", *k.n)
		}
	}
	l.weight(at.key("weight"), s.Weight)
}

// trackWeights checks [[vrrp.track_interface]] or [[vrrp.track_service]]
// against each other and the plain list of the same kind.
func (l *loader) trackWeights(ws []TrackWeight, plain []string, key, plainKey string, more func(*TrackWeight, loc)) {
	seen := map[string]int{}
	for i := range ws {
		w := &ws[i]
		wat := l.locs[w]
		switch j, dup := seen[w.Name]; {
		case w.Name == "":
			l.errorf(wat.key("name"), "required")
		case dup:
			l.errorf(wat.key("name"), "%q is tracked twice (%s[%d] has it)", w.Name, key, j+1)
		case slices.Contains(plain, w.Name):
			l.errorf(wat.key("name"), "%q is also in %s (weight 0); list it once", w.Name, plainKey)
		default:
			seen[w.Name] = i
		}
		more(w, wat)
		l.weight(wat.key("weight"), w.Weight)
	}
}

func (l *loader) weight(at loc, w int) {
	if w < -MaxTrackWeight || w > MaxTrackWeight {
		l.errorf(at, "%d out of range -%d..%d (0: FAULT while failing)", w, MaxTrackWeight, MaxTrackWeight)
	}
}
