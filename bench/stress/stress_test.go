package main

import (
	"net/netip"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/lvsd/lvsd/bench/internal/vrrppair"
	"github.com/lvsd/lvsd/config"

	_ "github.com/lvsd/lvsd/checks" // registers the check types the config names
)

func msd(n float64) time.Duration { return time.Duration(n * float64(time.Millisecond)) }

var t0 = time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)

func at(msOffsets ...float64) []time.Time {
	var out []time.Time
	for _, m := range msOffsets {
		out = append(out, t0.Add(msd(m)))
	}
	return out
}

func TestPercentileIsNearestRank(t *testing.T) {
	var s []time.Duration
	for i := 1; i <= 100; i++ {
		s = append(s, time.Duration(i))
	}
	for p, want := range map[float64]time.Duration{50: 50, 99: 99, 100: 100, 1: 1, 0: 1} {
		if got := percentile(s, p); got != want {
			t.Errorf("p%v of 1..100 = %d, want %d", p, got, want)
		}
	}
	if got := percentile([]time.Duration{7}, 99); got != 7 {
		t.Errorf("p99 of one sample = %d", got)
	}
	if got := percentile(nil, 50); got != 0 {
		t.Errorf("p50 of none = %d", got)
	}
	sp := spreadOf([]time.Duration{5, 1, 3})
	if sp != (spread{N: 3, P50: 3, P99: 5, Max: 5}) {
		t.Errorf("spreadOf = %+v", sp)
	}
}

// An advert 7 ms late and the next one back on the sender's schedule: one
// late and one early gap, as the wire shows them.
func TestLatenessIsGapMinusInterval(t *testing.T) {
	got := lateness(at(0, 10, 27, 30, 40), 10*time.Millisecond)
	want := []time.Duration{0, msd(7), msd(-7), 0}
	if !slices.Equal(got, want) {
		t.Fatalf("lateness = %v, want %v", got, want)
	}
	if s := spreadOf(got); s.Max != msd(7) || s.P50 != 0 {
		t.Fatalf("spread = %+v", s)
	}
	if n := longGaps(at(0, 10, 50, 60, 97), msd(36.1)); n != 2 {
		t.Fatalf("longGaps = %d, want 2 (40 ms and 37 ms)", n)
	}
}

func TestWithinIsHalfOpen(t *testing.T) {
	ts := at(0, 10, 20, 30)
	got := within(ts, t0.Add(msd(10)), t0.Add(msd(30)))
	if !slices.Equal(got, at(10, 20)) {
		t.Fatalf("within [10, 30) = %v", got)
	}
	if got := within(ts, t0.Add(msd(31)), t0.Add(msd(40))); len(got) != 0 {
		t.Fatalf("within an empty range = %v", got)
	}
}

func TestEpisodesGroupABackupsAdverts(t *testing.T) {
	if n := episodes(nil, time.Second); n != 0 {
		t.Fatalf("no adverts: %d episodes", n)
	}
	// Three adverts of one takeover, then another takeover 5 s later.
	if n := episodes(at(0, 10, 20, 5000, 5010), time.Second); n != 2 {
		t.Fatalf("episodes = %d, want 2", n)
	}
	if d := mastership(at(0, 10, 20, 5000, 5010), time.Second, 10*time.Millisecond); d != msd(50) {
		t.Fatalf("mastership = %v, want 30 ms + 20 ms", d)
	}
	if d := mastership(nil, time.Second, 10*time.Millisecond); d != 0 {
		t.Fatalf("mastership of none = %v", d)
	}
}

func TestAppendSortedKeepsOrder(t *testing.T) {
	var ts []time.Time
	for _, m := range []float64{10, 30, 20, 40, 5} {
		ts = appendSorted(ts, t0.Add(msd(m)))
	}
	if !slices.Equal(ts, at(5, 10, 20, 30, 40)) {
		t.Fatalf("appendSorted gave %v", ts)
	}
}

