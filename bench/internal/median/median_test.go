package median

import (
	"slices"
	"testing"
)

func TestOf(t *testing.T) {
	for _, c := range []struct {
		xs   []float64
		want float64
	}{
		{nil, 0},
		{[]float64{7}, 7},
		{[]float64{3, 1, 2}, 2},
		{[]float64{4, 1, 3, 2}, 2.5},
		{[]float64{1, 1000, 2}, 2}, // one slow trial does not move it
	} {
		in := slices.Clone(c.xs)
		if got := Of(c.xs); got != c.want {
			t.Errorf("Of(%v) = %v, want %v", in, got, c.want)
		}
		if !slices.Equal(c.xs, in) {
			t.Errorf("Of sorted its argument: %v, was %v", c.xs, in)
		}
	}
}
