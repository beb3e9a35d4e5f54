package config

import (
	"fmt"
	"reflect"
	"strings"
)

// Check types are registered, not listed here. A check type is one
// descriptor: a settings struct (its keys, as toml-tagged fields) whose
// methods fill its defaults, validate it, describe it for `lvsd check` and
// say which checks are the same probe. Package checks holds one file per
// type with the settings and the prober, and registers them all from one
// list (checks/registry.go) at init; config decodes, defaults and validates
// them like any other key, with file, line and key in every message.
// A program that loads configs must therefore import package checks.

// CheckSettings is the part of a check that belongs to its type: a pointer
// to a struct whose toml-tagged fields are the type's own keys.
type CheckSettings interface {
	// Defaults fills every key of the type that d says was not given.
	Defaults(d CheckDefaults)
	// Validate adds a problem for every bad key, by its key name. It runs
	// after Defaults and may keep what it parsed in unexported fields.
	Validate(p *Problems)
	// Port says what a probe of the type does with a port.
	Port() PortUse
	// Describe says in one line what one probe does, for `lvsd check`,
	// e.g. `GET /health, expect status 200-399`.
	Describe() string
	// DedupKey is equal for two checks of the type exactly when their
	// probes put the same thing on the wire: such checks of several
	// services against one address run once. Every key must count.
	DedupKey() string
}

// PortUse says what a check type does with the port of the real server.
type PortUse int

const (
	// PortRequired: the probe goes to a port, the check's or else the real
	// server's; a check without either is an error.
	PortRequired PortUse = iota
	// PortOptional: the port is passed on when there is one (exec).
	PortOptional
	// PortNone: the probe goes to the address only (ping); a port key is
	// an error.
	PortNone
)

// CheckDefaults is what a type's Defaults may consult.
type CheckDefaults struct {
	given keySet
	// Protocol is the protocol of the check's service: "tcp", "udp" or
	// "sctp", or "" for a fwmark service and for checks built with NewCheck.
	Protocol string
}

// Given reports whether key was set: present in the file, or for a check
// built with NewCheck, a field that is not zero.
func (d CheckDefaults) Given(key string) bool { return d.given[key] }

// Problems collects what a type's Validate finds wrong. Load reports each
// with the file, line and full path of the key.
type Problems struct{ p problems }

// Add records a problem with key (one of the type's keys, e.g. "path").
func (p *Problems) Add(key, format string, args ...any) { p.p.add(key, format, args...) }

type registeredType struct {
	name     string
	settings reflect.Type // the struct the pointer from newSettings points to
	new      func() CheckSettings
}

type registry struct {
	types []registeredType
	// errs are mistakes in registrations, reported by every Parse and
	// NewCheck: a program with a broken check type must not run with it.
	errs Errors
}

var checkTypes registry

// RegisterCheckType makes name a valid value of a check's type key.
// newSettings returns the settings of a new check of the type, before
// defaults: a pointer to a struct whose toml-tagged fields are its keys.
// Two names may share a settings struct (http and https do). Messages list
// the types in the order they were registered. Package checks calls it at
// init, before any config is loaded; it is not safe for concurrent use.
func RegisterCheckType(name string, newSettings func() CheckSettings) {
	checkTypes.register(name, newSettings)
}

func (r *registry) register(name string, newSettings func() CheckSettings) {
	fail := func(format string, args ...any) {
		r.errs = append(r.errs, fmt.Errorf("check type %q: "+format, append([]any{name}, args...)...))
	}
	if name == "" || newSettings == nil {
		fail("needs a name and a settings constructor")
		return
	}
	if r.lookup(name) != nil {
		fail("registered twice")
		return
	}
	s := newSettings()
	rt := reflect.TypeOf(s)
	if s == nil || rt.Kind() != reflect.Pointer || rt.Elem().Kind() != reflect.Struct || reflect.ValueOf(s).IsNil() {
		fail("settings must be a non-nil pointer to a struct, not %T", s)
		return
	}
	common := tomlFields(checkType)
	for key := range tomlFields(rt.Elem()) {
		if _, clash := common[key]; clash {
			fail("key %q is a key of every check", key)
			return
		}
	}
	r.types = append(r.types, registeredType{name: name, settings: rt.Elem(), new: newSettings})
}

