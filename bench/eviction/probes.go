package main

import (
	"bytes"
	"fmt"
	"io"
	"strings"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// lvsdMetrics is lvsd's metrics listener, inside its director namespace.
const lvsdMetrics = "127.0.0.1:9910"

// lvsdProbeStats says how long lvsd's probes took and how late they
// started, from its own histograms: a probe that outlasts the timeout
// against a live server is what makes a false eviction.
func lvsdProbeStats(i *impl) (string, error) {
	resp, err := i.dir.HTTPClient(10 * time.Second).Get("http://" + lvsdMetrics + "/metrics")
	if err != nil {
		return "", fmt.Errorf("scrape lvsd metrics: %w", err)
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", fmt.Errorf("scrape lvsd metrics: %w", err)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(bytes.NewReader(out))
	if err != nil {
		return "", err
	}
	var b strings.Builder
	for _, f := range []struct{ name, what string }{
		{"lvsd_check_duration_seconds", "probe duration"},
		{"lvsd_check_schedule_lag_seconds", "start lag (due -> start)"},
	} {
		fam := fams[f.name]
		if fam == nil {
			return "", fmt.Errorf("no %s in lvsd's metrics", f.name)
		}
		fmt.Fprintf(&b, "  %s:", f.what)
		writeBuckets(&b, fam.GetMetric())
		b.WriteString("\n")
	}
	return b.String(), nil
}

// writeBuckets prints the share of observations at or under each bucket
// bound, summed over every series of the histogram.
func writeBuckets(b *strings.Builder, ms []*dto.Metric) {
	var total uint64
	var bounds []float64
	under := map[float64]uint64{}
	for _, m := range ms {
		h := m.GetHistogram()
		total += h.GetSampleCount()
		for _, bk := range h.GetBucket() {
			if _, ok := under[bk.GetUpperBound()]; !ok {
				bounds = append(bounds, bk.GetUpperBound())
			}
			under[bk.GetUpperBound()] += bk.GetCumulativeCount()
		}
	}
	fmt.Fprintf(b, " %d samples;", total)
	for _, ub := range bounds {
		if ub < 0.005 {
			continue
		}
		fmt.Fprintf(b, " ≤%.3gms %.1f%%", ub*1000, 100*float64(under[ub])/float64(max(total, 1)))
		if under[ub] == total {
			break
		}
	}
}
