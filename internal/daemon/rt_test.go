package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lvsd/lvsd/config"
	"github.com/lvsd/lvsd/director"
	"github.com/lvsd/lvsd/vrrp"
)

// refuseRT is a kernel that allows no real-time priority (no CAP_SYS_NICE
// and RLIMIT_RTPRIO 0; vrrp's TestRTPriorityRefused makes that for real).
func refuseRT(p int) error {
	if p == 0 {
		return nil
	}
	return fmt.Errorf("real-time priority %d: %w", p, vrrp.ErrRTNotPermitted)
}

func withRTPriority(text string, p int) string {
	return strings.Replace(text, "name = \"lab-node\"\n", fmt.Sprintf("name = \"lab-node\"\nvrrp_rt_priority = %d\n", p), 1)
}

// TestRTPriorityRefusedAtStart: lvsd refuses to start, with an error that
// names the file and the key, when the VRRP thread may not have the
// real-time priority the config asks for.
func TestRTPriorityRefusedAtStart(t *testing.T) {
	c := newLabConfig(t)
	path := filepath.Join(c.Dir, "lvsd.toml")
	if err := os.WriteFile(path, []byte(withRTPriority(c.render(t), 10)), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	_, err = New(cfg, WithLogger(slog.New(slog.DiscardHandler)), WithIPVS(director.NewFake()),
		WithAddresses(&fakeAddrs{}), WithoutHostSetup(), WithRTCheck(refuseRT))
	if err == nil || !errors.Is(err, vrrp.ErrRTNotPermitted) || !strings.Contains(err.Error(), path+": director.vrrp_rt_priority = 10") {
		t.Fatalf("New = %v; want a refusal naming %s and director.vrrp_rt_priority = 10", err, path)
	}
}

// TestRTPriorityRefusedOnReload: a reload asking for a real-time priority
// the kernel refuses is rejected as a whole, naming the key, and the
// running config stays.
func TestRTPriorityRefusedOnReload(t *testing.T) {
	c := newLabConfig(t)
	l := startLab(t, c, WithRTCheck(refuseRT))
	l.steady(c)
	text := c.render(t)
	l.write(withRTPriority(strings.Replace(text, "weight = 5", "weight = 6", 1), 20))
	err := l.client().Reload(context.Background())
	if err == nil || !strings.Contains(err.Error(), "director.vrrp_rt_priority = 20") || !strings.Contains(err.Error(), "CAP_SYS_NICE") {
		t.Fatalf("reload: %v; want a rejection naming director.vrrp_rt_priority = 20", err)
	}
	if got := l.d.config(); got.Director.VRRPRTPriority != 0 || got.Services[0].RealServers[0].Weight != 5 {
		t.Errorf("the rejected reload changed the running config: priority %d, weight %d", got.Director.VRRPRTPriority, got.Services[0].RealServers[0].Weight)
	}
	l.write(text)
}
