package proxy

import (
	"sync"
	"sync/atomic"
	"time"
)

// waitQueue holds, first come first served, the requests waiting for an
// endpoint of a pool below its cap, each up to the pool's queue timeout
// (UpstreamConfig.QueueTimeout, by default Config.Timeout). A waiting
// request keeps its admission slot: as in text-generation-inference,
// requests beyond a batch queue and only the admission slots answer 429.
//
// A freed slot is handed over, not announced: release and kick choose an
// endpoint for the waiter at the head, under the queue's lock, and wake
// it with the endpoint already acquired. So a waiter never wakes to find
// its slot taken, nobody polls, and a request arriving while others wait
// queues behind them instead of overtaking them.
type waitQueue struct {
	mu      sync.Mutex
	waiters []*waiter
	n       atomic.Int32 // len(waiters), read without the lock
}

// waiter is one queued request; it lives in the request's pooled state.
type waiter struct {
	ch chan struct{} // capacity 1; one send per enqueue
	ep *endpoint     // set, with a slot, by whoever serves the waiter
}

func newWaiter() waiter { return waiter{ch: make(chan struct{}, 1)} }

// acquire returns an endpoint chosen by the policy with a slot taken, or
// nil with the error to answer: errQueueTimeout after waiting the queue
// timeout (errPoolSaturated only for a pool built without one, in tests).
func (p *pool) acquire(w *waiter) (*endpoint, errorKind) {
	if p.queue.n.Load() == 0 {
		if ep := p.pick(nil); ep != nil {
			return ep, 0
		}
	}
	if p.queueTimeout <= 0 {
		p.met.saturated.Inc()
		return nil, errPoolSaturated
	}
	return p.wait(w)
}

// wait queues w until an endpoint is handed to it or the queue timeout
// passes.
func (p *pool) wait(w *waiter) (*endpoint, errorKind) {
	start := time.Now()
	q := &p.queue
	w.ep = nil
	q.mu.Lock()
	q.waiters = append(q.waiters, w)
	q.n.Add(1)
	p.serveLocked() // a slot may have been freed since pick failed
	q.mu.Unlock()

	t := time.NewTimer(p.queueTimeout)
	select {
	case <-w.ch:
		t.Stop()
		p.met.queueWait.UpdateDuration(start)
		return w.ep, 0
	case <-t.C:
	}
	q.mu.Lock()
	if w.ep != nil { // served just as the timer fired
		q.mu.Unlock()
		<-w.ch
		p.met.queueWait.UpdateDuration(start)
		return w.ep, 0
	}
	for i, x := range q.waiters {
		if x == w {
			copy(q.waiters[i:], q.waiters[i+1:])
			q.waiters[len(q.waiters)-1] = nil
			q.waiters = q.waiters[:len(q.waiters)-1]
			q.n.Add(-1)
			break
		}
	}
	q.mu.Unlock()
	p.met.queueTimeouts.Inc()
	return nil, errQueueTimeout
}

// serveLocked hands endpoints to the waiters at the head of the queue for
// as long as the policy finds one with a free slot. p.queue.mu is held.
func (p *pool) serveLocked() {
	q := &p.queue
	for len(q.waiters) > 0 {
		ep := p.pick(nil)
		if ep == nil {
			return
		}
		w := q.waiters[0]
		copy(q.waiters, q.waiters[1:])
		q.waiters[len(q.waiters)-1] = nil
		q.waiters = q.waiters[:len(q.waiters)-1]
		q.n.Add(-1)
		w.ep = ep
		w.ch <- struct{}{}
	}
}

// release gives back a slot taken on ep, handing it on to a waiter if
// there is one.
//
// The order matters: the slot is freed before the queue length is read,
// while a waiter is counted before it tries to pick (under the lock), so
// either the waiter's own pick sees the free slot or release sees the
// waiter.
func (p *pool) release(ep *endpoint) {
	ep.inFlight.Add(-1)
	p.kick()
}

// kick serves waiters after capacity appeared: a slot was released or an
// endpoint came back into rotation.
func (p *pool) kick() {
	if p.queue.n.Load() == 0 {
		return
	}
	p.queue.mu.Lock()
	p.serveLocked()
	p.queue.mu.Unlock()
}
