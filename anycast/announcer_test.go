package anycast

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/lvsd/lvsd/config"
)

type fakeDirector struct {
	mu    sync.Mutex
	ready map[string]string // service -> "" ready, else why not
}

func (f *fakeDirector) Ready(s string) (bool, string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	why, ok := f.ready[s]
	if !ok {
		return false, "not configured"
	}
	return why == "", why
}

func (f *fakeDirector) set(s, why string) {
	f.mu.Lock()
	f.ready[s] = why
	f.mu.Unlock()
}

// fakeDevice records what the announcer put on it.
type fakeDevice struct {
	name   string
	mu     *sync.Mutex
	held   []string
	closed bool
	fail   error
}

func (d *fakeDevice) Set(_ context.Context, vips []netip.Prefix) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.fail != nil {
		return d.fail
	}
	d.held = nil
	for _, p := range vips {
		d.held = append(d.held, p.String())
	}
	return nil
}

func (d *fakeDevice) Close() error {
	d.mu.Lock()
	d.closed = true
	d.mu.Unlock()
	return nil
}

type devices struct {
	mu      sync.Mutex
	opened  []*fakeDevice
	openErr error
}

func (ds *devices) open(name string) (Device, error) {
	ds.mu.Lock()
	defer ds.mu.Unlock()
	if ds.openErr != nil {
		return nil, ds.openErr
	}
	d := &fakeDevice{name: name, mu: &ds.mu}
	ds.opened = append(ds.opened, d)
	return d, nil
}

// current is what the device lvsd holds now announces ("" when there is
// no open device), and its name.
func (ds *devices) current() (name, held string) {
	ds.mu.Lock()
	defer ds.mu.Unlock()
	for _, d := range ds.opened {
		if !d.closed {
			return d.name, strings.Join(d.held, " ")
		}
	}
	return "", ""
}

func parse(t *testing.T, src string) *config.Config {
	t.Helper()
	cfg, err := config.Parse("aa.toml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

const twoVIPs = `
[announce]
bird_socket = ""

[[vrrp]]
name = "inner"
vrid = 9
interface = "eth1"
vips = ["10.1.0.254/24"]

[[service]]
name = "web"
vip = "192.0.2.10"
port = 80
scheduler = "mh"
forwarding = "dr"
announce = true

[[service]]
name = "dns"
vip = "192.0.2.53"
port = 53
protocol = "udp"
scheduler = "mh"
forwarding = "dr"
announce = true
`

type rig struct {
	a    *Announcer
	dir  *fakeDirector
	devs *devices
	stop func()
	done chan error
}

func startRig(t *testing.T, cfg *config.Config) *rig {
	r := &rig{dir: &fakeDirector{ready: map[string]string{}}, devs: &devices{}, done: make(chan error, 1)}
	r.a = New(cfg, Options{Director: r.dir, OpenDevice: r.devs.open})
	ctx, cancel := context.WithCancel(context.Background())
	r.stop = cancel
	go func() { r.done <- r.a.Run(ctx) }()
	synctest.Wait()
	return r
}

func (r *rig) poke() {
	r.a.Trigger()
	synctest.Wait()
}

func (r *rig) reasons() string {
	var out []string
	for _, v := range r.a.VIPs() {
		state := "withdrawn"
		if v.Announced {
			state = "announced"
		}
		out = append(out, v.VIP+" "+state+" ("+v.Reason+")")
	}
	return strings.Join(out, "; ")
}

func TestAnnouncerFollowsReadiness(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := startRig(t, parse(t, twoVIPs))
		if name, held := r.devs.current(); name != "lvsd-anycast" || held != "" {
			t.Errorf("nothing ready: device %q holds %q, want lvsd-anycast holding nothing", name, held)
		}
		if got := r.reasons(); got != "192.0.2.10 withdrawn (web: not configured); 192.0.2.53 withdrawn (dns: not configured)" {
			t.Errorf("reasons: %s", got)
		}
		r.dir.set("web", "")
		r.dir.set("dns", "below quorum: 0 of 1 real servers up, quorum 1")
		r.poke()
		if _, held := r.devs.current(); held != "192.0.2.10/32" {
			t.Errorf("web ready: device holds %q", held)
		}
		if got := r.reasons(); got != "192.0.2.10 announced (serving: web); 192.0.2.53 withdrawn (dns: below quorum: 0 of 1 real servers up, quorum 1)" {
			t.Errorf("reasons: %s", got)
		}
		since := r.a.VIPs()[0].Since
		time.Sleep(time.Minute)
		r.dir.set("dns", "")
		r.poke()
		if _, held := r.devs.current(); held != "192.0.2.10/32 192.0.2.53/32" {
			t.Errorf("both ready: device holds %q", held)
		}
		if v := r.a.VIPs(); !v[0].Since.Equal(since) || !v[1].Since.After(since) {
			t.Errorf("since: web %v (want unchanged %v), dns %v", v[0].Since, since, v[1].Since)
		}
		r.dir.set("web", "below quorum: 1 of 3 real servers up, quorum 2")
		r.poke()
		if _, held := r.devs.current(); held != "192.0.2.53/32" {
			t.Errorf("web lost quorum: device holds %q", held)
		}

		// Stopping withdraws everything: the device goes.
		r.stop()
		if err := <-r.done; !errors.Is(err, context.Canceled) {
			t.Errorf("Run: %v", err)
		}
		if name, _ := r.devs.current(); name != "" {
			t.Errorf("after stop, device %s still open", name)
		}
		if got := r.reasons(); got != "192.0.2.10 withdrawn (lvsd stopped); 192.0.2.53 withdrawn (lvsd stopped)" {
			t.Errorf("after stop: %s", got)
		}
	})
}

