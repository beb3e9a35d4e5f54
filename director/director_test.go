package director

import (
	"context"
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/lvsd/lvsd/config"
	"golang.org/x/sys/unix"
)

func addr(s string) config.Addr {
	ap, err := netip.ParseAddrPort(s)
	if err == nil {
		return config.Addr{IP: ap.Addr(), Port: int(ap.Port())}
	}
	return config.Addr{IP: netip.MustParseAddr(s)}
}

var no = new(bool)

// service builds a config service; reals are "ip:port" or "ip:port@weight".
func service(name, vip string, reals ...string) *config.Service {
	a := addr(vip)
	s := &config.Service{Name: name, VIP: config.Addr{IP: a.IP}, Port: a.Port, Protocol: "tcp", Scheduler: "wlc", Forwarding: "nat", Alpha: no}
	for _, r := range reals {
		w := 1
		if i := strings.IndexByte(r, '@'); i > 0 {
			w = int(r[i+1] - '0')
			r = r[:i]
		}
		ra := addr(r)
		s.RealServers = append(s.RealServers, &config.RealServer{Address: config.Addr{IP: ra.IP}, Port: ra.Port, Weight: w})
	}
	return s
}

func cfgOf(svcs ...*config.Service) *config.Config {
	return &config.Config{Services: svcs}
}

type harness struct {
	t    *testing.T
	fake *Fake
	d    *Director
	now  time.Time
}

func newHarness(t *testing.T, cfg *config.Config) *harness {
	t.Helper()
	h := &harness{t: t, fake: NewFake(), now: time.Unix(1000, 0)}
	d, err := New(cfg, h.fake, WithClock(func() time.Time { return h.now }))
	if err != nil {
		t.Fatal(err)
	}
	h.d = d
	return h
}

// pass runs one reconcile and returns the ops the fake saw.
func (h *harness) pass() (int, Result) {
	h.t.Helper()
	h.fake.ResetOps()
	res, err := h.d.Reconcile(context.Background())
	if err != nil {
		h.t.Fatalf("reconcile: %v", err)
	}
	return h.fake.TotalOps(), res
}

func (h *harness) settle() {
	h.t.Helper()
	h.pass()
	if n, _ := h.pass(); n != 0 {
		h.t.Fatalf("second pass made %d ops, want 0", n)
	}
}

// dests returns "addr=weight" of a service's kernel destinations.
func (h *harness) dests(vip string) string {
	h.t.Helper()
	tab, _ := h.fake.Dump(context.Background())
	a := addr(vip)
	for _, s := range tab {
		if s.Key.Addr == a.IP && int(s.Key.Port) == a.Port {
			var out []string
			for _, d := range s.Dests {
				out = append(out, d.Addr.String()+"="+itoa(d.Weight))
			}
			return strings.Join(out, " ")
		}
	}
	return "<no service>"
}

func itoa(i int) string { return strings.TrimSpace(strings.Repeat(" ", 0) + fmtInt(i)) }

func fmtInt(i int) string {
	if i < 0 {
		return "-" + fmtInt(-i)
	}
	if i < 10 {
		return string(rune('0' + i))
	}
	return fmtInt(i/10) + string(rune('0'+i%10))
}

func TestFirstPassThenIdle(t *testing.T) {
	h := newHarness(t, cfgOf(
		service("web", "192.0.2.1:80", "10.0.0.1:80@3", "10.0.0.2:80"),
		service("dns6", "[2001:db8::1]:53", "[2001:db8::10]:53"),
	))
	n, _ := h.pass()
	if n != 5 {
		t.Fatalf("first pass: %d ops, want 2 services + 3 dests", n)
	}
	if got := h.dests("192.0.2.1:80"); got != "10.0.0.1:80=3 10.0.0.2:80=1" {
		t.Fatalf("dests = %q", got)
	}
	if n, _ := h.pass(); n != 0 {
		t.Fatalf("idle pass made %d ops", n)
	}
}

