package config_test

import (
	"strings"
	"testing"
	"time"

	"github.com/lvsd/lvsd/checks"
	"github.com/lvsd/lvsd/config"
)

// TestNewCheck covers checks built in Go, as tests and benchmarks build
// them: zero means not given and takes its default, and errors name keys.
func TestNewCheck(t *testing.T) {
	given := &checks.LDAPSettings{Base: "o=grid", ExpectEntries: 3}
	c, err := config.NewCheck(config.Check{Type: "ldap", Settings: given})
	if err != nil {
		t.Fatal(err)
	}
	l := c.Settings.(*checks.LDAPSettings)
	if c.Interval.Duration != 5*time.Second || c.Timeout.Duration != 2*time.Second || c.Rise != 2 || c.Fall != 3 ||
		l.Scope != "base" || l.SizeLimit != 3 || !c.Complete() {
		t.Errorf("defaults: %+v %+v", c, l)
	}
	if given.Scope != "" || l == given {
		t.Errorf("NewCheck changed the caller's settings: %+v", given)
	}

	// The list of types is pinned by testdata/invalid-check-required.err.
	types := strings.Join(config.CheckTypes()[:len(config.CheckTypes())-1], ", ") + " or " + config.CheckTypes()[len(config.CheckTypes())-1]
	for _, tc := range []struct {
		name string
		c    config.Check
		want string
	}{
		{name: "no settings: every key at its default", c: config.Check{Type: "dns"}, want: "query_name: required"},
		{name: "another type's settings", c: config.Check{Type: "http", Settings: &checks.DNSSettings{}},
			want: "type: http checks take settings of type *checks.HTTPSettings, not *checks.DNSSettings"},
		{name: "common keys", c: config.Check{Type: "tcp", Interval: config.Duration{Duration: time.Second}, Timeout: config.Duration{Duration: 2 * time.Second}, Rise: -1},
			want: "timeout: 2s must be shorter than interval 1s\nrise: must be at least 1, not -1"},
		{name: "unknown type", c: config.Check{Type: "smtp"},
			want: `type: unknown check type "smtp" (want ` + types + ")"},
		{name: "no type", c: config.Check{}, want: "type: required (" + types + ")"},
		{name: "http is not https", c: config.Check{Type: "http", Settings: &checks.HTTPSettings{TLSSkipVerify: true}},
			want: "tls_skip_verify: only for https checks"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := config.NewCheck(tc.c)
			if err == nil || err.Error() != tc.want {
				t.Errorf("NewCheck = %+v, %v; want %q", c, err, tc.want)
			}
		})
	}
	// The registry's constructor says which of http and https a check is,
	// whatever settings the caller passed.
	if _, err := config.NewCheck(config.Check{Type: "https", Settings: &checks.HTTPSettings{TLSSkipVerify: true}}); err != nil {
		t.Errorf("https with tls_skip_verify: %v", err)
	}
}

// TestCheckTypesAgree: the types config accepts are the ones checks can
// probe, in the order messages list them.
func TestCheckTypesAgree(t *testing.T) {
	if got, want := strings.Join(config.CheckTypes(), ","), strings.Join(checks.Types(), ","); got != want {
		t.Errorf("config.CheckTypes() = %s, checks.Types() = %s", got, want)
	}
}
