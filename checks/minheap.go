package checks

// minHeap is a binary min-heap of values that order themselves. Unlike
// container/heap it boxes nothing into an interface, so the connect loop
// pushes and pops a probe's turn, thousands a second, without allocating.
type minHeap[T interface{ before(T) bool }] []T

func (h minHeap[T]) Len() int { return len(h) }

func (h *minHeap[T]) Push(x T) {
	*h = append(*h, x)
	s := *h
	for i := len(s) - 1; i > 0; {
		parent := (i - 1) / 2
		if !s[i].before(s[parent]) {
			break
		}
		s[i], s[parent] = s[parent], s[i]
		i = parent
	}
}

// Pop removes and returns the least element; the heap must not be empty.
func (h *minHeap[T]) Pop() T {
	s := *h
	top := s[0]
	last := len(s) - 1
	s[0] = s[last]
	var zero T
	s[last] = zero // drop the reference for the collector
	s = s[:last]
	for i := 0; ; {
		least, l, r := i, 2*i+1, 2*i+2
		if l < len(s) && s[l].before(s[least]) {
			least = l
		}
		if r < len(s) && s[r].before(s[least]) {
			least = r
		}
		if least == i {
			break
		}
		s[i], s[least] = s[least], s[i]
		i = least
	}
	*h = s
	return top
}