func TestReloadMinimalOps(t *testing.T) {
	base := func() *config.Config {
		return cfgOf(service("web", "192.0.2.1:80", "10.0.0.1:80@3", "10.0.0.2:80@2"), service("b", "192.0.2.2:80", "10.0.0.3:80"))
	}
	for _, tc := range []struct {
		name   string
		change func(c *config.Config)
		want   map[OpKind]int
	}{
		{"one weight", func(c *config.Config) { c.Services[0].RealServers[1].Weight = 5 }, map[OpKind]int{OpUpdateDest: 1}},
		{"scheduler", func(c *config.Config) { c.Services[0].Scheduler = "rr" }, map[OpKind]int{OpUpdateService: 1}},
		{"add realserver", func(c *config.Config) {
			c.Services[1].RealServers = append(c.Services[1].RealServers, &config.RealServer{Address: addr("10.0.0.4"), Port: 80, Weight: 1})
		}, map[OpKind]int{OpNewDest: 1}},
		{"remove realserver", func(c *config.Config) { c.Services[0].RealServers = c.Services[0].RealServers[:1] }, map[OpKind]int{OpDelDest: 1}},
		{"forwarding", func(c *config.Config) { c.Services[1].RealServers[0].Forwarding = "tun" }, map[OpKind]int{OpUpdateDest: 1}},
		{"remove service", func(c *config.Config) { c.Services = c.Services[:1] }, map[OpKind]int{OpDelService: 1}},
		{"move vip", func(c *config.Config) { c.Services[1].VIP = addr("192.0.2.3") }, map[OpKind]int{OpDelService: 1, OpNewService: 1, OpNewDest: 1}},
		{"persistence", func(c *config.Config) {
			c.Services[0].Persistence = config.Duration{Duration: 300 * time.Second}
			c.Services[0].PersistenceNetmask = "255.255.255.0"
		}, map[OpKind]int{OpUpdateService: 1}},
		{"nothing", func(c *config.Config) {}, map[OpKind]int{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, base())
			h.settle()
			c := base()
			tc.change(c)
			if err := h.d.Update(c); err != nil {
				t.Fatal(err)
			}
			h.pass()
			got := h.fake.Ops()
			for k, v := range tc.want {
				if got[k] != v {
					t.Errorf("%s: %d ops, want %d (all: %v)", k, got[k], v, got)
				}
			}
			if h.fake.TotalOps() != sum(tc.want) {
				t.Errorf("total %d ops, want %d: %v", h.fake.TotalOps(), sum(tc.want), got)
			}
			if n, _ := h.pass(); n != 0 {
				t.Errorf("pass after reload made %d more ops", n)
			}
		})
	}
}

func sum(m map[OpKind]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}

func foreign() KernelService {
	return KernelService{
		Service: Service{Key: ServiceKey{Family: unix.AF_INET, Protocol: unix.IPPROTO_TCP, Addr: netip.MustParseAddr("198.51.100.1"), Port: 443}, Scheduler: "rr", Netmask: 32},
		Dests:   []Dest{{Addr: netip.MustParseAddrPort("10.9.9.9:443"), Weight: 1}},
	}
}

func TestOwnership(t *testing.T) {
	for _, ownAll := range []bool{false, true} {
		c := cfgOf(service("web", "192.0.2.1:80", "10.0.0.1:80"))
		c.Director.OwnAll = ownAll
		h := newHarness(t, c)
		h.fake.Mutate(func(tab map[ServiceKey]*KernelService) {
			f := foreign()
			tab[f.Key] = &f
		})
		h.pass()
		tab, _ := h.fake.Dump(context.Background())
		kept := len(tab) == 2
		if kept == ownAll {
			t.Errorf("own_all=%v: foreign service kept=%v", ownAll, kept)
		}
	}
}

func TestDriftRepair(t *testing.T) {
	for _, tc := range []struct {
		name   string
		break_ func(tab map[ServiceKey]*KernelService)
		drift  int
	}{
		{"flush", func(tab map[ServiceKey]*KernelService) { clear(tab) }, 5},
		{"delete service", func(tab map[ServiceKey]*KernelService) {
			for k, s := range tab {
				if s.Key.Port == 80 {
					delete(tab, k)
				}
			}
		}, 3},
		{"delete one dest", func(tab map[ServiceKey]*KernelService) {
			for _, s := range tab {
				if s.Key.Port == 80 {
					s.Dests = s.Dests[1:]
				}
			}
		}, 1},
		{"change weight", func(tab map[ServiceKey]*KernelService) {
			for _, s := range tab {
				s.Dests[0].Weight = 9
			}
		}, 2},
		{"foreign dest in our service", func(tab map[ServiceKey]*KernelService) {
			for _, s := range tab {
				if s.Key.Port == 53 {
					s.Dests = append(s.Dests, Dest{Addr: netip.MustParseAddrPort("10.7.7.7:53"), Weight: 1})
				}
			}
		}, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			web := service("web", "192.0.2.1:80", "10.0.0.1:80@3", "10.0.0.2:80")
			dns := service("dns", "192.0.2.1:53", "10.0.0.1:53")
			dns.Protocol = "udp"
			h := newHarness(t, cfgOf(web, dns))
			h.settle()
			before, _ := h.fake.Dump(context.Background())
			h.fake.Mutate(tc.break_)
			n, res := h.pass()
			if res.Drift != tc.drift || n != tc.drift {
				t.Errorf("drift %d, ops %d, want %d", res.Drift, n, tc.drift)
			}
			after, _ := h.fake.Dump(context.Background())
			if len(before) != len(after) || h.dests("192.0.2.1:80") != "10.0.0.1:80=3 10.0.0.2:80=1" {
				t.Errorf("not repaired: %v", after)
			}
			if _, res := h.pass(); res.Drift != 0 {
				t.Errorf("drift counted twice")
			}
		})
	}
}

