package config_test

import (
	"errors"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lvsd/lvsd/checks"
	"github.com/lvsd/lvsd/config"
)

// The tests of Load live outside package config because configs have
// checks, whose types package checks registers.

// TestInvalid loads every testdata/invalid-*.toml and compares the whole
// error text with its sibling .err file: file, line, key path and wording
// are part of lvsd's interface with operators.
func TestInvalid(t *testing.T) {
	files, err := filepath.Glob("testdata/invalid-*.toml")
	if err != nil || len(files) < 20 {
		t.Fatalf("want at least 20 invalid configs, have %d (%v)", len(files), err)
	}
	// An .err file without its config would be an expectation nobody tests.
	errFiles, _ := filepath.Glob("testdata/*.err")
	for _, e := range errFiles {
		if _, err := os.Stat(strings.TrimSuffix(e, ".err") + ".toml"); err != nil {
			t.Errorf("%s has no config: %v", e, err)
		}
	}
	for _, file := range files {
		t.Run(filepath.Base(file), func(t *testing.T) {
			want, err := os.ReadFile(strings.TrimSuffix(file, ".toml") + ".err")
			if err != nil {
				t.Fatal(err)
			}
			cfg, err := config.Load(file)
			if err == nil {
				t.Fatalf("Load accepted the file: %+v", cfg)
			}
			var es config.Errors
			if !errors.As(err, &es) {
				t.Fatalf("error is %T, want config.Errors", err)
			}
			if got := err.Error(); got != strings.TrimRight(string(want), "\n") {
				t.Errorf("errors differ\n--- got\n%s\n--- want\n%s", got, want)
			}
		})
	}
}

func mustLoad(t *testing.T, file string) *config.Config {
	t.Helper()
	cfg, err := config.Load(file)
	if err != nil {
		t.Fatalf("config.Load(%s):\n%v", file, err)
	}
	return cfg
}

// TestDefaults proves what every other package relies on: after Load no
// field that has a default is left for the user of Config to guess.
func TestDefaults(t *testing.T) {
	cfg := mustLoad(t, "testdata/valid-minimal.toml")
	host, _ := os.Hostname()
	d := cfg.Director
	if d.Name != host || d.ReconcileInterval.Duration != 30*time.Second || d.MetricsListen != "127.0.0.1:9910" ||
		d.ControlSocket != "/run/lvsd/lvsd.sock" || d.OnExit != "keep" || d.OwnAll ||
		!*d.ExpireNodestConn || !*d.ExpireQuiescentTemplate || !*d.IPForward {
		t.Errorf("director defaults: %+v", d)
	}
	if g := d.EvictionGuard; g != (config.EvictionGuard{Threshold: 50, Window: config.Duration{10 * time.Second}, MaxHold: config.Duration{2 * time.Minute},
		FDLimit: 90, MemoryLimit: 90, ChecksBehind: config.Duration{2 * time.Second}}) || !g.On() {
		t.Errorf("eviction guard defaults: %+v", g)
	}

	web := cfg.Services[0]
	if web.Name != "tcp/192.0.2.10:80" || web.Protocol != "tcp" || web.Family != "inet" || web.Scheduler != "wlc" ||
		web.Forwarding != "nat" || web.Quorum != 1 || web.OnFailure != "remove" || !web.AlphaOn() || web.Line != 2 {
		t.Errorf("service defaults: %+v", web)
	}
	if web.PersistencePrefixLen() != 32 {
		t.Errorf("PersistencePrefixLen = %d, want 32", web.PersistencePrefixLen())
	}
	wantKey := config.ServiceKey{Family: "inet", Protocol: "tcp", VIP: netip.MustParseAddr("192.0.2.10"), Port: 80}
	if web.Key() != wantKey {
		t.Errorf("Key() = %+v, want %+v", web.Key(), wantKey)
	}

	rs1, rs2 := web.RealServers[0], web.RealServers[1]
	if rs1.Port != 80 || rs1.Weight != 1 || rs1.Forwarding != "nat" || rs1.Key() != "10.0.1.2:80" || rs1.Line != 9 {
		t.Errorf("realserver 1 defaults: %+v", rs1)
	}
	if rs2.Port != 8080 || rs2.Weight != 0 || rs2.Key() != "10.0.1.3:8080" || rs2.Address.Port != 0 {
		t.Errorf("realserver 2: explicit weight 0 and port from address: %+v", rs2)
	}

	// rs1 inherits the service's http check, on its own port; rs2 has
	// only its own tcp check.
	if len(rs1.Checks) != 1 || rs1.Checks[0] == web.Checks[0] {
		t.Fatalf("rs1 checks = %v, want a copy of the service's one", rs1.Checks)
	}
	c := rs1.Checks[0]
	if c.Type != "http" || c.Interval.Duration != 5*time.Second || c.Timeout.Duration != 2*time.Second ||
		c.Rise != 2 || c.Fall != 3 || c.Port != 80 || !c.Complete() {
		t.Errorf("check defaults: %+v", c)
	}
	h, ok := c.Settings.(*checks.HTTPSettings)
	if !ok || h.Method != "GET" || h.Path != "/" || strings.Join(h.ExpectStatus, ",") != "200-399" || h.MaxBody != 65536 {
		t.Errorf("http defaults: %+v", h)
	}
	if len(rs2.Checks) != 1 || rs2.Checks[0].Type != "tcp" || rs2.Checks[0].Port != 8081 || !isTCP(rs2.Checks[0]) {
		t.Errorf("rs2 checks = %+v", rs2.Checks)
	}

	dnsCheck := cfg.Services[1].RealServers[0].Checks[0].Settings.(*checks.DNSSettings)
	// A DNS check on a TCP service probes over TCP unless told otherwise.
	if dnsCheck.QueryName != "example.org." || dnsCheck.QueryType != "A" || dnsCheck.Transport != "tcp" || dnsCheck.ExpectRcode != "NOERROR" {
		t.Errorf("dns defaults: %+v", dnsCheck)
	}

	v := cfg.VRRP[0]
	if v.Priority != 100 || v.AdvertInterval.Duration != time.Second || !v.PreemptOn() || v.NotifyTimeout.Duration != 10*time.Second ||
		v.Checksum != "rfc5798" || v.GARPRepeat != 5 || v.VIPs[0].String() != "192.0.2.10/32" {
		t.Errorf("vrrp defaults: %+v", v)
	}
}

