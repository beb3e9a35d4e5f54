package checks

import (
	"net/netip"
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/lvsd/lvsd/config"
)

// TestCheckTypeDescriptors fails when a registered check type lacks a part
// of its descriptor: config and checks must agree on the types; each
// type's settings must be a struct of toml keys with a prober; defaults
// must leave a describable check; every key must count in the dedup key
// (or two different checks would share one probe); and the README must
// document the type and each of its keys. That lvsd check prints every
// type is TestCheckDescribesEveryType in cmd/lvsd.
func TestCheckTypeDescriptors(t *testing.T) {
	if got, want := config.CheckTypes(), Types(); !slices.Equal(got, want) {
		t.Fatalf("config.CheckTypes() = %v, checks.Types() = %v", got, want)
	}
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, typ := range Types() {
		t.Run(typ, func(t *testing.T) {
			s := config.NewCheckSettings(typ)
			if _, ok := s.(settings); !ok {
				t.Fatalf("settings %T have no prober (newChecker)", s)
			}
			v := reflect.ValueOf(s)
			if v.Kind() != reflect.Pointer || v.IsNil() || v.Elem().Kind() != reflect.Struct {
				t.Fatalf("settings %T are not a pointer to a struct", s)
			}
			if u := s.Port(); u != config.PortRequired && u != config.PortOptional && u != config.PortNone {
				t.Errorf("Port() = %d, not a PortUse", u)
			}
			s.Defaults(config.CheckDefaults{}) // no key given: every default
			if s.Describe() == "" {
				t.Error("Describe() is empty")
			}
			keys := tomlKeys(v.Elem().Type())
			for _, key := range keys {
				if !dedupSees(s, key) {
					t.Errorf("changing %s leaves DedupKey unchanged: checks differing in it would share a probe", key)
				}
			}
			section := readmeSection(string(readme), typ)
			if section == "" {
				t.Fatalf("README has no section #### type = %q", typ)
			}
			for _, key := range keys {
				if !strings.Contains(section, "| `"+key+"`") && !strings.Contains(section, ", `"+key+"`") {
					t.Errorf("README section of %s does not document key %s", typ, key)
				}
			}
			if !strings.Contains(readmeTypeRow(string(readme)), "`"+typ+"`") {
				t.Errorf("README's type row does not list %s", typ)
			}
		})
	}
}

func tomlKeys(t reflect.Type) []string {
	var keys []string
	for i := range t.NumField() {
		if name, _, _ := strings.Cut(t.Field(i).Tag.Get("toml"), ","); name != "" && name != "-" {
			keys = append(keys, name)
		}
	}
	return keys
}

// dedupSees reports whether changing key in s (a copy of it) changes
// its DedupKey.
func dedupSees(s config.CheckSettings, key string) bool {
	orig := reflect.ValueOf(s).Elem()
	cp := reflect.New(orig.Type())
	cp.Elem().Set(orig)
	f := cp.Elem().FieldByIndex(fieldIndex(orig.Type(), key))
	switch f.Kind() {
	case reflect.String:
		f.SetString(f.String() + "x")
	case reflect.Bool:
		f.SetBool(!f.Bool())
	case reflect.Int, reflect.Int64:
		f.SetInt(f.Int() + 1)
	case reflect.Slice:
		f.Set(reflect.Append(f, reflect.Zero(f.Type().Elem())))
	default:
		return false
	}
	return cp.Interface().(config.CheckSettings).DedupKey() != s.DedupKey()
}

func fieldIndex(t reflect.Type, key string) []int {
	for i := range t.NumField() {
		if name, _, _ := strings.Cut(t.Field(i).Tag.Get("toml"), ","); name == key {
			return []int{i}
		}
	}
	return nil
}

// readmeSection is the text from the heading that names typ (`#### type =
// "http" and "https"` names both) to the next heading.
func readmeSection(readme, typ string) string {
	for _, part := range strings.Split(readme, "\n#")[1:] {
		heading, _, _ := strings.Cut(part, "\n")
		if strings.HasPrefix(heading, "### type = ") && strings.Contains(heading, `"`+typ+`"`) {
			return part
		}
	}
	return ""
}

// readmeTypeRow is the row of the check reference that lists the types.
func readmeTypeRow(readme string) string {
	for _, line := range strings.Split(readme, "\n") {
		if strings.HasPrefix(line, "| `type` | **required** |") {
			return line
		}
	}
	return ""
}

// TestIncompleteChecksAreRefused: checks fills no defaults, so a check that
// did not come through config (Load or NewCheck) is refused by New, and the
// scheduler shows why on its target instead of probing with zero timers.
func TestIncompleteChecksAreRefused(t *testing.T) {
	raw := &config.Check{Type: "tcp", Settings: &TCPSettings{}}
	if _, err := New(raw, netip.MustParseAddrPort("127.0.0.1:80")); err == nil || !strings.Contains(err.Error(), "not completed by config") {
		t.Errorf("New(incomplete) = %v, want it refused", err)
	}
	h := newHarness(t)
	const rs = "10.0.0.20:80"
	h.fakes.set(rs, true)
	h.s.Update([]Target{tgt("web", rs, false, raw)})
	h.clock.Advance(incompleteEvery)
	select {
	case <-h.runs:
	case <-time.After(10 * time.Second):
		t.Fatal("the incomplete check never ran")
	}
	h.expect(down("web", rs))
	if st := h.status("web", rs); ReasonClass(st.Reason) != "config" || !strings.Contains(st.Reason, "not completed by config") {
		t.Errorf("reason %q, want the config failure", st.Reason)
	}
	if n := h.fakes.count(h.fakes.built, rs); n != 0 {
		t.Errorf("a prober was built %d times for an incomplete check", n)
	}
}