func TestOnFailure(t *testing.T) {
	for _, tc := range []struct {
		name, onFailure, proto string
		conns                  int
		wantAfterFail          string
		wantAfterIdle          string
	}{
		{"remove", "remove", "tcp", 5, "10.0.0.2:80=1", "10.0.0.2:80=1"},
		{"drain with connections", "drain", "tcp", 5, "10.0.0.1:80=0 10.0.0.2:80=1", "10.0.0.2:80=1"},
		{"drain idle", "drain", "tcp", 0, "10.0.0.2:80=1", "10.0.0.2:80=1"},
		{"drain udp removes at once", "drain", "udp", 5, "10.0.0.2:80=1", "10.0.0.2:80=1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := service("web", "192.0.2.1:80", "10.0.0.1:80", "10.0.0.2:80")
			s.OnFailure, s.Protocol = tc.onFailure, tc.proto
			h := newHarness(t, cfgOf(s))
			h.settle()
			h.fake.Mutate(func(tab map[ServiceKey]*KernelService) {
				for _, ks := range tab {
					ks.Dests[0].ActiveConns = tc.conns
				}
			})
			h.d.SetHealth("web", "10.0.0.1:80", Health{Known: true, Healthy: false, Weight: -1})
			h.pass()
			if got := h.dests("192.0.2.1:80"); got != tc.wantAfterFail {
				t.Fatalf("after failure: %q, want %q", got, tc.wantAfterFail)
			}
			h.fake.Mutate(func(tab map[ServiceKey]*KernelService) {
				for _, ks := range tab {
					ks.Dests[0].ActiveConns = 0
				}
			})
			h.pass()
			if got := h.dests("192.0.2.1:80"); got != tc.wantAfterIdle {
				t.Fatalf("after connections ended: %q, want %q", got, tc.wantAfterIdle)
			}
			if n, _ := h.pass(); n != 0 {
				t.Fatalf("drained server re-added: %d ops", n)
			}
			h.d.SetHealth("web", "10.0.0.1:80", Health{Known: true, Healthy: true, Weight: -1})
			h.pass()
			if got := h.dests("192.0.2.1:80"); got != "10.0.0.1:80=1 10.0.0.2:80=1" {
				t.Fatalf("after restore: %q", got)
			}
		})
	}
}

func TestAlphaAndDynamicWeight(t *testing.T) {
	s := service("web", "192.0.2.1:80", "10.0.0.1:80@4", "10.0.0.2:80@4")
	s.Alpha = nil // default: start unknown
	h := newHarness(t, cfgOf(s))
	h.pass()
	if got := h.dests("192.0.2.1:80"); got != "" {
		t.Fatalf("unknown servers in table: %q", got)
	}
	h.d.SetHealth("web", "10.0.0.2:80", Health{Known: true, Healthy: true, Weight: 7})
	h.pass()
	if got := h.dests("192.0.2.1:80"); got != "10.0.0.2:80=7" {
		t.Fatalf("got %q", got)
	}
}

