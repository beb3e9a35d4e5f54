package config

import (
	"strings"
	"testing"
)

type goodSettings struct {
	Colour string `toml:"colour"`
}

func (*goodSettings) Defaults(CheckDefaults) {}
func (*goodSettings) Validate(*Problems)     {}
func (*goodSettings) Port() PortUse          { return PortRequired }
func (*goodSettings) Describe() string       { return "paint" }
func (*goodSettings) DedupKey() string       { return "" }

type riseSettings struct {
	goodSettings
	Rise int `toml:"rise"`
}

type notStruct int

func (notStruct) Defaults(CheckDefaults) {}
func (notStruct) Validate(*Problems)     {}
func (notStruct) Port() PortUse          { return PortNone }
func (notStruct) Describe() string       { return "" }
func (notStruct) DedupKey() string       { return "" }

// TestRegistryRefuses the registrations that would make configs ambiguous;
// every Parse then reports them instead of loading with a broken type.
func TestRegistryRefuses(t *testing.T) {
	var r registry
	r.register("paint", func() CheckSettings { return &goodSettings{} })
	r.register("paint", func() CheckSettings { return &goodSettings{} })
	r.register("rise", func() CheckSettings { return &riseSettings{} })
	r.register("int", func() CheckSettings { return notStruct(1) })
	r.register("nil", func() CheckSettings { return (*goodSettings)(nil) })
	r.register("", nil)
	want := strings.Join([]string{
		`check type "paint": registered twice`,
		`check type "rise": key "rise" is a key of every check`,
		`check type "int": settings must be a non-nil pointer to a struct, not config.notStruct`,
		`check type "nil": settings must be a non-nil pointer to a struct, not *config.goodSettings`,
		`check type "": needs a name and a settings constructor`,
	}, "\n")
	if got := r.errs.Error(); got != want {
		t.Errorf("errors:\n%s\nwant:\n%s", got, want)
	}
	if len(r.types) != 1 || r.types[0].name != "paint" {
		t.Errorf("registered %+v, want only paint", r.types)
	}

	saved := checkTypes
	defer func() { checkTypes = saved }()
	checkTypes = r
	_, err := Parse("x.toml", []byte(""))
	if err == nil || !strings.HasPrefix(err.Error(), `x.toml: cannot load configs: check type "paint": registered twice`) {
		t.Errorf("Parse = %v, want the registry's errors", err)
	}
}
