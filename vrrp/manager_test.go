package vrrp

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lvsd/lvsd/config"
	"github.com/prometheus/client_golang/prometheus"
)

// vrrpConfig is one complete instance as config.Parse makes it: the
// Manager receives defaults filled and rules checked, never a bare struct.
func vrrpConfig(name string, vrid int, iface, vip string) config.VRRP {
	return parseVRRP(fmt.Sprintf("[[vrrp]]\nname = %q\nvrid = %d\ninterface = %q\nvips = [%q]\nsource_address = %q\n",
		name, vrid, iface, vip, addrMid))[0]
}

func parseVRRP(toml string) []config.VRRP {
	cfg, err := config.Parse("test.toml", []byte(toml))
	if err != nil {
		panic(fmt.Sprintf("test config does not parse: %v\n%s", err, toml))
	}
	return cfg.VRRP
}

// TestConfigGuardsTheManager: what the state machine relies on (VRID and
// priority ranges, interval in centiseconds, one family, unique names and
// VRIDs) is checked by config.Parse, the one place for rules; the Manager
// takes what it is given.
func TestConfigGuardsTheManager(t *testing.T) {
	base := "[[vrrp]]\nname = \"a\"\nvrid = 51\ninterface = \"eth0\"\n"
	tests := []struct {
		name, toml, want string
	}{
		{"vrid 0", "[[vrrp]]\nname = \"a\"\nvrid = 0\ninterface = \"eth0\"\nvips = [\"10.0.0.100/24\"]\n", "vrid: 0 out of range"},
		{"priority 255", base + "priority = 255\nvips = [\"10.0.0.100/24\"]\n", "priority: 255 out of range"},
		{"interval not in centiseconds", base + "advert_interval = \"15ms\"\nvips = [\"10.0.0.100/24\"]\n", "advert_interval"},
		{"checksum", base + "checksum = \"crc32\"\nvips = [\"10.0.0.100/24\"]\n", "checksum"},
		{"no vips", base, "at least one VIP"},
		{"mixed families", base + "vips = [\"10.0.0.100/24\", \"2001:db8::1/64\"]\n", "one VRRP instance carries one family"},
		{"peer family", base + "vips = [\"10.0.0.100/24\"]\nunicast_peers = [\"::1\"]\n", "unicast_peers"},
		{"duplicate vrid", base + "vips = [\"10.0.0.100/24\"]\n[[vrrp]]\nname = \"b\"\nvrid = 51\ninterface = \"eth0\"\nvips = [\"10.0.0.101/24\"]\n", "VRID 51 is already used"},
		{"duplicate name", base + "vips = [\"10.0.0.100/24\"]\n[[vrrp]]\nname = \"a\"\nvrid = 52\ninterface = \"eth0\"\nvips = [\"10.0.0.101/24\"]\n", "duplicate vrrp name"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := config.Parse("test.toml", []byte(tt.toml))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("config.Parse error %v, want one containing %q", err, tt.want)
			}
		})
	}
	// The same VRID on another interface, or for the other family, is fine.
	ok := []config.VRRP{vrrpConfig("a", 51, "eth0", "10.0.0.100/24"), vrrpConfig("b", 51, "eth1", "10.0.0.101/24")}
	if _, err := NewManager(ok, Options{Addresses: &fakeAddrs{}}); err != nil {
		t.Fatal(err)
	}
}

type fakeTransport struct {
	clock *fakeClock
	mu    sync.Mutex
	conns map[string]*fakeConn
	fail  int // Opens that fail before one works
}

func (f *fakeTransport) Open(iface string, src netip.Addr, multicast bool) (Conn, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fail > 0 {
		f.fail--
		return nil, fmt.Errorf("interface %s has no IPv6 link-local address yet", iface)
	}
	c := &fakeConn{clock: f.clock, src: src, closed: make(chan struct{})}
	f.conns[iface] = c
	return c, nil
}

type fakeLinks struct {
	mu     sync.Mutex
	report func(string, bool)
}

func (f *fakeLinks) Watch(ctx context.Context, ifaces []string, report func(string, bool)) error {
	f.mu.Lock()
	f.report = report
	f.mu.Unlock()
	for _, i := range ifaces {
		report(i, true)
	}
	return nil
}