func TestOperatorDrainSurvivesReload(t *testing.T) {
	c := cfgOf(service("web", "192.0.2.1:80", "10.0.0.1:80@3", "10.0.0.2:80"))
	h := newHarness(t, c)
	h.settle()
	if err := h.d.Drain("web", "10.0.0.1:80", true); err != nil {
		t.Fatal(err)
	}
	if n, _ := h.pass(); n != 1 || h.dests("192.0.2.1:80") != "10.0.0.1:80=0 10.0.0.2:80=1" {
		t.Fatalf("drain: %d ops, %q", n, h.dests("192.0.2.1:80"))
	}
	c2 := cfgOf(service("web", "192.0.2.1:80", "10.0.0.1:80@3", "10.0.0.2:80@2"))
	if err := h.d.Update(c2); err != nil {
		t.Fatal(err)
	}
	h.pass()
	if got := h.dests("192.0.2.1:80"); got != "10.0.0.1:80=0 10.0.0.2:80=2" {
		t.Fatalf("after reload: %q", got)
	}
	if err := h.d.Drain("web", "10.9.9.9:80", true); err == nil {
		t.Fatal("drain of unknown server: no error")
	}
}

func TestQuorumSorryHysteresis(t *testing.T) {
	s := service("web", "192.0.2.1:80", "10.0.0.1:80", "10.0.0.2:80", "10.0.0.3:80", "10.0.0.4:80")
	s.Quorum, s.Hysteresis = 3, 1
	s.SorryServer = addr("10.0.0.99:8080")
	h := newHarness(t, cfgOf(s))
	h.settle()
	set := func(rs string, ok bool) {
		h.d.SetHealth("web", "10.0.0."+rs+":80", Health{Known: true, Healthy: ok, Weight: -1})
	}
	const sorry = "10.0.0.99:8080=1"
	steps := []struct {
		rs   string
		ok   bool
		want string
	}{
		{"1", false, "10.0.0.2:80=1 10.0.0.3:80=1 10.0.0.4:80=1"},
		{"2", false, "10.0.0.3:80=1 10.0.0.4:80=1"}, // 2 up: not below 3-1
		{"3", false, sorry}, // 1 up: lost
		{"3", true, sorry},  // 2 up: not yet 3+1
		{"2", true, sorry},  // 3 up: not yet 3+1
		{"1", true, "10.0.0.1:80=1 10.0.0.2:80=1 10.0.0.3:80=1 10.0.0.4:80=1"},
	}
	for i, st := range steps {
		set(st.rs, st.ok)
		h.pass()
		if got := h.dests("192.0.2.1:80"); got != st.want {
			t.Fatalf("step %d (%s up=%v): %q, want %q", i, st.rs, st.ok, got, st.want)
		}
	}
	for _, ss := range h.d.Status() {
		if !ss.QuorumUp || ss.SorryActive {
			t.Errorf("status: %+v", ss)
		}
	}
}

func TestSorryWithoutQuorum(t *testing.T) {
	s := service("web", "192.0.2.1:80", "10.0.0.1:80")
	s.SorryServer = addr("10.0.0.99")
	s.Alpha = nil
	h := newHarness(t, cfgOf(s))
	h.pass()
	if got := h.dests("192.0.2.1:80"); got != "10.0.0.99:80=1" {
		t.Fatalf("no server up: %q", got)
	}
	h.d.SetHealth("web", "10.0.0.1:80", Health{Known: true, Healthy: true, Weight: -1})
	h.pass()
	if got := h.dests("192.0.2.1:80"); got != "10.0.0.1:80=1" {
		t.Fatalf("server up: %q", got)
	}
}

func TestWarmup(t *testing.T) {
	s := service("web", "192.0.2.1:80", "10.0.0.1:80@9", "10.0.0.2:80")
	s.RealServers[0].Warmup = config.Duration{Duration: 8 * time.Second}
	h := newHarness(t, cfgOf(s))
	h.settle() // start: full weight at once, no warmup
	if got := h.dests("192.0.2.1:80"); got != "10.0.0.1:80=9 10.0.0.2:80=1" {
		t.Fatalf("start: %q", got)
	}
	h.d.SetHealth("web", "10.0.0.1:80", Health{Known: true, Healthy: false, Weight: -1})
	h.pass()
	h.d.SetHealth("web", "10.0.0.1:80", Health{Known: true, Healthy: true, Weight: -1})
	var weights []string
	for i := 0; i <= 5; i++ {
		_, res := h.pass()
		weights = append(weights, strings.Fields(h.dests("192.0.2.1:80"))[0])
		if i < 4 && res.NextStep.IsZero() {
			t.Fatalf("step %d: no next step while warming", i)
		}
		h.now = h.now.Add(2 * time.Second)
	}
	want := "10.0.0.1:80=1 10.0.0.1:80=3 10.0.0.1:80=5 10.0.0.1:80=7 10.0.0.1:80=9 10.0.0.1:80=9"
	if got := strings.Join(weights, " "); got != want {
		t.Fatalf("ramp %q, want %q", got, want)
	}
}

