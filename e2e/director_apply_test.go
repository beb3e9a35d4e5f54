package e2e

// `lvsd apply` and `lvsd plan` against the real kernel: the same reconciler
// as the daemon, driven from a TOML file.

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lvsd/lvsd/e2e/lab"
)

const applyConfig = `
[director]
interface = "eth0"

[[service]]
name = "web"
vip = "10.0.7.100"
port = 80
scheduler = "rr"
[[service.realserver]]
address = "10.0.7.11"
weight = WEIGHT
[[service.realserver]]
address = "10.0.7.12"

[[service]]
name = "dns"
vip = "10.0.7.100"
port = 53
protocol = "udp"
on_failure = "drain"
[[service.realserver]]
address = "10.0.7.11"
`

func TestDirectorApplyPlan(t *testing.T) {
	lab.RequireIPVS(t)
	lvsd := lab.Bin(t, "lvsd")
	dir := lab.NewNS(t, "dir")
	dir.Link("add", "eth0", "type", "dummy")
	dir.Run("ip", "link", "set", "eth0", "up")
	dir.Addr("eth0", "10.0.7.1/24")
	tmp := t.TempDir()
	write := func(name, weight string) string {
		p := filepath.Join(tmp, name)
		if err := os.WriteFile(p, []byte(strings.Replace(applyConfig, "WEIGHT", weight, 1)), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	cfg1, cfg2 := write("a.toml", "1"), write("b.toml", "2")

	out := dir.Run(lvsd, "plan", "-config", cfg1)
	for _, want := range []string{"+ service tcp/10.0.7.100:80 (web) scheduler rr", "+ dest udp/10.0.7.100:53 (dns) -> 10.0.7.11:53 nat weight 1", "5 kernel ops"} {
		if !strings.Contains(out, want) {
			t.Errorf("plan lacks %q:\n%s", want, out)
		}
	}
	if tab := dir.Run("ipvsadm", "-Sn"); strings.TrimSpace(tab) != "" {
		t.Fatalf("plan changed the kernel:\n%s", tab)
	}
	if out := dir.Run(lvsd, "apply", "-config", cfg1); !strings.HasPrefix(out, "5 kernel ops") {
		t.Errorf("first apply: %s", out)
	}
	// The settings users forget, and the VIP no VRRP instance covers.
	for key, want := range map[string]string{"net/ipv4/vs/expire_nodest_conn": "1", "net/ipv4/vs/expire_quiescent_template": "1", "net/ipv4/ip_forward": "1"} {
		if got := strings.TrimSpace(dir.Run("cat", "/proc/sys/"+key)); got != want {
			t.Errorf("%s = %s, want %s", key, got, want)
		}
	}
	if addrs := dir.Run("ip", "-4", "addr", "show", "eth0"); !strings.Contains(addrs, "10.0.7.100/32") {
		t.Errorf("VIP not on eth0:\n%s", addrs)
	}
	if out := dir.Run(lvsd, "apply", "-config", cfg1); !strings.HasPrefix(out, "0 kernel ops") {
		t.Errorf("second apply: %s", out)
	}
	if out := dir.Run(lvsd, "plan", "-config", cfg2); !strings.Contains(out, "~ dest tcp/10.0.7.100:80 (web) -> 10.0.7.11:80 weight 1 -> 2") {
		t.Errorf("plan of one weight:\n%s", out)
	}
	if out := dir.Run(lvsd, "apply", "-config", cfg2); !strings.HasPrefix(out, "1 kernel ops (1 update_dest)") {
		t.Errorf("one-weight apply: %s", out)
	}
	// After ipvsadm -d, apply repairs and says so.
	dir.Run("ipvsadm", "-d", "-u", "10.0.7.100:53", "-r", "10.0.7.11:53")
	if out := dir.Run(lvsd, "apply", "-config", cfg2); !strings.HasPrefix(out, "1 kernel ops (1 new_dest)") {
		t.Errorf("repair apply: %s", out)
	}

	// A missing interface: a clear error and nothing changed.
	bad := filepath.Join(tmp, "bad.toml")
	os.WriteFile(bad, []byte(strings.Replace(strings.Replace(applyConfig, "WEIGHT", "5", 1), `interface = "eth0"`, `interface = "nosuch0"`, 1)), 0o644)
	before := dir.Run("ipvsadm", "-Sn")
	out, err := dir.Try(lvsd, "apply", "-config", bad)
	if err == nil || !strings.Contains(out, `interface "nosuch0": does not exist`) || !strings.Contains(out, "nothing changed") {
		t.Errorf("apply with a missing interface: %v\n%s", err, out)
	}
	if after := dir.Run("ipvsadm", "-Sn"); after != before {
		t.Errorf("failed apply changed the kernel:\n%s\n->\n%s", before, after)
	}
}
