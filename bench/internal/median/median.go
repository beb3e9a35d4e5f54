// Package median is the median the benchmarks summarise their trials with:
// a few trials per arm, where one slow trial must not move the figure.
package median

import "slices"

// Of returns the median of xs, the mean of the middle two when their
// number is even, and 0 for none. xs is left as it was.
func Of(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}
