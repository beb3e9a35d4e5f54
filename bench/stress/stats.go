package main

import (
	"math"
	"slices"
	"time"
)

// spread is the distribution of a sample: nearest-rank p50, p99 and the
// largest value.
type spread struct {
	N             int
	P50, P99, Max time.Duration
}

func spreadOf(samples []time.Duration) spread {
	if len(samples) == 0 {
		return spread{}
	}
	s := slices.Clone(samples)
	slices.Sort(s)
	return spread{N: len(s), P50: percentile(s, 50), P99: percentile(s, 99), Max: s[len(s)-1]}
}

// percentile is the nearest-rank percentile of sorted samples.
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(math.Ceil(p/100*float64(len(sorted)))) - 1
	return sorted[max(0, min(i, len(sorted)-1))]
}

// within returns the times in [from, to), which must be sorted.
func within(times []time.Time, from, to time.Time) []time.Time {
	lo, _ := slices.BinarySearchFunc(times, from, func(t, x time.Time) int { return t.Compare(x) })
	hi, _ := slices.BinarySearchFunc(times, to, func(t, x time.Time) int { return t.Compare(x) })
	return times[lo:hi]
}

// lateness is how late each advert of the window arrived after the one
// before it: the gap between consecutive arrivals minus the interval. An
// advert sent late and the next one on time give one positive and one
// negative value, as the sender keeps its own schedule.
func lateness(arrivals []time.Time, interval time.Duration) []time.Duration {
	var out []time.Duration
	for i := 1; i < len(arrivals); i++ {
		out = append(out, arrivals[i].Sub(arrivals[i-1])-interval)
	}
	return out
}

// longGaps counts the gaps between consecutive arrivals longer than limit
// (a backup's Master_Down_Interval: each one let it take over).
func longGaps(arrivals []time.Time, limit time.Duration) int {
	n := 0
	for i := 1; i < len(arrivals); i++ {
		if arrivals[i].Sub(arrivals[i-1]) > limit {
			n++
		}
	}
	return n
}

// episodes counts the runs of adverts a backup sent as master: adverts
// less than quiet apart belong to the same false failover.
func episodes(sent []time.Time, quiet time.Duration) int {
	n := 0
	for i, t := range sent {
		if i == 0 || t.Sub(sent[i-1]) > quiet {
			n++
		}
	}
	return n
}

// mastership sums, over the runs of adverts a backup sent as master
// (episodes), the time from the first advert of a run to one interval
// after its last: how long it held the VIP beside the real master.
func mastership(sent []time.Time, quiet, interval time.Duration) time.Duration {
	var total time.Duration
	for i := 0; i < len(sent); {
		j := i
		for j+1 < len(sent) && sent[j+1].Sub(sent[j]) <= quiet {
			j++
		}
		total += sent[j].Sub(sent[i]) + interval
		i = j + 1
	}
	return total
}

// cpuTimes is the machine's CPU time by kind, from /proc/stat's cpu line
// (in clock ticks).
type cpuTimes struct {
	total, steal, idle uint64
}

// stealShare is the share of CPU time the hypervisor took between a and b.
func stealShare(a, b cpuTimes) float64 {
	if b.total <= a.total {
		return 0
	}
	return float64(b.steal-a.steal) / float64(b.total-a.total)
}

// schedstat is what the scheduler says about a group of threads: time on
// a CPU, time runnable but waiting for one, and timeslices run
// (/proc/PID/task/TID/schedstat).
type schedstat struct {
	run, wait time.Duration
	slices    uint64
	majflt    uint64 // major page faults, where a group is summed
}

func (s schedstat) add(o schedstat) schedstat {
	return schedstat{run: s.run + o.run, wait: s.wait + o.wait, slices: s.slices + o.slices, majflt: s.majflt + o.majflt}
}

func (s schedstat) sub(o schedstat) schedstat {
	return schedstat{run: s.run - o.run, wait: s.wait - o.wait, slices: s.slices - o.slices, majflt: s.majflt - o.majflt}
}

// waitPerSlice is how long the group waited, on average, each time it
// became runnable before it ran.
func (s schedstat) waitPerSlice() time.Duration {
	if s.slices == 0 {
		return 0
	}
	return s.wait / time.Duration(s.slices)
}
