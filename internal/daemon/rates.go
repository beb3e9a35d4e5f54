package daemon

import (
	"context"
	"sync"
	"time"

	"github.com/lvsd/lvsd/director"
	"github.com/lvsd/lvsd/internal/status"
)

// minRateInterval is the shortest span a rate is computed over: the
// status page polls every second, and counters read closer together than
// that give rates that jump from one read to the next.
const minRateInterval = time.Second

// rates turns the kernel's cumulative counters into per-second rates for
// status. It reads the counters when status is asked for, no more than
// once per minRateInterval, and keeps the last two reads: nothing is read
// while nobody looks, and everyone who looks (the page, the CSV, `lvsd
// status -json`) sees the same rates. Prometheus computes its own from
// /metrics.
type rates struct {
	read func(context.Context) (map[string]director.ServiceCounters, error)
	now  func() time.Time

	mu         sync.Mutex // held across a read: one read at a time
	prev, last rateSample
}

type rateSample struct {
	at time.Time
	c  map[string]director.ServiceCounters
}

// current returns the last two reads, reading the kernel first when the
// last read is older than minRateInterval. prev is zero until two reads
// are in.
func (r *rates) current(ctx context.Context) (prev, last rateSample) {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := r.now()
	if r.last.at.IsZero() || now.Sub(r.last.at) >= minRateInterval {
		if c, err := r.read(ctx); err == nil {
			r.prev, r.last = r.last, rateSample{at: now, c: c}
		}
	}
	return r.prev, r.last
}

// serviceRates is the rates of one service (rs == "") or one of its real
// servers between two reads; nil when either read lacks it.
func serviceRates(prev, last rateSample, service, rs string) *status.Rates {
	if prev.at.IsZero() {
		return nil
	}
	get := func(s rateSample) (director.Stats, bool) {
		sc, ok := s.c[service]
		if !ok {
			return director.Stats{}, false
		}
		if rs == "" {
			return sc.Stats, true
		}
		d, ok := sc.RealServers[rs]
		return d.Stats, ok
	}
	a, okA := get(prev)
	b, okB := get(last)
	if !okA || !okB {
		return nil
	}
	span := last.at.Sub(prev.at).Seconds()
	per := func(x, y uint64) float64 {
		if y < x { // the service was re-created: its counters restarted
			return 0
		}
		return float64(y-x) / span
	}
	return &status.Rates{
		Interval: span,
		Conns:    per(a.Conns, b.Conns), PacketsIn: per(a.PktsIn, b.PktsIn), PacketsOut: per(a.PktsOut, b.PktsOut),
		BytesIn: per(a.BytesIn, b.BytesIn), BytesOut: per(a.BytesOut, b.BytesOut),
		TotalConns: b.Conns, TotalPackets: b.PktsIn + b.PktsOut, TotalBytesIn: b.BytesIn, TotalBytesOut: b.BytesOut,
	}
}