func (f *fakeLinks) set(iface string, up bool) {
	f.mu.Lock()
	r := f.report
	f.mu.Unlock()
	r(iface, up)
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for end := time.Now().Add(5 * time.Second); !cond(); time.Sleep(time.Millisecond) {
		if time.Now().After(end) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

func states(m *Manager) string {
	var s []string
	for _, st := range m.Status() {
		s = append(s, st.Name+"="+st.State)
	}
	return strings.Join(s, " ")
}

// TestManager runs two instances (one per interface) through the Manager:
// both become master, a tracked service and a tracked link fault exactly
// the instances that track them, notify gets argv with instance, state and
// priority, and stopping resigns with priority 0 and removes the VIPs.
func TestManager(t *testing.T) {
	clock := newFakeClock()
	tr := &fakeTransport{clock: clock, conns: map[string]*fakeConn{}}
	links := &fakeLinks{}
	addrs := &fakeAddrs{held: map[netip.Prefix]bool{}}
	dir := t.TempDir()
	notifyLog := filepath.Join(dir, "notify.log")
	script := filepath.Join(dir, "notify.sh")
	if err := os.WriteFile(script, []byte("#!/bin/sh\necho \"$@\" >> "+notifyLog+"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	web := vrrpConfig("web", 51, "eth0", "10.0.0.100/24")
	web.TrackServices = []string{"http"}
	web.Notify = []string{script, "--flag"}
	db := vrrpConfig("db", 52, "eth1", "10.0.1.100/24")
	db.TrackInterfaces = []string{"eth2"}
	var mu sync.Mutex
	var changes []StateChange
	reg := prometheus.NewRegistry()
	m, err := NewManager([]config.VRRP{web, db}, Options{
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Registerer: reg,
		Addresses: addrs, Clock: clock, Transport: tr, Announcer: &fakeAnnouncer{clock: clock}, Links: links,
		OwnAddress: func(netip.Addr) bool { return false },
		OnStateChange: func(c StateChange) {
			mu.Lock()
			changes = append(changes, c)
			mu.Unlock()
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- m.Run(ctx) }()
	waitUntil(t, "both backup", func() bool { return states(m) == "web=backup db=backup" })
	clock.Advance(4 * time.Second)
	if got := states(m); got != "web=master db=master" {
		t.Fatalf("after Master_Down_Interval: %s", got)
	}

	m.SetServiceDown("http", true)
	if got := states(m); got != "web=fault db=master" {
		t.Fatalf("http down: %s", got)
	}
	if a := tr.conns["eth0"].last(); a.ad.Priority != 0 {
		t.Errorf("faulted master's last advert has priority %d, want 0", a.ad.Priority)
	}
	m.SetServiceDown("http", false)
	clock.Advance(4 * time.Second)
	links.set("eth2", false)
	if got := states(m); got != "web=master db=fault" {
		t.Fatalf("eth2 down: %s", got)
	}
	links.set("eth2", true)
	clock.Advance(4 * time.Second)
	if got := states(m); got != "web=master db=master" {
		t.Fatalf("eth2 up: %s", got)
	}
	if err := m.Takeover("nope"); err == nil {
		t.Error("Takeover of an unknown instance succeeded")
	}

	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if addrs.holds() {
		t.Error("VIPs held after Run returned")
	}
	for iface, c := range tr.conns {
		if a := c.last(); a.ad.Priority != 0 {
			t.Errorf("%s: last advert priority %d, want 0 on shutdown", iface, a.ad.Priority)
		}
	}
	// Callbacks arrive in order per instance, ending with init.
	mu.Lock()
	var webSeq []string
	for _, c := range changes {
		if c.Instance == "web" {
			webSeq = append(webSeq, c.To.String())
		}
	}
	mu.Unlock()
	if got, want := strings.Join(webSeq, ","), "backup,master,fault,backup,master,init"; got != want {
		t.Errorf("web transitions %s, want %s", got, want)
	}
	out, err := os.ReadFile(notifyLog)
	if err != nil {
		t.Fatal(err)
	}
	wantNotify := "--flag web backup 100\n--flag web master 100\n--flag web fault 0\n--flag web backup 100\n--flag web master 100\n--flag web init 100\n"
	if string(out) != wantNotify {
		t.Errorf("notify calls:\n%s\nwant\n%s", out, wantNotify)
	}
	// Metrics are registered and track the state.
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, mf := range mfs {
		names[mf.GetName()] = true
	}
	for _, n := range []string{"lvsd_vrrp_state", "lvsd_vrrp_transitions_total", "lvsd_vrrp_adverts_sent_total", "lvsd_vrrp_master_priority"} {
		if !names[n] {
			t.Errorf("metric %s not registered", n)
		}
	}
}

func TestNotifyTimeout(t *testing.T) {
	c := vrrpConfig("slow", 51, "eth0", "10.0.0.100/24")
	// With sh -c the appended instance/state/priority become $0.., unused.
	c.Notify = []string{"/bin/sh", "-c", "sleep 30"}
	c.NotifyTimeout = config.Duration{Duration: 100 * time.Millisecond}
	var log strings.Builder
	m, err := NewManager([]config.VRRP{c}, Options{Addresses: &fakeAddrs{}, Logger: slog.New(slog.NewTextHandler(&log, nil))})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	m.runNotify(m.instances[0], StateChange{Instance: "slow", To: StateMaster, Priority: 100})
	// Far below the script's 30 s, so it proves the kill, and far above
	// 100 ms, so a loaded machine's slow fork and reap do not fail it
	// (1 s did: 1.3 s at a load of 18 on 2 cores).
	if d := time.Since(start); d < 100*time.Millisecond || d > 10*time.Second {
		t.Errorf("notify returned after %v, want the 100ms timeout to kill the command and its children", d)
	}
	if !strings.Contains(log.String(), "notify failed") {
		t.Errorf("timeout not logged: %s", log.String())
	}
}

// TestManagerWaitsForSocket: an instance that cannot open its socket at
// start (say its link-local address is still tentative) waits in Fault and
// joins when the retry succeeds, instead of stopping lvsd.
func TestManagerWaitsForSocket(t *testing.T) {
	clock := newFakeClock()
	tr := &fakeTransport{clock: clock, conns: map[string]*fakeConn{}, fail: 2}
	m, err := NewManager([]config.VRRP{vrrpConfig("vi1", 51, "eth0", "10.0.0.100/24")}, Options{
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Addresses: &fakeAddrs{held: map[netip.Prefix]bool{}},
		Clock: clock, Transport: tr, Announcer: &fakeAnnouncer{clock: clock}, Links: &fakeLinks{},
		OwnAddress: func(netip.Addr) bool { return false },
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- m.Run(ctx) }()
	waitUntil(t, "fault while the socket cannot open", func() bool { return states(m) == "vi1=fault" })
	waitUntil(t, "backup once it opens", func() bool { return states(m) == "vi1=backup" })
	clock.Advance(4 * time.Second)
	if got := states(m); got != "vi1=master" {
		t.Fatalf("after opening: %s", got)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