func (r *registry) lookup(typ string) *registeredType {
	for i := range r.types {
		if r.types[i].name == typ {
			return &r.types[i]
		}
	}
	return nil
}

// CheckTypes lists the valid values of a check's type key, in the order
// they were registered.
func CheckTypes() []string {
	names := make([]string, len(checkTypes.types))
	for i, t := range checkTypes.types {
		names[i] = t.name
	}
	return names
}

// NewCheckSettings returns the settings of a new check of type typ, before
// defaults, or nil for a type nobody registered.
func NewCheckSettings(typ string) CheckSettings {
	if t := lookupCheckType(typ); t != nil {
		return t.new()
	}
	return nil
}

func lookupCheckType(typ string) *registeredType { return checkTypes.lookup(typ) }

// newSpecific gives c the settings of its type and returns them as a
// struct value to decode into, or an invalid Value for an unknown type.
func (c *Check) newSpecific(typ string) reflect.Value {
	t := lookupCheckType(typ)
	if t == nil {
		c.Settings = nil
		return reflect.Value{}
	}
	c.Settings = t.new()
	return reflect.ValueOf(c.Settings).Elem()
}

// checkKeyOwners names the check types a type-specific key belongs to,
// e.g. "dns" for query_name, "http/https and ldap" for tls_server_name, or
// "" for a key no type has. Types sharing a settings struct are one owner.
func checkKeyOwners(key string) string {
	var owners []string
	var seen []reflect.Type
	for _, t := range checkTypes.types {
		if _, ok := tomlFields(t.settings)[key]; !ok {
			continue
		}
		if i := indexOfType(seen, t.settings); i >= 0 {
			owners[i] += "/" + t.name
			continue
		}
		seen = append(seen, t.settings)
		owners = append(owners, t.name)
	}
	return strings.Join(owners, " and ")
}

func indexOfType(types []reflect.Type, t reflect.Type) int {
	for i, u := range types {
		if u == t {
			return i
		}
	}
	return -1
}

// NewCheck completes a check built in Go the way Load completes one read
// from a file: it fills the defaults and validates, and the result is what
// package checks accepts. A field left at its zero value counts as not
// given and takes its default. c.Settings may be nil (every key of the type
// at its default) or the type's settings struct; c is not modified. The
// error is an Errors whose messages name the key ("timeout: ...").
func NewCheck(c Check) (*Check, error) {
	if len(checkTypes.errs) > 0 {
		return nil, checkTypes.errs
	}
	var p problems
	t := lookupCheckType(c.Type)
	if t == nil {
		c.typeProblem(&p)
		return nil, p.err()
	}
	settings := t.new()
	if c.Settings != nil {
		given := reflect.ValueOf(c.Settings)
		if given.Type() != reflect.PointerTo(t.settings) || given.IsNil() {
			p.add("type", "%s checks take settings of type *%s, not %T", c.Type, t.settings, c.Settings)
			return nil, p.err()
		}
		// Copy the keys only: fields the constructor sets (such as which
		// of http and https it is) stay as it set them.
		dst := reflect.ValueOf(settings).Elem()
		for _, i := range tomlFields(t.settings) {
			dst.Field(i).Set(given.Elem().Field(i))
		}
	}
	c.Settings = settings
	given := nonZero(reflect.ValueOf(&c).Elem())
	for k := range nonZero(reflect.ValueOf(settings).Elem()) {
		given[k] = true
	}
	c.setDefaults(CheckDefaults{given: given})
	if err := c.validate(); err != nil {
		return nil, err
	}
	c.complete = true
	return &c, nil
}

// nonZero is the set of keys of struct v whose fields are not zero.
func nonZero(v reflect.Value) keySet {
	set := keySet{}
	for key, i := range tomlFields(v.Type()) {
		if !v.Field(i).IsZero() {
			set[key] = true
		}
	}
	return set
}