func isTCP(c *config.Check) bool {
	_, ok := c.Settings.(*checks.TCPSettings)
	return ok
}

// TestFull loads a file that sets every key and checks that explicit
// values, including explicit zeros and falses, survive the defaults.
func TestFull(t *testing.T) {
	cfg := mustLoad(t, "testdata/valid-full.toml")
	d := cfg.Director
	if d.MetricsListen != "" || d.OnExit != "flush" || !d.OwnAll || *d.ExpireNodestConn || *d.IPForward {
		t.Errorf("director: %+v", d)
	}
	// Explicit zeros switch the guard and two of its sources off.
	if g := d.EvictionGuard; g != (config.EvictionGuard{Threshold: 0, Window: config.Duration{5 * time.Second}, MaxHold: config.Duration{time.Minute},
		FDLimit: 0, MemoryLimit: 80, ChecksBehind: config.Duration{0}}) || g.On() {
		t.Errorf("eviction guard: %+v", g)
	}
	v := cfg.VRRP[0]
	if v.PreemptOn() || v.GARPRepeat != 0 || v.Checksum != "rfc9568" || v.Interface != "eth1" || len(v.VIPs) != 2 {
		t.Errorf("vrrp: %+v", v)
	}
	if s := v.Sync; s == nil || s.Interface != "eth3" || s.SyncID != 7 || s.Port != 8849 || s.Group.String() != "224.0.0.82" || s.TTL != 2 || s.MaxLen != 1400 {
		t.Errorf("sync: %+v", v.Sync)
	}
	if a := cfg.Announce; a.Device != "vips0" || a.BIRDSocket != "/run/bird/other.ctl" || len(a.TrackVRRP) != 1 || !cfg.Service("ldap").Announce {
		t.Errorf("announce: %+v", a)
	}
	bdii := cfg.Service("bdii")
	if bdii.AlphaOn() || bdii.PersistencePrefixLen() != 24 || bdii.SorryServer.String() != "10.0.9.9:2170" || bdii.Quorum != 2 {
		t.Errorf("bdii: %+v", bdii)
	}
	ldapCheck := bdii.Checks[0].Settings.(*checks.LDAPSettings)
	if ldapCheck.Filter != "(|(objectClass=GlueService)(objectClass=GLUE2Service))" || ldapCheck.ExpectEntries != 0 || ldapCheck.SizeLimit != 10 {
		t.Errorf("ldap: %+v", ldapCheck)
	}
	rs := bdii.RealServers[0]
	if len(rs.Checks) != 3 || strings.Join(rs.Checks[0].Settings.(*checks.HTTPSettings).ExpectStatus, ",") != "200,301-302" ||
		!rs.Checks[2].Settings.(*checks.ExecSettings).DynamicWeight || rs.Forwarding != "tun" {
		t.Errorf("realserver: %+v", rs)
	}
	dnsCheck := cfg.Service("dns").Checks[0].Settings.(*checks.DNSSettings)
	if dnsCheck.QueryType != "AAAA" || dnsCheck.ExpectRcode != "NXDOMAIN" || dnsCheck.Transport != "tcp" || dnsCheck.ExpectAnswer != "2001:db8::1" {
		t.Errorf("dns: %+v", dnsCheck)
	}
}

