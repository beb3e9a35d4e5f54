package status

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/lvsd/lvsd/anycast"
)

// TestWriteText renders a report with every flag the table can show.
func TestWriteText(t *testing.T) {
	at := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	r := Report{Node: "lvs-a", Config: "/etc/lvsd/lvsd.toml", Version: "v1", LastReload: at,
		ReloadErr: "lvsd.toml:3: weight: want an integer",
		VRRP: []Instance{{Name: "vi1", VRID: 51, Interface: "eth0", State: "backup", Priority: 150, MasterPriority: 100,
			VIPs: []string{"192.0.2.10/32"}, PreemptHeld: true},
			{Name: "ka", VRID: 52, Interface: "eth0", State: "master", Priority: 100, MasterPriority: 100,
				VIPs: []string{"192.0.2.11/32"}, Version: 2, AuthPass: true}},
		Services: []Service{
			{Name: "web", Address: "tcp/192.0.2.10:80", Scheduler: "wlc", InKernel: true, RealServers: []RealServer{
				{Address: "10.0.0.1:80", Health: "up", Weight: 5, KernelWeight: 0, Drained: true, Latency: 1234567 * time.Nanosecond, Reason: "ok: 200"},
				{Address: "10.0.0.2:80", Health: "down", Weight: 5, KernelWeight: 5, HeldByGuard: true, Reason: "timeout: connect"},
			}},
			{Name: "dns", Address: "udp/192.0.2.10:53", Scheduler: "rr", SorryActive: true},
		},
		EvictionGuard: &Guard{On: true, Fault: "fds: 1010 of 1024", FaultSince: at,
			Held: []HeldCheck{{Service: "web", RealServer: "10.0.0.2:80", Since: at, Until: at.Add(time.Minute), Reason: "timeout: connect", Why: "mass failure"}}},
		Announce: &anycast.Status{Device: "aa0", VIPs: []anycast.VIPStatus{{VIP: "192.0.2.20", Announced: true, Since: at, Services: []string{"aa"}, Reason: "serving: aa"}}},
	}
	var b strings.Builder
	WriteText(&b, r)
	out := b.String()
	for _, want := range []string{
		"lvsd v1 on lvs-a, config /etc/lvsd/lvsd.toml, last reload 2026-05-01T12:00:00Z (FAILED: lvsd.toml:3: weight: want an integer)\n",
		"EVICTION GUARD\n  lvsd is in trouble since 2026-05-01T12:00:00Z: fds: 1010 of 1024\n  holding 1 failed checks",
		"ANNOUNCED VIPS (device aa0)",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("no %q in:\n%s", want, out)
		}
	}
	for _, row := range [][]string{
		{"vi1", "51", "eth0", "backup", "(no", "preempt", "until", "first", "checks)", "150", "100", "-", "192.0.2.10/32"},
		{"ka", "52", "eth0", "master", "100", "100", "v2", "auth_pass", "(clear", "text)", "192.0.2.11/32"},
		{"web/10.0.0.2:80", "12:00:00", "12:01:00", "timeout:", "connect", "mass", "failure"},
		{"192.0.2.20", "announced", "2026-05-01T12:00:00Z", "aa", "serving:", "aa"},
		{"web", "tcp/192.0.2.10:80", "wlc"},
		{"->", "10.0.0.1:80", "up,drained", "5", "0", "0", "0", "1.23ms", "ok:", "200"},
		{"->", "10.0.0.2:80", "down,held", "5", "5", "0", "0", "-", "timeout:", "connect"},
		{"dns", "udp/192.0.2.10:53", "rr", "[not", "in", "kernel]", "[SORRY", "SERVER", "ACTIVE]"},
	} {
		if !hasRow(out, row) {
			t.Errorf("no row %q in:\n%s", row, out)
		}
	}
}

// The status table says when checks are behind their schedule, and by how much.
func TestWriteTextChecksBehind(t *testing.T) {
	var b strings.Builder
	WriteText(&b, Report{Node: "n", Checks: CheckSchedule{Checks: 2000, Behind: 12, BehindBy: 1234567 * time.Microsecond}})
	if want := "checks behind schedule: 12 of 2000, by up to 1.235s"; !strings.Contains(b.String(), want) {
		t.Errorf("lvsd status:\n%s\nwant a line %q", b.String(), want)
	}
	b.Reset()
	WriteText(&b, Report{Node: "n", Checks: CheckSchedule{Checks: 20}})
	if want := "checks behind schedule: 0 of 20\n"; !strings.Contains(b.String(), want) {
		t.Errorf("lvsd status:\n%s\nwant a line %q", b.String(), want)
	}
}

// hasRow says whether some line of text has exactly the fields of row.
func hasRow(text string, row []string) bool {
	for _, line := range strings.Split(text, "\n") {
		if slices.Equal(strings.Fields(line), row) {
			return true
		}
	}
	return false
}

// TestWriteTextListsTwentyHeld: the table lists 20 held checks and says
// how many more JSON has.
func TestWriteTextListsTwentyHeld(t *testing.T) {
	g := &Guard{On: true}
	for i := range 25 {
		g.Held = append(g.Held, HeldCheck{Service: "web", RealServer: fmt.Sprintf("10.0.0.%d:80", i)})
	}
	var b strings.Builder
	WriteText(&b, Report{EvictionGuard: g})
	out := b.String()
	if !strings.Contains(out, "web/10.0.0.19:80") || strings.Contains(out, "web/10.0.0.20:80") || !strings.Contains(out, "... and 5 more (lvsd status -json lists them all)") {
		t.Errorf("25 held checks:\n%s", out)
	}
}

func TestLookups(t *testing.T) {
	r := Report{Services: []Service{{Name: "a", RealServers: []RealServer{{Address: "10.0.0.1:80"}}},
		{Name: "b", RealServers: []RealServer{{Address: "10.0.0.1:80", Health: "down"}}}},
		VRRP: []Instance{{Name: "vi1", State: "master"}}}
	if s := r.Service("b"); s == nil || s.Name != "b" {
		t.Errorf("Service(b) = %v", s)
	}
	if rs := r.RealServer("b", "10.0.0.1:80"); rs == nil || rs.Health != "down" {
		t.Errorf("RealServer(b, ...) = %v", rs)
	}
	if rs := r.RealServer("", "10.0.0.1:80"); rs == nil || rs.Health != "" {
		t.Errorf("RealServer of any service = %v, want a's", rs)
	}
	if r.RealServer("c", "10.0.0.1:80") != nil || r.Service("c") != nil || r.Instance("vi2") != nil {
		t.Error("a lookup of something absent found it")
	}
	if v := r.Instance("vi1"); v == nil || v.State != "master" {
		t.Errorf("Instance(vi1) = %v", v)
	}
}
