package main

import (
	"fmt"
	"io"
	"strings"
	"time"
)

// printTable prints one row per advert interval, lvsd's figure before
// keepalived's in each cell, as a Markdown table.
func printTable(w io.Writer, rows []*row) {
	fmt.Fprintln(w, "lvsd / keepalived in each cell; lateness = gap between the master's adverts on the backup's link - interval")
	fmt.Fprintln(w, "| advert | window | false failovers | backup as master (ms) | lateness p50 (ms) | lateness p99 (ms) | lateness max (ms) | false evictions (lvsd) | SIGKILL takeover p50 (ms) | SIGKILL takeover p99 (ms) | goal p99 ≤ 3×int+skew+10ms |")
	fmt.Fprintln(w, "|---|---|---|---|---|---|---|---|---|---|---|")
	for _, r := range rows {
		l, k := r.lvsd, r.ka
		tl, tk := spreadOf(l.takeovers), spreadOf(k.takeovers)
		evictions := "-"
		if r.checks > 0 {
			evictions = fmt.Sprint(l.falseEvictions)
		}
		fmt.Fprintf(w, "| %v | %v | %d / %d | %s / %s | %s / %s | %s / %s | %s / %s | %s | %s / %s | %s / %s | %s |\n",
			r.interval, r.window, l.falseFailovers, k.falseFailovers, ms(l.backupMaster), ms(k.backupMaster),
			msSigned(l.lateness.P50), msSigned(k.lateness.P50), msSigned(l.lateness.P99), msSigned(k.lateness.P99),
			msSigned(l.lateness.Max), msSigned(k.lateness.Max), evictions,
			takeover(tl.P50, l), takeover(tk.P50, k), takeover(tl.P99, l), takeover(tk.P99, k), ms(r.bound))
	}
}

// takeover prints a takeover figure, with the failed rounds if any.
func takeover(d time.Duration, s sideResult) string {
	if len(s.takeovers) == 0 {
		return fmt.Sprintf("none (%d failed)", s.failedKills)
	}
	if s.failedKills > 0 {
		return fmt.Sprintf("%s (+%d failed)", ms(d), s.failedKills)
	}
	return ms(d)
}

// printDetails prints what explains a row: how many adverts were heard,
// what the machine and the masters' threads went through, and lvsd's
// checks and reloads.
func printDetails(w io.Writer, r *row) {
	fmt.Fprintf(w, "%v adverts, %v window: CPU busy %.0f%%, steal %.1f%%; stress-ng used %.0f CPU-s, the VM %.0f; Master_Down_Interval %s\n",
		r.interval, r.window, 100*r.busy, 100*r.steal, r.stressCPU.Seconds(), r.vmCPU.Seconds(), ms(r.masterDown))
	expected := int(r.window / r.interval)
	for _, s := range []struct {
		name string
		res  sideResult
	}{{"lvsd", r.lvsd}, {"keepalived", r.ka}} {
		res := s.res
		fmt.Fprintf(w, "  %-10s master adverts heard %d of ~%d (capture drops %d); gaps > Master_Down %d; backup sent %d adverts in %d false failovers, acting as master %s ms in all\n",
			s.name, res.heard, expected, res.drops, res.longGaps, res.backupAdverts, res.falseFailovers, ms(res.backupMaster))
		fmt.Fprintf(w, "  %-10s master's threads: CPU %.1fs, runnable-but-waiting %.1fs, %.3f ms per wakeup, %d major faults; takeovers %s\n",
			"", res.masterSched.run.Seconds(), res.masterSched.wait.Seconds(), float64(res.masterSched.waitPerSlice())/1e6, res.masterSched.majflt, samples(res.takeovers))
	}
	if r.checks > 0 {
		l := r.lvsd
		fmt.Fprintf(w, "  lvsd checks: %d of %d real servers up before the load; %.0f probes on %d node(s), %.0f%% of their schedule (%d checks at %v each), %.0f failed, %.0f turns skipped; %d false evictions; %d reloads sent, %d nodes whose last reload failed\n",
			l.upBefore, r.checks*r.checkNodes, l.probes, r.checkNodes, 100*l.probes/max(l.scheduled, 1), r.checks, r.checkInterval, l.probesFailed, l.skipped, l.falseEvictions, l.reloads, l.reloadFailures)
	}
}

// printGoals says which of issue 11's goals the run met. It is a report,
// not a verdict: the bench exits 0 either way.
func printGoals(w io.Writer, rows []*row) {
	fmt.Fprintln(w, "issue 11's goals in this run (one run: a report, not a test):")
	for _, r := range rows {
		l, k := r.lvsd, r.ka
		switch {
		case r.interval >= 30*time.Millisecond:
			fmt.Fprintf(w, "  %v: 0 false failovers for lvsd over %v: %s (keepalived %d)\n", r.interval, r.window, yes(l.falseFailovers == 0), k.falseFailovers)
		default:
			fmt.Fprintf(w, "  %v: lvsd fewer false failovers than keepalived: %s (%d vs %d)\n", r.interval, yes(l.falseFailovers < k.falseFailovers || l.falseFailovers == 0 && k.falseFailovers == 0), l.falseFailovers, k.falseFailovers)
			tl, tk := spreadOf(l.takeovers), spreadOf(k.takeovers)
			if tl.N > 0 && tk.N > 0 {
				fmt.Fprintf(w, "  %v: SIGKILL takeover p99 %s ≤ %s: %s; ≤ keepalived's %s: %s\n", r.interval, ms(tl.P99), ms(r.bound),
					yes(tl.P99 <= r.bound && l.failedKills == 0), ms(tk.P99), yes(tl.P99 <= tk.P99))
			}
		}
		if r.checks > 0 {
			fmt.Fprintf(w, "  %v: 0 false evictions: %s\n", r.interval, yes(l.falseEvictions == 0))
		}
	}
}

func yes(b bool) string {
	if b {
		return "met"
	}
	return "NOT met"
}

func ms(d time.Duration) string { return fmt.Sprintf("%.1f", float64(d)/1e6) }

func msSigned(d time.Duration) string { return fmt.Sprintf("%.2f", float64(d)/1e6) }

func samples(ds []time.Duration) string {
	if len(ds) == 0 {
		return "none"
	}
	var parts []string
	for _, d := range ds {
		parts = append(parts, ms(d))
	}
	return strings.Join(parts, " ") + " ms"
}
