package web

import (
	"encoding/csv"
	"net/http"
	"strconv"
	"time"

	"github.com/lvsd/lvsd/internal/status"
)

// csvHeader is /status.csv's first line. Columns are an API, as the JSON
// names are: add at the end, never rename or reorder.
var csvHeader = []string{
	"node", "service", "service_address", "realserver", "health", "health_since", "last_check_result", "reason",
	"latency_ms", "last_check", "weight", "kernel_weight", "drained", "warming", "held_by_guard",
	"active_conns", "inactive_conns", "connections_per_second", "bytes_in_per_second", "bytes_out_per_second",
}

// writeCSV writes one row per real server, with the same health word as
// the page and the JSON.
func writeCSV(w *csv.Writer, r status.Report) error {
	if err := w.Write(csvHeader); err != nil {
		return err
	}
	ts := func(t time.Time) string {
		if t.IsZero() {
			return ""
		}
		return t.UTC().Format(time.RFC3339)
	}
	f := func(v float64) string { return strconv.FormatFloat(v, 'f', 3, 64) }
	for _, s := range r.Services {
		for _, rs := range s.RealServers {
			cps, bin, bout := "", "", ""
			if rs.Rates != nil {
				cps, bin, bout = f(rs.Rates.Conns), f(rs.Rates.BytesIn), f(rs.Rates.BytesOut)
			}
			row := []string{
				r.Node, s.Name, s.Address, rs.Address, rs.Health, ts(rs.HealthSince), rs.LastResult, rs.Reason,
				f(float64(rs.Latency) / float64(time.Millisecond)), ts(rs.LastCheck),
				strconv.Itoa(rs.Weight), strconv.Itoa(rs.KernelWeight),
				strconv.FormatBool(rs.Drained), strconv.FormatBool(rs.Warming), strconv.FormatBool(rs.HeldByGuard),
				strconv.FormatUint(rs.ActiveConns, 10), strconv.FormatUint(rs.InactConns, 10), cps, bin, bout,
			}
			if err := w.Write(row); err != nil {
				return err
			}
		}
	}
	w.Flush()
	return w.Error()
}

func (h *handler) serveCSV(w http.ResponseWriter, r *http.Request) {
	st := h.c.Status(r.Context())
	w.Header().Set("Content-Type", "text/csv; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Content-Disposition", `inline; filename="lvsd-status.csv"`)
	_ = writeCSV(csv.NewWriter(w), st)
}
