package upstream

import (
	"errors"
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
	waiters []*Waiter
	n       atomic.Int32 // len(waiters), read without the lock
}

// Waiter is one queued request; it lives in the request's pooled state
// (NewWaiter) and is reused from request to request.
type Waiter struct {
	ch chan struct{} // capacity 1; one send per enqueue
	ep *Endpoint     // set, with a slot, by whoever serves the waiter
}

func NewWaiter() Waiter { return Waiter{ch: make(chan struct{}, 1)} }

// Reset forgets the endpoint the last wait was served with.
func (w *Waiter) Reset() { w.ep = nil }

// Errors of Acquire and AcquirePinned, which the request path answers.
var (
	// ErrSaturated: every eligible endpoint is at its cap and the request
	// may not wait (a plugin pinned the endpoints, or the pool has no
	// queue timeout).
	ErrSaturated = errors.New("upstream: every endpoint of the pool is at capacity")
	// ErrQueueTimeout: no endpoint became free within the queue timeout.
	ErrQueueTimeout = errors.New("upstream: no endpoint became free within the queue timeout")
	// ErrNoEndpoint: none of the endpoints a plugin pinned can be used.
	ErrNoEndpoint = errors.New("upstream: no pinned endpoint can take the request")
)

// Acquire returns an endpoint chosen by the policy with a slot taken, or
// nil with ErrQueueTimeout after waiting the queue timeout (ErrSaturated
// only for a pool built without one, in tests). w is the caller's place
// in the queue, reused across requests.
func (p *Pool) Acquire(w *Waiter) (*Endpoint, error) {
	if p.queue.n.Load() == 0 {
		if ep := p.Pick(nil); ep != nil {
			return ep, nil
		}
	}
	if p.queueTimeout <= 0 {
		p.met.saturated.Inc()
		return nil, ErrSaturated
	}
	return p.wait(w)
}

// wait queues w until an endpoint is handed to it or the queue timeout
// passes.
func (p *Pool) wait(w *Waiter) (*Endpoint, error) {
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
		return w.ep, nil
	case <-t.C:
	}
	q.mu.Lock()
	if w.ep != nil { // served just as the timer fired
		q.mu.Unlock()
		<-w.ch
		p.met.queueWait.UpdateDuration(start)
		return w.ep, nil
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
	return nil, ErrQueueTimeout
}

// serveLocked hands endpoints to the waiters at the head of the queue for
// as long as the policy finds one with a free slot. p.queue.mu is held.
func (p *Pool) serveLocked() {
	q := &p.queue
	for len(q.waiters) > 0 {
		ep := p.Pick(nil)
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
func (p *Pool) Release(ep *Endpoint) {
	ep.inFlight.Add(-1)
	p.kick()
}

// kick serves waiters after capacity appeared: a slot was released or an
// endpoint came back into rotation.
func (p *Pool) kick() {
	if p.queue.n.Load() == 0 {
		return
	}
	p.queue.mu.Lock()
	p.serveLocked()
	p.queue.mu.Unlock()
}