func TestAnnouncerTracksVRRP(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cfg := parse(t, strings.Replace(twoVIPs, `bird_socket = ""`, "bird_socket = \"\"\ntrack_vrrp = [\"inner\"]", 1))
		r := startRig(t, cfg)
		defer r.stop()
		r.dir.set("web", "")
		r.dir.set("dns", "")
		r.poke()
		if _, held := r.devs.current(); held != "" {
			t.Errorf("tracked instance not started: device holds %q", held)
		}
		r.a.SetVRRP("inner", "backup")
		synctest.Wait()
		if _, held := r.devs.current(); held != "192.0.2.10/32 192.0.2.53/32" {
			t.Errorf("tracked instance backup: device holds %q", held)
		}
		r.a.SetVRRP("inner", "fault")
		synctest.Wait()
		if got := r.reasons(); got != "192.0.2.10 withdrawn (vrrp[inner] is fault); 192.0.2.53 withdrawn (vrrp[inner] is fault)" {
			t.Errorf("tracked instance in fault: %s", got)
		}
	})
}

func TestAnnouncerReloads(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := startRig(t, parse(t, twoVIPs))
		defer r.stop()
		r.dir.set("web", "")
		r.dir.set("dns", "")
		r.poke()
		// A new device name: the old device goes, the new one announces.
		r.a.Update(parse(t, strings.Replace(twoVIPs, `bird_socket = ""`, "bird_socket = \"\"\ndevice = \"vips1\"", 1)))
		synctest.Wait()
		if name, held := r.devs.current(); name != "vips1" || held != "192.0.2.10/32 192.0.2.53/32" {
			t.Errorf("renamed: %q holds %q", name, held)
		}
		// dns no longer announced: gone from the device and from status.
		r.a.Update(parse(t, strings.Replace(twoVIPs, "port = 53\nprotocol = \"udp\"\nscheduler = \"mh\"\nforwarding = \"dr\"\nannounce = true", "port = 53\nprotocol = \"udp\"", 1)))
		synctest.Wait()
		if _, held := r.devs.current(); held != "192.0.2.10/32" {
			t.Errorf("dns unannounced: device holds %q", held)
		}
		if v := r.a.VIPs(); len(v) != 1 || v[0].VIP != "192.0.2.10" {
			t.Errorf("status after dropping dns: %+v", v)
		}
		// Nothing announced: no device at all.
		r.a.Update(parse(t, "[[service]]\nvip = \"192.0.2.10\"\nport = 80\n"))
		synctest.Wait()
		if name, _ := r.devs.current(); name != "" {
			t.Errorf("nothing announced, device %q still open", name)
		}
	})
}