// frame builds an Ethernet frame with an IPv4 VRRP packet.
func frame(src string, proto, vrid, prio byte) []byte {
	f := make([]byte, 14+20+8+4)
	f[12], f[13] = 0x08, 0x00
	ip := f[14:]
	ip[0] = 0x45
	ip[8] = 255
	ip[9] = proto
	a := netip.MustParseAddr(src).As4()
	copy(ip[12:], a[:])
	copy(ip[16:], []byte{224, 0, 0, 18})
	v := ip[20:]
	v[0], v[1], v[2], v[3] = 0x31, vrid, prio, 1
	return f
}

func TestParseAdvert(t *testing.T) {
	a, ok := parseAdvert(frame("10.9.0.1", 112, 51, 200))
	if !ok || a.src != netip.MustParseAddr("10.9.0.1") || a.vrid != 51 || a.priority != 200 {
		t.Fatalf("parseAdvert = %+v, %v", a, ok)
	}
	if _, ok := parseAdvert(frame("10.9.0.1", 17, 51, 200)); ok {
		t.Error("a UDP packet read as VRRP")
	}
	if _, ok := parseAdvert(frame("10.9.0.1", 112, 51, 200)[:30]); ok {
		t.Error("a truncated frame read as VRRP")
	}
	arp := frame("10.9.0.1", 112, 51, 200)
	arp[12], arp[13] = 0x08, 0x06
	if _, ok := parseAdvert(arp); ok {
		t.Error("an ARP frame read as VRRP")
	}
}

func TestParseCPUTimesAndSteal(t *testing.T) {
	a, err := parseCPUTimes("cpu  100 0 50 800 10 0 5 35 0 0\ncpu0 1 2 3\n")
	if err != nil {
		t.Fatal(err)
	}
	if a.total != 1000 || a.steal != 35 || a.idle != 800 {
		t.Fatalf("parsed %+v", a)
	}
	b, _ := parseCPUTimes("cpu  300 0 100 1300 10 0 5 85 0 0\n")
	if got := stealShare(a, b); got != 0.0625 {
		t.Fatalf("steal share %v, want 50/800", got)
	}
	if _, err := parseCPUTimes("intr 1 2 3"); err == nil {
		t.Fatal("no cpu line accepted")
	}
}

func TestSchedstatAndProcessGroup(t *testing.T) {
	s, ok := parseSchedstat("2000000 3000000 4\n")
	if !ok || s.run != 2*time.Millisecond || s.wait != 3*time.Millisecond || s.slices != 4 {
		t.Fatalf("parseSchedstat = %+v, %v", s, ok)
	}
	if w := s.waitPerSlice(); w != 750*time.Microsecond {
		t.Fatalf("wait per slice %v", w)
	}
	st, ok := parseStat("1234 (keep alive) (x) S 17 4321 4321 0 -1 4194560 812 0 5 0 1 2 0 0 20 0 1")
	if !ok || st != (procStat{ppid: 17, pgrp: 4321, majflt: 5}) {
		t.Fatalf("parseStat = %+v, %v", st, ok)
	}
	if _, ok := parseStat("garbage"); ok {
		t.Fatal("parseStat(garbage) ok")
	}
}

func TestParseCounters(t *testing.T) {
	text := `# TYPE lvsd_realserver_up gauge
lvsd_realserver_up{service="a",realserver="127.1.0.1:1"} 1
lvsd_realserver_up{service="a",realserver="127.1.0.2:1"} 0
# TYPE lvsd_check_transitions_total counter
lvsd_check_transitions_total{service="a",realserver="127.1.0.1:1",to="up"} 1
lvsd_check_transitions_total{service="a",realserver="127.1.0.2:1",to="up"} 1
lvsd_check_transitions_total{service="a",realserver="127.1.0.2:1",to="down"} 2
# TYPE lvsd_check_probes_total counter
lvsd_check_probes_total{result="ok"} 900
lvsd_check_probes_total{result="fail"} 3
# TYPE lvsd_check_probes_skipped_total counter
lvsd_check_probes_skipped_total 7
# TYPE lvsd_config_last_reload_successful gauge
lvsd_config_last_reload_successful 1
`
	c, err := parseCounters(strings.NewReader(text))
	if err != nil {
		t.Fatal(err)
	}
	want := lvsdCounters{up: 1, downs: 2, probesOK: 900, probesFail: 3, skipped: 7, reloadOK: true}
	if c != want {
		t.Fatalf("parseCounters = %+v, want %+v", c, want)
	}
}

