package daemon

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"testing"

	"github.com/lvsd/lvsd/anycast"
)

// announceDevice records what the daemon's announcer holds on its device.
type announceDevice struct {
	mu     sync.Mutex
	name   string
	held   []string
	opened bool
}

func (d *announceDevice) open(name string) (anycast.Device, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.name, d.opened, d.held = name, true, nil
	return d, nil
}

func (d *announceDevice) Set(_ context.Context, vips []netip.Prefix) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.held = nil
	for _, p := range vips {
		d.held = append(d.held, p.String())
	}
	return nil
}

func (d *announceDevice) Close() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.opened, d.held = false, nil
	return nil
}

func (d *announceDevice) holds() (bool, string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.opened, strings.Join(d.held, " ")
}

// announcedService is an active-active service on the lab's two servers.
// It uses nat (the loopback servers listen on ports of their own), which
// lvsd check warns about.
func announcedService(c labConfig, quorum int) string {
	return fmt.Sprintf(`
[announce]
device = "aa0"
bird_socket = ""

[[service]]
name = "aa"
vip = "192.0.2.20"
port = 80
scheduler = "mh"
announce = true
quorum = %d

  [[service.check]]
  type = "http"
  interval = "100ms"
  timeout = "90ms"
  rise = 1
  fall = 3
  path = "/health"

  [[service.realserver]]
  address = %q

  [[service.realserver]]
  address = %q
`, quorum, c.Good, c.Bad)
}

// The whole daemon: the announced VIP appears on the device once the
// service has quorum in the kernel table, its failed server stays in the
// table at weight 0, status says why the VIP is or is not announced, a
// reload that raises quorum withdraws it, and stopping lvsd closes the
// device.
func TestDaemonAnnouncesWhileTheServiceHasQuorum(t *testing.T) {
	dev := &announceDevice{}
	c := newLabConfig(t)
	c.Extra = announcedService(c, 1)
	l := startLab(t, c, WithAnnounceDevice(dev.open))
	l.eventually("vip on the announce device", func() error {
		if open, held := dev.holds(); !open || held != "192.0.2.20/32" {
			return fmt.Errorf("device open %v, holds %q", open, held)
		}
		return nil
	})
	if dev.name != "aa0" {
		t.Errorf("device name %q", dev.name)
	}
	l.steady(c)
	// Both services share the two servers: the announced one keeps the
	// failing server in the table, at weight 0, in its place.
	svcs, _ := l.ipvs.Dump(context.Background())
	var aa []string
	for _, s := range svcs {
		if s.Key.Addr.String() == "192.0.2.20" {
			for _, d := range s.Dests {
				aa = append(aa, fmt.Sprintf("%s=%d", d.Addr, d.Weight))
			}
		}
	}
	if want := []string{c.Good + "=1", c.Bad + "=0"}; fmt.Sprint(aa) != fmt.Sprint(want) && fmt.Sprint(aa) != fmt.Sprint([]string{want[1], want[0]}) {
		t.Errorf("announced service's kernel dests %v, want %v", aa, want)
	}

	st := l.status()
	if st.Announce == nil || len(st.Announce.VIPs) != 1 {
		t.Fatalf("status: announce = %+v", st.Announce)
	}
	if v := st.Announce.VIPs[0]; !v.Announced || v.Reason != "serving: aa" || v.VIP != "192.0.2.20" || st.Announce.Device != "aa0" {
		t.Errorf("status vip: %+v", v)
	}
	if out := l.statusTable(); !strings.Contains(out, "ANNOUNCED VIPS (device aa0)") || !strings.Contains(out, "192.0.2.20  announced") {
		t.Errorf("the status table lacks the announced vip:\n%s", out)
	}
	if s := l.scrape(); s.value("lvsd_announce_vip_announced", "vip", "192.0.2.20") != 1 {
		t.Errorf("lvsd_announce_vip_announced = %v", s.value("lvsd_announce_vip_announced", "vip", "192.0.2.20"))
	}
	if !strings.Contains(l.logs.String(), "service[aa].forwarding: nat replies must return") {
		t.Errorf("the nat warning was not logged at start")
	}

	// Quorum 2 with one healthy server: withdrawn, and status says why.
	c.Extra = announcedService(c, 2)
	l.write(c.render(t))
	l.reload()
	l.eventually("vip withdrawn", func() error {
		if _, held := dev.holds(); held != "" {
			return fmt.Errorf("device holds %q", held)
		}
		return nil
	})
	if v := l.status().Announce.VIPs[0]; v.Announced || v.Reason != "aa: below quorum: 1 of 2 real servers up, quorum 2" {
		t.Errorf("after quorum 2: %+v", v)
	}

	l.shutdown()
	if open, _ := dev.holds(); open {
		t.Error("device still open after lvsd stopped")
	}
}