func TestPartialFailureKeepsGoing(t *testing.T) {
	h := newHarness(t, cfgOf(service("a", "192.0.2.1:80", "10.0.0.1:80"), service("b", "192.0.2.2:80", "10.0.0.2:80")))
	broken := true
	h.fake.FailOp = func(op Op) error {
		if broken && op.Kind == OpNewService && op.Service.Key.Addr == netip.MustParseAddr("192.0.2.1") {
			return unix.ENOENT // as for a scheduler module the kernel lacks
		}
		return nil
	}
	_, err := h.d.Reconcile(context.Background())
	if err == nil || !errors.Is(err, unix.ENOENT) {
		t.Fatalf("err = %v", err)
	}
	if h.fake.TotalOps() != 3 {
		t.Errorf("%d ops: the failed service's dest must be skipped, the other service applied", h.fake.TotalOps())
	}
	if got := h.dests("192.0.2.2:80"); got != "10.0.0.2:80=1" {
		t.Errorf("independent service not applied: %q", got)
	}
	broken = false
	h.pass()
	if got := h.dests("192.0.2.1:80"); got != "10.0.0.1:80=1" {
		t.Errorf("not retried: %q", got)
	}
}

func TestInvalidConfigChangesNothing(t *testing.T) {
	good := cfgOf(service("a", "192.0.2.1:80", "10.0.0.1:80"))
	h := newHarness(t, good)
	h.settle()
	for _, tc := range []struct {
		name, wantErr string
		mutate        func(*config.Service)
	}{
		{"family mix", "address family", func(s *config.Service) {
			s.RealServers = append(s.RealServers, &config.RealServer{Address: addr("2001:db8::1"), Port: 80, Weight: 1})
		}},
		{"bad netmask", "persistence_netmask", func(s *config.Service) {
			s.Persistence = config.Duration{Duration: time.Minute}
			s.PersistenceNetmask = "255.0.255.0"
		}},
		{"dr port", "cannot change the port", func(s *config.Service) { s.Forwarding = "dr"; s.RealServers[0].Port = 8080 }},
		{"bad on_failure", "on_failure", func(s *config.Service) { s.OnFailure = "explode" }},
		{"weight", "weight", func(s *config.Service) { s.RealServers[0].Weight = 70000 }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := service("a", "192.0.2.1:80", "10.0.0.1:80@2")
			tc.mutate(s)
			err := h.d.Update(cfgOf(s, service("b", "192.0.2.2:80", "10.0.0.2:80")))
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("err = %v, want %q", err, tc.wantErr)
			}
			if n, _ := h.pass(); n != 0 {
				t.Fatalf("rejected config made %d ops", n)
			}
		})
	}
}

func TestFwmarkAndFlags(t *testing.T) {
	fw := &config.Service{Name: "fw", FWMark: 7, Family: "inet6", Scheduler: "sh", SchedFlags: []string{"sh-fallback", "sh-port"},
		Persistence: config.Duration{Duration: 90 * time.Second}, PersistenceNetmask: "64", Alpha: no,
		RealServers: []*config.RealServer{{Address: addr("2001:db8::5"), Weight: 1, Forwarding: "dr"}}}
	sctp := service("sctp", "192.0.2.1:3868", "10.0.0.1:3868")
	sctp.Protocol, sctp.OnePacket = "sctp", true
	h := newHarness(t, cfgOf(fw, sctp))
	h.settle()
	tab, _ := h.fake.Dump(context.Background())
	if len(tab) != 2 {
		t.Fatalf("table: %+v", tab)
	}
	f := tab[1].Service
	if f.Key.FWMark != 7 || f.Key.Family != unix.AF_INET6 || f.Flags != FlagSched1|FlagSched2|FlagPersistent || f.Timeout != 90 || f.Netmask != 64 {
		t.Errorf("fwmark service: %+v", f)
	}
	if s := tab[0].Service; s.Key.Protocol != unix.IPPROTO_SCTP || s.Flags != FlagOnePacket {
		t.Errorf("sctp service: %+v", s)
	}
}

