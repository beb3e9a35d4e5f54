package config

import (
	"strings"
	"time"
)

// The keys every check has, their defaults and their rules. The keys of
// each type are its registered settings (see checktype.go).

// Complete reports whether c came from Load or NewCheck, with every
// default filled and every rule checked.
func (c *Check) Complete() bool { return c.complete }

// setDefaults fills the common keys d says were not given, then the
// type's. A check of an unknown type has no settings to fill.
func (c *Check) setDefaults(d CheckDefaults) {
	given := d.given
	if !given["interval"] {
		c.Interval.Duration = 5 * time.Second
	}
	if !given["timeout"] {
		c.Timeout.Duration = min(2*time.Second, c.Interval.Duration/2)
	}
	if !given["rise"] {
		c.Rise = 2
	}
	if !given["fall"] {
		c.Fall = 3
	}
	if c.Settings != nil {
		c.Settings.Defaults(d)
	}
}

// typeProblem explains a missing or unknown type.
func (c *Check) typeProblem(p *problems) {
	types := CheckTypes()
	switch {
	case len(types) == 0:
		p.add("type", "no check types are registered (a program that loads configs must import package checks)")
	case c.Type == "":
		p.add("type", "required (%s)", orList(types))
	default:
		p.add("type", "unknown check type %q (want %s)", c.Type, orList(types))
	}
}

// validate checks the common keys and the type's. Error paths are
// relative to the check (e.g. "timeout", "query_name").
func (c *Check) validate() error {
	var p problems
	if c.Settings == nil {
		c.typeProblem(&p)
		return p.err()
	}
	if c.Interval.Duration <= 0 {
		p.add("interval", "must be positive")
	}
	// With no valid interval the timeout (often its default) cannot be
	// judged; the interval error is the one to fix.
	switch {
	case c.Interval.Duration <= 0:
	case c.Timeout.Duration <= 0:
		p.add("timeout", "must be positive")
	case c.Timeout.Duration >= c.Interval.Duration:
		p.add("timeout", "%s must be shorter than interval %s", c.Timeout.Duration, c.Interval.Duration)
	}
	if c.Rise < 1 {
		p.add("rise", "must be at least 1, not %d", c.Rise)
	}
	if c.Fall < 1 {
		p.add("fall", "must be at least 1, not %d", c.Fall)
	}
	switch {
	case c.Port != 0 && c.Settings.Port() == PortNone:
		p.add("port", "%s checks probe an address, not a port", c.Type)
	case c.Port < 0 || c.Port > 65535:
		p.add("port", "%d out of range 1..65535", c.Port)
	}
	if c.SourceAddress.Port != 0 {
		p.add("source_address", "must be an address without a port")
	}
	var tp Problems
	c.Settings.Validate(&tp)
	p.errs = append(p.errs, tp.p.errs...)
	return p.err()
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// orList formats a, b or c.
func orList(list []string) string {
	switch len(list) {
	case 0:
		return ""
	case 1:
		return list[0]
	}
	return strings.Join(list[:len(list)-1], ", ") + " or " + list[len(list)-1]
}
