package web

import (
	"fmt"
	"math"
	"time"

	"github.com/lvsd/lvsd/internal/status"
)

// How the page writes numbers and times. Times are the director's local
// time; "since" also says how long ago, against the document's own time
// so a page rendered from a stale document does not lie.

func clock(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.Local().Format("2006-01-02 15:04:05 MST")
}

func ago(t, now time.Time) string {
	if t.IsZero() {
		return ""
	}
	d := now.Sub(t)
	switch {
	case d < 0:
		return "just now"
	case d < time.Minute:
		return fmt.Sprintf("%ds ago", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm%02ds ago", int(d.Minutes()), int(d.Seconds())%60)
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh%02dm ago", int(d.Hours()), int(d.Minutes())%60)
	}
	return fmt.Sprintf("%dd ago", int(d.Hours()/24))
}

// si writes a rate with an SI prefix: 0, 12.5, 1.2k, 3.4M.
func si(v float64, unit string) string {
	if v == 0 {
		return "0" + unit
	}
	for _, p := range []struct {
		f float64
		s string
	}{{1e9, "G"}, {1e6, "M"}, {1e3, "k"}} {
		if math.Abs(v) >= p.f {
			return fmt.Sprintf("%.1f%s%s", v/p.f, p.s, unit)
		}
	}
	if v < 100 {
		return fmt.Sprintf("%.1f%s", v, unit)
	}
	return fmt.Sprintf("%.0f%s", v, unit)
}

func latency(d time.Duration) string {
	if d == 0 {
		return ""
	}
	if d < time.Millisecond {
		return fmt.Sprintf("%dµs", d.Microseconds())
	}
	return fmt.Sprintf("%.1fms", float64(d)/float64(time.Millisecond))
}

// rateCell is the rates of a service or real server as the page shows
// them; "–" until two reads of the counters are in.
type rateCell struct {
	Conns, Packets, Bytes string
	Known                 bool
}

func rates(r *status.Rates) rateCell {
	if r == nil {
		return rateCell{Conns: "–", Packets: "–", Bytes: "–"}
	}
	return rateCell{Known: true,
		Conns:   si(r.Conns, "/s"),
		Packets: si(r.PacketsIn+r.PacketsOut, "/s"),
		Bytes:   si(r.BytesIn, "B/s") + " in, " + si(r.BytesOut, "B/s") + " out",
	}
}
