package main

import (
	"encoding/json"
	"fmt"
	"maps"
	"strings"
	"testing"
	"time"

	"github.com/lvsd/lvsd/checks"
	"github.com/lvsd/lvsd/director"
)

// steady waits until the lab is settled: the good server in the kernel
// with its weight, the bad one judged down, and two reconcile passes
// since, so nothing is still in flight.
func (l *lab) steady(c labConfig) {
	l.t.Helper()
	l.waitWeight(c.Good, c.WeightGood)
	l.eventually("bad server judged down", func() error {
		for _, ts := range l.d.sched.Status() {
			if ts.RealServer == c.Bad && ts.Health != checks.Down {
				return fmt.Errorf("health %s", ts.Health)
			}
		}
		return nil
	})
	l.passes(2)
}

// passes waits for n more successful reconcile passes.
func (l *lab) passes(n int) {
	l.t.Helper()
	from := l.scrape().count("lvsd_reconcile_passes_total", "result", "ok")
	l.eventually(fmt.Sprintf("%d more reconcile passes", n), func() error {
		if v := l.scrape().count("lvsd_reconcile_passes_total", "result", "ok"); v < from+float64(n) {
			return fmt.Errorf("%v passes, want %v", v, from+float64(n))
		}
		return nil
	})
}

func (l *lab) status() StatusReport {
	l.t.Helper()
	code, out, errOut := l.lvsd("status", "-json")
	if code != 0 {
		l.t.Fatalf("lvsd status -json: exit %d: %s", code, errOut)
	}
	var st StatusReport
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		l.t.Fatalf("lvsd status -json: %v\n%s", err, out)
	}
	return st
}

func (l *lab) realserver(addr string) RealServerStatus {
	l.t.Helper()
	for _, s := range l.status().Services {
		for _, r := range s.RealServers {
			if r.Address == addr {
				return r
			}
		}
	}
	l.t.Fatalf("lvsd status has no realserver %s", addr)
	return RealServerStatus{}
}

// checkState is what must carry over a reload: each target's health and
// its runs of consecutive results.
func (l *lab) checkState() map[string]checks.TargetStatus {
	out := map[string]checks.TargetStatus{}
	for _, ts := range l.d.sched.Status() {
		out[ts.RealServer] = ts
	}
	return out
}