// The config the bench gives lvsd must be one lvsd accepts, with the
// checks it asked for, and a reload must change it.
func TestChecksConfigIsValidLvsdConfig(t *testing.T) {
	if ports, addrs := (&checkLoad{n: 10000}).layout(); ports != 100 || addrs != 100 {
		t.Fatalf("10,000 checks: %d ports × %d addresses", ports, addrs)
	}
	c := &checkLoad{n: 250, interval: time.Second, timeout: 900 * time.Millisecond, fall: 1, rise: 1, basePort: 21000}
	if ports, addrs := c.layout(); ports != 84 || addrs != 3 {
		t.Fatalf("layout = %d ports × %d addresses", ports, addrs)
	}
	targets := c.targets()
	if len(targets) != 250 || targets[0] != netip.MustParseAddrPort("127.1.0.1:21000") {
		t.Fatalf("%d targets, first %v", len(targets), targets[0])
	}
	seen := map[netip.AddrPort]bool{}
	for _, tg := range targets {
		if seen[tg] {
			t.Fatalf("target %v twice", tg)
		}
		seen[tg] = true
	}
	o := vrrppair.Options{Interval: 10 * time.Millisecond, LvsdMetrics: "127.0.0.1:9910", LvsdDirector: []string{`reconcile_interval = "5s"`}}
	text := vrrppair.LvsdConfig(o, 200, "/run/x.sock") + c.services(vrrppair.VIP)
	cfg, err := config.Parse("bench.toml", []byte(text))
	if err != nil {
		t.Fatalf("lvsd refuses the bench's config: %v\n%s", err, text)
	}
	n := 0
	for _, s := range cfg.Services {
		n += len(s.RealServers)
		if s.VIP.IP != vrrppair.VIP {
			t.Fatalf("service %s on %v, not the VIP", s.Name, s.VIP)
		}
	}
	if len(cfg.Services) != 84 || n != 250 {
		t.Fatalf("%d services, %d real servers", len(cfg.Services), n)
	}
	if cfg.VRRP[0].AdvertInterval.Duration != 10*time.Millisecond || len(cfg.VRRP[0].TrackServices) != 0 {
		t.Fatalf("vrrp %+v", cfg.VRRP[0])
	}
	before := c.services(vrrppair.VIP)
	c.generation.Add(1)
	if c.services(vrrppair.VIP) == before {
		t.Fatal("a reload would change nothing")
	}
}

func TestKeepalivedConfigSpeaksVRRPv3(t *testing.T) {
	conf := vrrppair.KeepalivedConfig(vrrppair.Options{Interval: 30 * time.Millisecond, KeepalivedGlobal: []string{"vrrp_rt_priority 50"}}, 100)
	for _, want := range []string{"vrrp_version 3", "advert_int 0.03", "priority 100", "  vrrp_rt_priority 50\n", "virtual_router_id 51"} {
		if !strings.Contains(conf, want) {
			t.Errorf("no %q in\n%s", want, conf)
		}
	}
}

func TestParseIntervals(t *testing.T) {
	got, err := parseIntervals("100ms, 30ms,10ms")
	if err != nil || !slices.Equal(got, []time.Duration{msd(100), msd(30), msd(10)}) {
		t.Fatalf("parseIntervals = %v, %v", got, err)
	}
	for _, bad := range []string{"5ms", "15ms", "x"} {
		if _, err := parseIntervals(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

// The bench's own process has spent CPU, and its threads are found.
func TestTreeSchedstatReadsThisProcess(t *testing.T) {
	if s := treeSchedstat(os.Getpid()); s.run <= 0 || s.slices == 0 {
		t.Fatalf("treeSchedstat(self) = %+v", s)
	}
}
