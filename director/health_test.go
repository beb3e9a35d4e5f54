package director

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
)

// downRecorder is a ServiceWatcher that keeps what it heard, in order.
type downRecorder struct {
	mu    sync.Mutex
	heard []string
}

func (r *downRecorder) SetServiceDown(service string, down bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	word := "up"
	if down {
		word = "down"
	}
	r.heard = append(r.heard, service+" "+word)
}

// String is everything heard so far, and forgets it.
func (r *downRecorder) String() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := strings.Join(r.heard, ", ")
	r.heard = nil
	return s
}

func verdict(healthy bool) Health {
	return Health{Known: true, Healthy: healthy, Weight: -1, Reason: fmt.Sprint("healthy=", healthy)}
}

// TestServiceDownIsPublishedOnChange: the watcher hears a service go down
// once its last server is judged down (not while one is unknown), hears it
// come back, and hears nothing when a verdict changes nothing.
func TestServiceDownIsPublishedOnChange(t *testing.T) {
	s := service("web", "192.0.2.1:80", "10.0.0.1:80", "10.0.0.2:80")
	s.Alpha = nil
	heard := &downRecorder{}
	d, err := New(cfgOf(s, service("dns", "192.0.2.2:53", "10.0.0.3:53")), NewFake(), WithServiceWatcher(heard))
	if err != nil {
		t.Fatal(err)
	}
	for _, step := range []struct {
		rs      string
		healthy bool
		want    string
		down    bool
	}{
		{"10.0.0.1:80", false, "", false}, // 10.0.0.2 is still unknown
		{"10.0.0.2:80", false, "web down", true},
		{"10.0.0.2:80", false, "", true},
		{"10.0.0.1:80", true, "web up", false},
		{"10.0.0.1:80", true, "", false},
	} {
		d.SetHealth("web", step.rs, verdict(step.healthy))
		if got := heard.String(); got != step.want {
			t.Errorf("%s healthy=%v: the watcher heard %q, want %q", step.rs, step.healthy, got, step.want)
		}
		if down := d.ServiceDown("web"); down != step.down {
			t.Errorf("%s healthy=%v: ServiceDown(web) = %v, want %v", step.rs, step.healthy, down, step.down)
		}
	}
	if d.ServiceDown("dns") || d.ServiceDown("nosuch") {
		t.Error("a service with no verdict, or none at all, is down")
	}
}

// TestReloadPublishesRenamesAndRemovals: a rename carries the verdicts, so
// the service is down under its new name at once; a service removed while
// down is up again to the watcher, which may still track its name.
func TestReloadPublishesRenamesAndRemovals(t *testing.T) {
	heard := &downRecorder{}
	d, err := New(cfgOf(service("web", "192.0.2.1:80", "10.0.0.1:80")), NewFake(), WithServiceWatcher(heard))
	if err != nil {
		t.Fatal(err)
	}
	d.SetHealth("web", "10.0.0.1:80", verdict(false))
	if got := heard.String(); got != "web down" {
		t.Fatalf("heard %q", got)
	}
	renamed := cfgOf(service("www", "192.0.2.1:80", "10.0.0.1:80"))
	if r := Renames(d.cfg, renamed); fmt.Sprint(r) != "map[www:web]" {
		t.Fatalf("Renames = %v", r)
	}
	if err := d.Update(renamed); err != nil {
		t.Fatal(err)
	}
	if got := heard.String(); got != "web up, www down" {
		t.Errorf("after the rename the watcher heard %q, want web up and www down", got)
	}
	if err := d.Update(cfgOf()); err != nil {
		t.Fatal(err)
	}
	if got := heard.String(); got != "www up" {
		t.Errorf("after removing the service the watcher heard %q, want www up", got)
	}
}

// TestPrepareChangesNothingUntilCommit: a prepared config is not in force
// until its commit runs, and a rejected one never is.
func TestPrepareChangesNothingUntilCommit(t *testing.T) {
	h := newHarness(t, cfgOf(service("web", "192.0.2.1:80", "10.0.0.1:80")))
	h.settle()
	commit, err := h.d.Prepare(cfgOf(service("web", "192.0.2.1:80", "10.0.0.1:80@5")), nil)
	if err != nil {
		t.Fatal(err)
	}
	if n, _ := h.pass(); n != 0 {
		t.Errorf("a prepared config made %d ops before its commit", n)
	}
	commit()
	if n, _ := h.pass(); n != 1 {
		t.Errorf("the commit made %d ops, want 1 (the weight)", n)
	}
	bad := service("web", "192.0.2.1:80", "10.0.0.1:80")
	bad.Forwarding = "carrier-pigeon"
	if _, err := h.d.Prepare(cfgOf(bad), nil); err == nil || !strings.Contains(err.Error(), "forwarding") {
		t.Errorf("Prepare of a bad config: %v", err)
	}
}

// TestUndecidedCountsFirstVerdicts: servers of alpha services count until
// their first verdict; those of services with alpha off never do.
func TestUndecidedCountsFirstVerdicts(t *testing.T) {
	s := service("web", "192.0.2.1:80", "10.0.0.1:80", "10.0.0.2:80")
	s.Alpha = nil
	d, err := New(cfgOf(s, service("dns", "192.0.2.2:53", "10.0.0.3:53")), NewFake())
	if err != nil {
		t.Fatal(err)
	}
	for _, step := range []struct {
		rs   string
		want int
	}{{"", 2}, {"10.0.0.1:80", 1}, {"10.0.0.2:80", 0}} {
		if step.rs != "" {
			d.SetHealth("web", step.rs, verdict(false))
		}
		if n := d.Undecided(); n != step.want {
			t.Errorf("after a verdict on %q: Undecided = %d, want %d", step.rs, n, step.want)
		}
	}
}

// TestHeldVerdictInStatus: a failure the guard holds shows as the verdict
// it is, with Held, while the server stays up in the table.
func TestHeldVerdictInStatus(t *testing.T) {
	fault := &faultSwitch{}
	h, _ := newGuardedHarness(t, fault)
	fault.set("fds: 1010 of 1024 open files (98%)")
	h.d.SetHealth("a", "10.0.0.1:80", timedOut("connect"))
	h.now = h.now.Add(100 * time.Millisecond)
	for _, s := range h.d.Status() {
		for _, r := range s.RealServers {
			if s.Name == "a" && r.Name == "10.0.0.1:80" {
				if !r.Held || r.Health.Healthy || !r.Health.Known || !r.Up {
					t.Errorf("held server: %+v; want its failed verdict, held, and up in the table", r)
				}
				return
			}
		}
	}
	t.Fatal("status has no a/10.0.0.1:80")
}