// A device lvsd cannot open is a reason, shown per VIP, and retried.
func TestAnnouncerDeviceErrors(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := &rig{dir: &fakeDirector{ready: map[string]string{"web": "", "dns": ""}}, devs: &devices{openErr: errors.New("device lvsd-anycast: held by another process")}}
		r.a = New(parse(t, twoVIPs), Options{Director: r.dir, OpenDevice: r.devs.open, Repair: time.Second})
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		go r.a.Run(ctx)
		synctest.Wait()
		if got := r.reasons(); got != "192.0.2.10 withdrawn (device lvsd-anycast: held by another process); 192.0.2.53 withdrawn (device lvsd-anycast: held by another process)" {
			t.Errorf("open failed: %s", got)
		}
		r.devs.mu.Lock()
		r.devs.openErr = nil
		r.devs.mu.Unlock()
		time.Sleep(time.Second) // the repair tick retries
		synctest.Wait()
		if _, held := r.devs.current(); held != "192.0.2.10/32 192.0.2.53/32" {
			t.Errorf("after the repair tick: device holds %q", held)
		}
	})
}

func TestAnnouncerMetrics(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := startRig(t, parse(t, twoVIPs))
		defer r.stop()
		reg := prometheus.NewPedanticRegistry()
		if err := r.a.Register(reg); err != nil {
			t.Fatal(err)
		}
		r.dir.set("web", "")
		r.poke()
		r.dir.set("web", "down")
		r.poke()
		r.dir.set("web", "")
		r.poke()
		want := `lvsd_announce_transitions_total{to="announced",vip="192.0.2.10"} 2
lvsd_announce_transitions_total{to="withdrawn",vip="192.0.2.10"} 1
lvsd_announce_vip_announced{vip="192.0.2.10"} 1
lvsd_announce_vip_announced{vip="192.0.2.53"} 0`
		if got := gather(t, reg, "lvsd_announce_"); got != want {
			t.Errorf("metrics:\n%s\nwant\n%s", got, want)
		}
	})
}

func TestMetricsAskBIRD(t *testing.T) {
	b := fakeBIRD(t, map[string]string{"show protocols": "protocols-router.txt", "show route export d1": "route-export-three.txt"})
	cfg := parse(t, strings.Replace(twoVIPs, `bird_socket = ""`, `bird_socket = "`+b.Socket+`"`, 1))
	a := New(cfg, Options{Director: &fakeDirector{}})
	reg := prometheus.NewPedanticRegistry()
	if err := a.Register(reg); err != nil {
		t.Fatal(err)
	}
	want := `lvsd_bgp_exported_routes{protocol="d1"} 3
lvsd_bgp_exported_routes{protocol="d2"} 0
lvsd_bgp_session_up{protocol="d1"} 1
lvsd_bgp_session_up{protocol="d2"} 0
lvsd_bird_up 1`
	if got := gather(t, reg, "lvsd_b"); got != want {
		t.Errorf("metrics:\n%s\nwant\n%s", got, want)
	}
	st := a.Status(context.Background())
	if st.BIRDError != "" || len(st.Sessions) != 2 || st.Sessions[1].BGPState != "Active" ||
		!slices.Equal(st.Sessions[0].Exported, []string{"192.0.2.11/32", "198.51.100.7/32", "192.0.2.10/32"}) {
		t.Errorf("status: %+v", st)
	}
	// BIRD gone: lvsd_bird_up 0, and status says why.
	a.Update(parse(t, strings.Replace(twoVIPs, `bird_socket = ""`, `bird_socket = "/nonexistent/bird.ctl"`, 1)))
	if got := gather(t, reg, "lvsd_b"); got != "lvsd_bird_up 0" {
		t.Errorf("BIRD gone: %s", got)
	}
	if st := a.Status(context.Background()); !strings.Contains(st.BIRDError, "no such file") {
		t.Errorf("BIRD gone: status error %q", st.BIRDError)
	}
}

// gather renders the series whose names start with prefix as
// `name{label="value",...} value` lines, sorted.
func gather(t *testing.T, reg *prometheus.Registry, prefix string) string {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	for _, mf := range mfs {
		if !strings.HasPrefix(mf.GetName(), prefix) {
			continue
		}
		for _, m := range mf.GetMetric() {
			var ls []string
			for _, l := range m.GetLabel() {
				ls = append(ls, l.GetName()+"=\""+l.GetValue()+"\"")
			}
			name := mf.GetName()
			if len(ls) > 0 {
				name += "{" + strings.Join(ls, ",") + "}"
			}
			v := m.GetGauge().GetValue() + m.GetCounter().GetValue()
			lines = append(lines, fmt.Sprintf("%s %g", name, v))
		}
	}
	slices.Sort(lines)
	return strings.Join(lines, "\n")
}
