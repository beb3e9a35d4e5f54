package checks

import (
	"encoding/json"
	"fmt"
	"net/netip"

	"github.com/lvsd/lvsd/config"
)

// A check type is one file here (tcp.go, ping.go, ...) holding its settings
// struct, which config decodes the type's keys into and whose methods are
// the rest of its descriptor (defaults, validation, one-line description,
// dedup key, and the prober's constructor), and one line in checkTypes.
// config learns the type from that line; nothing else in the code changes.
// Besides its own test file, a new type adds its section to the README and
// a check to cmd/lvsd/testdata/every-check-type.toml, and usually a golden
// config/testdata/invalid-TYPE-*.toml; TestCheckTypeDescriptors and
// TestCheckDescribesEveryType fail until it has every part.

// checkTypes is every check type, in the order messages list them: its
// value of the type key and the settings of a new check, before defaults.
var checkTypes = []struct {
	name     string
	settings func() settings
}{
	{"tcp", func() settings { return &TCPSettings{} }},
	{"http", func() settings { return &HTTPSettings{https: false} }},
	{"https", func() settings { return &HTTPSettings{https: true} }},
	{"dns", func() settings { return &DNSSettings{} }},
	{"ldap", func() settings { return &LDAPSettings{} }},
	{"exec", func() settings { return &ExecSettings{} }},
	{"ping", func() settings { return &PingSettings{} }},
	{"udp", func() settings { return &UDPSettings{} }},
}

// settings is a check type's descriptor: what config needs to decode,
// default, validate, describe and deduplicate its checks, and the
// constructor of its prober.
type settings interface {
	config.CheckSettings
	// newChecker builds the prober of a complete check c against target,
	// whose port is the check's when the type uses one.
	newChecker(c *config.Check, target netip.AddrPort) (Checker, error)
}

func init() {
	for _, t := range checkTypes {
		config.RegisterCheckType(t.name, func() config.CheckSettings { return t.settings() })
	}
}

// Types lists the registered check types, in registration order.
func Types() []string {
	names := make([]string, len(checkTypes))
	for i, t := range checkTypes {
		names[i] = t.name
	}
	return names
}

// dedupKey is the DedupKey of settings whose every exported field is a key
// that changes what a probe sends or accepts.
func dedupKey(s any) string {
	b, err := json.Marshal(s)
	if err != nil {
		// Settings are plain data; fall back to the printed form anyway.
		return fmt.Sprintf("%T%+v", s, s)
	}
	return fmt.Sprintf("%T%s", s, b)
}
