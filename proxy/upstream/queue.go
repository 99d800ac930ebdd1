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
	ch     chan struct{}   // capacity 1; one send per enqueue
	ep     *Endpoint       // set, with a slot, by whoever serves the waiter
	cancel <-chan struct{} // a receive ends the wait (CancelOn); nil: never
}

func NewWaiter() Waiter { return Waiter{ch: make(chan struct{}, 1)} }

// CancelOn makes a receive from ch end the waiter's waits with
// ErrCancelled: the proxy passes the channel its disconnect watch sends on
// when the request's client goes away. Set once, before the first
// Acquire; Reset keeps it.
func (w *Waiter) CancelOn(ch <-chan struct{}) { w.cancel = ch }

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
	// ErrCancelled: the waiter's cancel channel (Waiter.CancelOn) fired
	// while it waited; it left the queue holding no slot.
	ErrCancelled = errors.New("upstream: the wait for an endpoint was cancelled")
)

// Acquire returns an endpoint chosen by the policy with a slot taken, or
// nil with ErrQueueTimeout after waiting the queue timeout (ErrSaturated
// only for a pool built without one, in tests), or with ErrCancelled as
// soon as w's cancel channel fires while it waits. w is the caller's place
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

// wait queues w until an endpoint is handed to it, the queue timeout
// passes, or w is cancelled. A cancelled waiter leaves the queue at once,
// so the waiters behind it move up; one served just as it was cancelled
// gives its slot straight back (Release hands it to the next waiter), so
// the slot count stays exact either way.
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
	cancelled := false
	select {
	case <-w.ch:
		t.Stop()
		p.met.queueWait.UpdateDuration(start)
		return w.ep, nil
	case <-t.C:
	case <-w.cancel: // nil: never
		t.Stop()
		cancelled = true
	}
	q.mu.Lock()
	if ep := w.ep; ep != nil { // served just as the timer fired or the wait was cancelled
		q.mu.Unlock()
		<-w.ch
		if cancelled {
			w.ep = nil
			p.Release(ep)
			return nil, ErrCancelled
		}
		p.met.queueWait.UpdateDuration(start)
		return ep, nil
	}
	q.removeLocked(w)
	q.mu.Unlock()
	if cancelled {
		return nil, ErrCancelled
	}
	p.met.queueTimeouts.Inc()
	return nil, ErrQueueTimeout
}

// removeLocked takes w, which was not served, out of the queue. q.mu is
// held.
func (q *waitQueue) removeLocked(w *Waiter) {
	for i, x := range q.waiters {
		if x == w {
			copy(q.waiters[i:], q.waiters[i+1:])
			q.waiters[len(q.waiters)-1] = nil
			q.waiters = q.waiters[:len(q.waiters)-1]
			q.n.Add(-1)
			return
		}
	}
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