func TestBadReloadKeepsOldConfigRunning(t *testing.T) {
	c := newLabConfig(t)
	l := startLab(t, c)
	l.steady(c)
	good := c.render(t)

	for _, tc := range []struct {
		name    string
		edit    func(string) string
		wantErr []string // each must appear in the error and in lvsd status
		via     string   // "socket": `lvsd reload`; "direct": Reload, as SIGHUP does
	}{
		{
			name: "type error", via: "socket",
			edit:    func(s string) string { return strings.Replace(s, "weight = 5", `weight = "five"`, 1) },
			wantErr: []string{"lvsd.toml:", "weight"},
		},
		{
			name: "unknown scheduler", via: "direct",
			edit:    func(s string) string { return strings.Replace(s, `scheduler = "wlc"`, `scheduler = "fastest"`, 1) },
			wantErr: []string{"lvsd.toml:", "scheduler"},
		},
		{
			name: "truncated file", via: "socket",
			edit:    func(s string) string { return s[:strings.Index(s, "[[service.realserver]]")+10] },
			wantErr: []string{"lvsd.toml:"},
		},
		{
			// A reload may add VRRP instances (daemon_vrrp_reload_test.go),
			// but not two on one VRID.
			name: "vrrp instances share a VRID", via: "socket",
			edit: func(s string) string {
				vi := "\n[[vrrp]]\nname = %q\nvrid = 7\ninterface = \"lab0\"\nvips = [%q]\n"
				return s + fmt.Sprintf(vi, "vi1", "192.0.2.10/32") + fmt.Sprintf(vi, "vi2", "192.0.2.11/32")
			},
			wantErr: []string{"lvsd.toml:", "VRID 7 is already used"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l.t = t
			cfg := l.d.config()
			before := l.scrape()
			ops := l.ipvs.TotalOps()
			checksBefore := l.checkState()
			time.Sleep(10 * time.Millisecond) // so the reload timestamp must move

			l.write(tc.edit(good))
			var err error
			switch tc.via {
			case "socket":
				code, out, errOut := l.lvsd("reload")
				if code != 1 || out != "" {
					t.Errorf("lvsd reload of a bad config: exit %d, stdout %q; want exit 1 and no output", code, out)
				}
				err = fmt.Errorf("%s", errOut)
			case "direct":
				err = l.d.Reload()
			}
			if err == nil || err.Error() == "" {
				t.Fatal("reload of a bad config succeeded")
			}
			for _, w := range tc.wantErr {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("reload error %q does not mention %q", err, w)
				}
			}

			if l.d.config() != cfg {
				t.Error("the daemon switched config after a rejected reload")
			}
			after := l.scrape()
			if v := after.value("lvsd_config_last_reload_successful"); v != 0 {
				t.Errorf("lvsd_config_last_reload_successful = %v after a rejected reload, want 0", v)
			}
			if a, b := after.value("lvsd_config_last_reload_timestamp_seconds"), before.value("lvsd_config_last_reload_timestamp_seconds"); a <= b {
				t.Errorf("lvsd_config_last_reload_timestamp_seconds did not move: %v -> %v", b, a)
			}

			// The old config keeps running: the kernel is untouched, the
			// checks keep probing and keep their state.
			l.passes(2)
			if n := l.ipvs.TotalOps(); n != ops {
				t.Errorf("the kernel received %d ops after a rejected reload", n-ops)
			}
			l.waitWeight(c.Good, c.WeightGood)
			l.waitWeight(c.Bad, -1)
			for rs, was := range checksBefore {
				now := l.checkState()[rs]
				if now.Health != was.Health || !now.LastCheck.After(was.LastCheck) {
					t.Errorf("%s: checks after the rejected reload: health %s -> %s, last check %v -> %v", rs, was.Health, now.Health, was.LastCheck, now.LastCheck)
				}
			}

			st := l.status()
			if st.ReloadOK || !strings.Contains(st.ReloadErr, tc.wantErr[0]) {
				t.Errorf("status -json: last_reload_successful %v, last_reload_error %q", st.ReloadOK, st.ReloadErr)
			}
			_, table, _ := l.lvsd("status")
			head, _, _ := strings.Cut(table, "\n")
			if !strings.Contains(head, "FAILED: ") || !strings.Contains(head, tc.wantErr[0]) {
				t.Errorf("lvsd status does not show the rejected reload:\n%s", table)
			}
		})
	}

	// The fixed file is taken, and status and the metric say so again.
	l.t = t
	l.write(good)
	if code, out, errOut := l.lvsd("reload"); code != 0 || out != "reload: ok\n" {
		t.Fatalf("lvsd reload of the good config: exit %d, %q %q", code, out, errOut)
	}
	if v := l.scrape().value("lvsd_config_last_reload_successful"); v != 1 {
		t.Errorf("lvsd_config_last_reload_successful = %v after a good reload", v)
	}
	if st := l.status(); !st.ReloadOK || st.ReloadErr != "" {
		t.Errorf("status after a good reload: ok %v, error %q", st.ReloadOK, st.ReloadErr)
	}
}

// TestReloadOneWeightIsOneKernelOp is the hitless-reload promise: a reload
// that changes one weight makes exactly one kernel op, no check restarts
// (state carries over, no transition), and the VIPs stay.
func TestReloadOneWeightIsOneKernelOp(t *testing.T) {
	c := newLabConfig(t)
	l := startLab(t, c)
	l.steady(c)
	vips := l.addrs.on("lab0")
	if len(vips) != 1 || vips[0].String() != "192.0.2.10/32" {
		t.Fatalf("static VIPs on lab0: %v, want [192.0.2.10/32]", vips)
	}

	for _, step := range []struct {
		name   string
		weight int
		want   map[director.OpKind]int
	}{
		{"same config", 5, map[director.OpKind]int{}},
		{"one weight", 7, map[director.OpKind]int{director.OpUpdateDest: 1}},
	} {
		l.ipvs.ResetOps()
		before := l.scrape()
		checksBefore := l.checkState()
		logBefore := len(l.logs.String())

		c.WeightGood = step.weight
		l.write(c.render(t))
		if code, _, errOut := l.lvsd("reload"); code != 0 {
			t.Fatalf("%s: lvsd reload: exit %d: %s", step.name, code, errOut)
		}
		l.waitWeight(c.Good, step.weight)
		l.passes(2)

		if ops := l.ipvs.Ops(); !maps.Equal(ops, step.want) {
			t.Errorf("%s: kernel ops %v, want %v", step.name, ops, step.want)
		}
		after := l.scrape()
		for _, rs := range []string{c.Good, c.Bad} {
			for _, to := range []string{"up", "down", "unknown"} {
				b := before.count("lvsd_check_transitions_total", "realserver", rs, "to", to)
				a := after.count("lvsd_check_transitions_total", "realserver", rs, "to", to)
				if a != b {
					t.Errorf("%s: %s transitions to %s: %v -> %v", step.name, rs, to, b, a)
				}
			}
			if was, now := checksBefore[rs], l.checkState()[rs]; now.Health != was.Health {
				t.Errorf("%s: health of %s %s -> %s across a reload", step.name, rs, was.Health, now.Health)
			}
			// A restarted check starts a fresh series; a carried-over one
			// keeps counting.
			labels := map[string]string{"realserver": rs, "type": "http"}
			b, _ := before.series("lvsd_check_duration_seconds", labels)
			a, _ := after.series("lvsd_check_duration_seconds", labels)
			if b == nil || a == nil || a.GetHistogram().GetSampleCount() <= b.GetHistogram().GetSampleCount() {
				t.Errorf("%s: probes of %s were restarted by the reload: %v -> %v", step.name, rs, b, a)
			}
		}
		if logs := l.logs.String()[logBefore:]; strings.Contains(logs, "real server health") {
			t.Errorf("%s: a reload made a real server transition:\n%s", step.name, logs)
		}
		if got := l.addrs.on("lab0"); !slicesEqualStrings(got, vips) {
			t.Errorf("%s: VIPs %v -> %v", step.name, vips, got)
		}
	}
	if r := l.realserver(c.Good); r.Weight != 7 || r.KernelWeight != 7 || r.Health != "up" {
		t.Errorf("status of %s after reload: %+v", c.Good, r)
	}
}

