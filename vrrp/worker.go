package vrrp

import "sync"

// worker performs one instance's slow actions (address changes,
// announcements, ActDone reports) in order, on its own goroutine, so that
// none of them runs under the executor's lock. Its queue is unbounded:
// the executor must never wait for it.
type worker struct {
	in     *instance
	mu     sync.Mutex
	items  []workItem
	wake   chan struct{}
	closed bool
	done   chan struct{}
}

type workItem struct {
	a       Action
	barrier chan struct{} // set: close it when reached
}

func newWorker(in *instance) *worker {
	return &worker{in: in, wake: make(chan struct{}, 1), done: make(chan struct{})}
}

func (w *worker) put(it workItem) bool {
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return false
	}
	w.items = append(w.items, it)
	w.mu.Unlock()
	select {
	case w.wake <- struct{}{}:
	default:
	}
	return true
}

// push queues one slow action; it never blocks.
func (w *worker) push(a Action) { w.put(workItem{a: a}) }

// flush waits until everything queued so far has been performed.
func (w *worker) flush() {
	b := make(chan struct{})
	if !w.put(workItem{barrier: b}) {
		<-w.done
		return
	}
	select {
	case <-b:
	case <-w.done:
	}
}

// close lets run return once the queue is drained, and waits for that.
func (w *worker) close() {
	w.mu.Lock()
	w.closed = true
	w.mu.Unlock()
	select {
	case w.wake <- struct{}{}:
	default:
	}
	<-w.done
}

func (w *worker) run() {
	defer close(w.done)
	var err error
	for {
		w.mu.Lock()
		if len(w.items) == 0 {
			closed := w.closed
			w.mu.Unlock()
			if closed {
				return
			}
			<-w.wake
			continue
		}
		it := w.items[0]
		w.items[0] = workItem{}
		w.items = w.items[1:]
		w.mu.Unlock()
		if it.barrier != nil {
			close(it.barrier)
			continue
		}
		w.in.do(&it.a, &err)
	}
}

// flush waits until the instance's slow actions queued so far are done
// (immediately without a worker: inline actions are done on return).
func (in *instance) flush() {
	if in.work != nil {
		in.work.flush()
	}
}