func TestFWMarkAndIPv6(t *testing.T) {
	cfg := mustLoad(t, "testdata/valid-fwmark-ipv6.toml")
	m := cfg.Services[0]
	if m.Key() != (config.ServiceKey{FWMark: 10, Family: "inet6"}) || m.Key().String() != "fwmark/10/inet6" || m.PersistencePrefixLen() != 64 {
		t.Errorf("fwmark service: %+v key %v", m, m.Key())
	}
	if m.RealServers[0].Port != 0 || m.RealServers[0].Checks[0].Port != 443 || m.RealServers[1].Key() != "[2001:db8::3]:443" {
		t.Errorf("fwmark real servers: %+v %+v", m.RealServers[0], m.RealServers[1])
	}
	if got := cfg.Services[1].Key().String(); got != "tcp/[2001:db8::10]:80" {
		t.Errorf("key = %s", got)
	}
}

func TestInline(t *testing.T) {
	cfg := mustLoad(t, "testdata/valid-inline.toml")
	s := cfg.Services[0]
	if s.RealServers[1].Weight != 3 || len(s.RealServers[1].Checks) != 1 || cfg.VRRP[0].Interface != "eth0" || s.Line != 5 {
		t.Errorf("inline config: %+v", s)
	}
}

// TestErrorValues checks that callers can take errors apart.
func TestErrorValues(t *testing.T) {
	_, err := config.Parse("x.toml", []byte("[director]\non_exit = \"no\"\n"))
	var fe *config.Error
	if !errors.As(err, &fe) || fe.File != "x.toml" || fe.Line != 2 || fe.Path != "director.on_exit" {
		t.Fatalf("errors.As: %#v", fe)
	}
	if _, err := config.Load("testdata/does-not-exist.toml"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}
}

// TestLines pins the line finder on the TOML forms that could throw it
// off: multi-line strings, multi-line arrays, comments, quoted and dotted
// keys, and tables reopened under an array of tables.
func TestLines(t *testing.T) {
	src := `# comment with key = "x"
[[service]]
name = "a"
vip = "192.0.2.1"
port = 80
  [[service.check]]
  type = "tcp"
  send = """
bogus = 1
[[service]]
"""
  expect = '''
x'''
  [[service.check]]
  type = "tcp"
  "fall" = 0

[[service]]
name = "b"
vip = "192.0.2.2"
port = 80
sched_flags = [
  "a",
  # comment ]
  "b",
]
check.type = "tcp"
`
	_, err := config.Parse("l.toml", []byte(src))
	want := `l.toml:16: service[a].check[2].fall: must be at least 1, not 0
l.toml:22: service[b].sched_flags: only for the sh and mh schedulers
l.toml:27: service[b].check: must be an array of tables, not a table`
	if err == nil || err.Error() != want {
		t.Errorf("got\n%v\nwant\n%s", err, want)
	}
}

// TestCRLF: files edited on Windows keep their line numbers.
func TestCRLF(t *testing.T) {
	src := "[[service]]\r\nname = \"a\"\r\nvip = \"192.0.2.1\"\r\nport = 80\r\nscheduler = \"x\"\r\n"
	_, err := config.Parse("w.toml", []byte(src))
	want := `w.toml:5: service[a].scheduler: invalid value "x" (want rr, wrr, lc, wlc, lblc, lblcr, dh, sh, mh, sed, nq, fo or ovf)`
	if err == nil || err.Error() != want {
		t.Errorf("got %v, want %s", err, want)
	}
}