// TestDrainOverTheControlSocket goes client -> socket -> daemon -> kernel:
// a drain sets weight 0 and holds across a reload until undrained.
func TestDrainOverTheControlSocket(t *testing.T) {
	c := newLabConfig(t)
	l := startLab(t, c)
	l.steady(c)

	if code, out, errOut := l.lvsd("drain", "web", c.Good); code != 0 || out != "drain: ok\n" {
		t.Fatalf("lvsd drain: exit %d, %q %q", code, out, errOut)
	}
	l.waitWeight(c.Good, 0)
	if r := l.realserver(c.Good); !r.Drained || r.KernelWeight != 0 || r.Health != "up" {
		t.Errorf("status of a drained server: %+v", r)
	}
	_, table, _ := l.lvsd("status")
	if !strings.Contains(table, "up,drained") {
		t.Errorf("lvsd status does not show the drain:\n%s", table)
	}

	c.WeightGood = 9
	l.write(c.render(t))
	if code, _, errOut := l.lvsd("reload"); code != 0 {
		t.Fatalf("lvsd reload: exit %d: %s", code, errOut)
	}
	l.passes(2)
	if d, ok := l.kernelDest(c.Good); !ok || d.Weight != 0 {
		t.Errorf("after a reload the drained server has weight %d in the kernel (present %v), want 0", d.Weight, ok)
	}
	if r := l.realserver(c.Good); !r.Drained {
		t.Errorf("the drain did not survive the reload: %+v", r)
	}

	if code, _, errOut := l.lvsd("undrain", "web", c.Good); code != 0 {
		t.Fatalf("lvsd undrain: exit %d: %s", code, errOut)
	}
	l.waitWeight(c.Good, 9)

	for _, args := range [][]string{{"drain", "web", "192.0.2.99:80"}, {"drain", "nosuch", c.Good}} {
		code, _, errOut := l.lvsd(args...)
		if code != 1 || !strings.Contains(errOut, "no realserver") {
			t.Errorf("lvsd %v: exit %d, %q; want exit 1 naming the missing realserver", args, code, errOut)
		}
	}
	if code, _, _ := l.lvsd("drain", "web"); code != 2 {
		t.Errorf("lvsd drain with one argument: exit %d, want 2 (usage)", code)
	}
}

func slicesEqualStrings[T fmt.Stringer](a, b []T) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].String() != b[i].String() {
			return false
		}
	}
	return true
}

// TestReloadRenamedService: renaming a service (same VIP, port and
// protocol) keeps its real servers and their verdicts: no kernel op, no
// health transition, nobody back to unknown.
func TestReloadRenamedService(t *testing.T) {
	c := newLabConfig(t)
	l := startLab(t, c)
	l.steady(c)
	l.ipvs.ResetOps()
	l.write(strings.Replace(c.render(t), `name = "web"`, `name = "www"`, 1))
	l.reload()
	l.passes(2)
	if ops := l.ipvs.Ops(); !maps.Equal(ops, map[director.OpKind]int{}) {
		t.Errorf("renaming the service made kernel ops %v", ops)
	}
	st := l.status()
	if len(st.Services) != 1 || st.Services[0].Name != "www" {
		t.Fatalf("services after the rename: %+v", st.Services)
	}
	want := map[string]string{c.Good: "up", c.Bad: "down"}
	for _, rs := range st.Services[0].RealServers {
		if rs.Health != want[rs.Address] {
			t.Errorf("%s after the rename: health %s, want %s", rs.Address, rs.Health, want[rs.Address])
		}
	}
	after := l.scrape()
	for _, to := range []string{"up", "down", "unknown"} {
		if n := after.count("lvsd_check_transitions_total", "service", "www", "to", to); n != 0 {
			t.Errorf("%v transitions to %s under the new name", n, to)
		}
	}
}
