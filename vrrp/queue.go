package vrrp

import "sync"

// queue is an unbounded FIFO of state changes: the state machine pushes
// under its lock and must never block on a slow notify script.
type queue struct {
	mu     sync.Mutex
	items  []StateChange
	wake   chan struct{}
	closed bool
}

func newQueue() *queue { return &queue{wake: make(chan struct{}, 1)} }

func (q *queue) push(c StateChange) {
	q.mu.Lock()
	q.items = append(q.items, c)
	q.mu.Unlock()
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// close lets pop return false once the queue is drained.
func (q *queue) close() {
	q.mu.Lock()
	q.closed = true
	q.mu.Unlock()
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// pop blocks for the next change; false means closed and drained.
func (q *queue) pop() (StateChange, bool) {
	for {
		q.mu.Lock()
		if len(q.items) > 0 {
			c := q.items[0]
			q.items = q.items[1:]
			q.mu.Unlock()
			return c, true
		}
		closed := q.closed
		q.mu.Unlock()
		if closed {
			return StateChange{}, false
		}
		<-q.wake
	}
}
