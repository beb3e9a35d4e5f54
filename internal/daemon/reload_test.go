package daemon

import (
	"context"
	"fmt"
	"maps"
	"strings"
	"testing"

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
		wantErr []string // each must appear in the error and in the status
		via     string   // "socket": as `lvsd reload`; "direct": Reload, as SIGHUP does
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
			stamp := l.status().LastReload

			l.write(tc.edit(good))
			var err error
			switch tc.via {
			case "socket":
				err = l.client().Reload(context.Background())
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
			if st.ReloadOK || !strings.Contains(st.ReloadErr, tc.wantErr[0]) || !st.LastReload.After(stamp) {
				t.Errorf("status: last_reload_successful %v, last_reload_error %q, last_reload %v (was %v)", st.ReloadOK, st.ReloadErr, st.LastReload, stamp)
			}
			table := l.statusTable()
			head, _, _ := strings.Cut(table, "\n")
			if !strings.Contains(head, "FAILED: ") || !strings.Contains(head, tc.wantErr[0]) {
				t.Errorf("lvsd status does not show the rejected reload:\n%s", table)
			}
		})
	}

	// The fixed file is taken, and status and the metric say so again.
	l.t = t
	l.write(good)
	l.reload()
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
		l.reload()
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
// a drain sets weight 0 and holds across a reload until undrained. The
// status says what the kernel held at the director's last pass, so the
// test waits on the status itself, not on the kernel it reports.
func TestDrainOverTheControlSocket(t *testing.T) {
	c := newLabConfig(t)
	l := startLab(t, c)
	l.steady(c)

	ctx := context.Background()
	if err := l.client().Drain(ctx, "web", c.Good, true); err != nil {
		t.Fatalf("drain: %v", err)
	}
	l.waitWeight(c.Good, 0)
	l.eventually("status of the drained server", func() error {
		if r := l.realserver(c.Good); !r.Drained || r.KernelWeight != 0 || r.Health != "up" {
			return fmt.Errorf("%+v", r)
		}
		return nil
	})
	if table := l.statusTable(); !strings.Contains(table, "up,drained") {
		t.Errorf("the status table does not show the drain:\n%s", table)
	}

	c.WeightGood = 9
	l.write(c.render(t))
	l.reload()
	l.passes(2)
	if d, ok := l.kernelDest(c.Good); !ok || d.Weight != 0 {
		t.Errorf("after a reload the drained server has weight %d in the kernel (present %v), want 0", d.Weight, ok)
	}
	if r := l.realserver(c.Good); !r.Drained {
		t.Errorf("the drain did not survive the reload: %+v", r)
	}

	if err := l.client().Drain(ctx, "web", c.Good, false); err != nil {
		t.Fatalf("undrain: %v", err)
	}
	l.waitWeight(c.Good, 9)

	for _, args := range [][2]string{{"web", "192.0.2.99:80"}, {"nosuch", c.Good}} {
		if err := l.client().Drain(ctx, args[0], args[1], true); err == nil || !strings.Contains(err.Error(), "no realserver") {
			t.Errorf("drain %v: %v; want an error naming the missing realserver", args, err)
		}
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
