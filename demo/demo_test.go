package main

import (
	"errors"
	"testing"
	"time"
)

// Lines as lvsd writes them with -log-format json.
func TestParseEvent(t *testing.T) {
	tests := []struct {
		name, line string
		ok         bool
		want       event
	}{
		{
			name: "vrrp state change",
			line: `{"time":"2026-11-22T11:50:06.77Z","level":"INFO","msg":"vrrp: state change","instance":"front","from":"backup","to":"master","priority":100,"reason":"master down timer expired"}`,
			ok:   true,
			want: event{Director: "lvs-b", Instance: "front", From: "backup", To: "master", Reason: "master down timer expired"},
		},
		{
			name: "health verdict",
			line: `{"time":"2026-11-22T11:50:06.77Z","level":"WARN","msg":"real server health changed","service":"web","realserver":"192.0.2.12:80","healthy":false,"reason":"refused: connect","weight":-1}`,
			ok:   true,
			want: event{Director: "lvs-b", Service: "web", RealServer: "192.0.2.12:80", Healthy: false, Reason: "refused: connect"},
		},
		{
			name: "other line",
			line: `{"time":"2026-11-22T11:50:06.77Z","level":"INFO","msg":"quorum state changed","service":"web","up":true}`,
		},
		{name: "not json", line: `panic: something`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := parseEvent("lvs-b", tt.line)
			if ok != tt.ok {
				t.Fatalf("ok = %v, want %v", ok, tt.ok)
			}
			if !ok {
				return
			}
			got.Time = time.Time{}
			if got != tt.want {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

// A verdict that repeats the last is no change; the journal keeps one, and
// forgets a director's verdicts when it restarts.
func TestJournalDedupesHealth(t *testing.T) {
	j := &journal{}
	down := event{Director: "lvs-a", Service: "web", RealServer: "192.0.2.12:80", Healthy: false}
	j.add(down)
	j.add(down)
	if len(j.events) != 1 {
		t.Fatalf("%d events after the same verdict twice, want 1", len(j.events))
	}
	j.forget("lvs-a")
	j.add(down)
	if len(j.events) != 2 {
		t.Fatalf("%d events after a restart's first verdict, want 2", len(j.events))
	}
}

func TestAnalyse(t *testing.T) {
	t0 := time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	lost := errors.New("no answer")
	tests := []struct {
		name    string
		results []result
		failed  int
		gap     time.Duration
	}{
		{
			name:    "no failure",
			results: []result{{start: at(0)}, {start: at(20)}},
		},
		{
			name:    "one outage",
			results: []result{{start: at(0)}, {start: at(20), err: lost}, {start: at(40), err: lost}, {start: at(60)}},
			failed:  2,
			gap:     60 * time.Millisecond,
		},
		{
			name:    "never recovered",
			results: []result{{start: at(0)}, {start: at(20), err: lost}},
			failed:  1,
			gap:     -1,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := analyse(tt.results)
			if o.failed != tt.failed || o.gap != tt.gap {
				t.Errorf("failed %d, gap %v; want %d, %v", o.failed, o.gap, tt.failed, tt.gap)
			}
		})
	}
	results := []result{{start: at(0), err: lost}, {start: at(100)}, {start: at(500), err: lost}}
	if bad := failedOutside(results, at(50), at(400)); len(bad) != 2 {
		t.Errorf("failedOutside found %d, want the failures at 0 and 500 ms", len(bad))
	}
}

// A failure is excused only by the backup taking the VIP while the request
// ran (or up to a second before it started), not by the planned crash.
func TestUnexplained(t *testing.T) {
	t0 := time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	l := &lab{journal: &journal{}, dirs: []*director{{name: "lvs-a"}, {name: "lvs-b"}}}
	m := &measurements{settled: at(0), crashAt: at(20000)}
	l.journal.add(event{Time: at(5000), Director: "lvs-b", Instance: "front", From: "backup", To: "master"})
	l.journal.add(event{Time: at(20300), Director: "lvs-b", Instance: "front", From: "backup", To: "master"})
	lost := errors.New("timeout")
	failures := []result{
		{start: at(4500), end: at(14500), err: lost},  // ran across the flap
		{start: at(5800), end: at(5900), err: lost},   // within a second after it
		{start: at(8000), end: at(8100), err: lost},   // long after
		{start: at(21500), end: at(21600), err: lost}, // after the planned takeover
	}
	bad := l.unexplained(failures, m)
	if len(bad) != 2 || !bad[0].start.Equal(at(8000)) || !bad[1].start.Equal(at(21500)) {
		t.Errorf("unexplained = %v, want the failures at 8000 and 21500 ms", bad)
	}
	if n := countFlaps(l, m); n != 1 {
		t.Errorf("countFlaps = %d, want 1 (the crash's takeover is planned)", n)
	}
}