func TestOpStrings(t *testing.T) {
	k := ServiceKey{Family: unix.AF_INET, Protocol: unix.IPPROTO_TCP, Addr: netip.MustParseAddr("192.0.2.1"), Port: 80}
	d := Dest{Addr: netip.MustParseAddrPort("10.0.0.1:80"), Weight: 5}
	for _, tc := range []struct {
		op   Op
		want string
	}{
		{Op{Kind: OpNewService, Service: Service{Key: k, Scheduler: "wlc"}, Name: "web"}, "+ service tcp/192.0.2.1:80 (web) scheduler wlc"},
		{Op{Kind: OpUpdateDest, Service: Service{Key: k}, Dest: d, OldDest: Dest{Addr: d.Addr, Weight: 3}}, "~ dest tcp/192.0.2.1:80 -> 10.0.0.1:80 weight 3 -> 5"},
		{Op{Kind: OpDelDest, Service: Service{Key: k}, Dest: d}, "- dest tcp/192.0.2.1:80 -> 10.0.0.1:80"},
	} {
		if got := tc.op.String(); got != tc.want {
			t.Errorf("got %q, want %q", got, tc.want)
		}
	}
}

func TestNetmaskEncoding(t *testing.T) {
	for _, bits := range []int{1, 8, 24, 32} {
		if got := netmaskFromKernel(unix.AF_INET, netmaskToKernel(unix.AF_INET, bits)); got != bits {
			t.Errorf("/%d round trip = /%d", bits, got)
		}
	}
	// The kernel reads IPv4 masks as __be32: the u32's bytes must be the
	// mask's bytes in network order.
	v := netmaskToKernel(unix.AF_INET, 24)
	var b [4]byte
	b[0], b[1], b[2], b[3] = byte(v), byte(v>>8), byte(v>>16), byte(v>>24) // little-endian memory
	if b != [4]byte{255, 255, 255, 0} {
		t.Errorf("/24 encodes as %v", b)
	}
}

// A service renamed in the config (same kernel service) keeps its servers'
// health and drains: the reload makes no kernel op, where starting them
// unknown would pull the healthy one out of the table (alpha).
func TestRenamedServiceKeepsState(t *testing.T) {
	named := func(name string) *config.Config {
		s := service(name, "192.0.2.1:80", "10.0.0.1:80", "10.0.0.2:80", "10.0.0.3:80")
		s.Alpha = nil
		return cfgOf(s)
	}
	h := newHarness(t, named("web"))
	h.d.SetHealth("web", "10.0.0.1:80", Health{Known: true, Healthy: true, Weight: -1})
	h.d.SetHealth("web", "10.0.0.2:80", Health{Known: true, Healthy: true, Weight: -1})
	h.d.SetHealth("web", "10.0.0.3:80", Health{Known: true, Healthy: false, Weight: -1})
	if err := h.d.Drain("web", "10.0.0.2:80", true); err != nil {
		t.Fatal(err)
	}
	h.settle()
	before := h.dests("192.0.2.1:80")
	if err := h.d.Update(named("www")); err != nil {
		t.Fatal(err)
	}
	if n, _ := h.pass(); n != 0 {
		t.Errorf("renaming the service made %d kernel ops: %v", n, h.fake.Ops())
	}
	if after := h.dests("192.0.2.1:80"); after != before {
		t.Errorf("destinations %s after the rename, %s before", after, before)
	}
}

func TestRenames(t *testing.T) {
	udp := func(s *config.Service) *config.Service { s.Protocol = "udp"; return s }
	for _, tc := range []struct {
		name      string
		old, next *config.Config
		want      map[string]string
	}{
		{"renamed", cfgOf(service("web", "192.0.2.1:80")), cfgOf(service("www", "192.0.2.1:80")), map[string]string{"www": "web"}},
		{"unchanged", cfgOf(service("web", "192.0.2.1:80")), cfgOf(service("web", "192.0.2.1:80")), map[string]string{}},
		{"old name kept elsewhere", cfgOf(service("web", "192.0.2.1:80")),
			cfgOf(service("www", "192.0.2.1:80"), service("web", "192.0.2.2:80")), map[string]string{}},
		{"another protocol is another service", cfgOf(service("dns", "192.0.2.1:53")),
			cfgOf(udp(service("dns-udp", "192.0.2.1:53"))), map[string]string{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := Renames(tc.old, tc.next)
			if len(got) != len(tc.want) {
				t.Fatalf("Renames = %v, want %v", got, tc.want)
			}
			for k, v := range tc.want {
				if got[k] != v {
					t.Errorf("Renames = %v, want %v", got, tc.want)
				}
			}
		})
	}
}
