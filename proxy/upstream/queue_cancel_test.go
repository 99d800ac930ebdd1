package upstream

import (
	"math/rand/v2"
	"sync"
	"testing"
	"time"
)

// cancellableWaiter returns a waiter that a send on the returned channel
// cancels, as the proxy's disconnect watch does.
func cancellableWaiter() (Waiter, chan struct{}) {
	ch := make(chan struct{}, 1)
	w := NewWaiter()
	w.CancelOn(ch)
	return w, ch
}

// TestQueueCancel: a cancelled waiter leaves the queue at once, holding
// no slot and counting no timeout; the waiter behind it moves up and gets
// the next free slot.
func TestQueueCancel(t *testing.T) {
	p := queuedPool(t, 1, 1, time.Minute)
	held, _ := p.Acquire(&Waiter{})
	w, cancel := cancellableWaiter()
	first := make(chan error, 1)
	go func() {
		ep, err := p.Acquire(&w)
		if ep != nil {
			t.Errorf("cancelled waiter got endpoint %v", ep)
		}
		first <- err
	}()
	waitFor(t, "first waiter queued", func() bool { return p.Queued() == 1 })
	second := acquireAsync(p)
	waitFor(t, "second waiter queued", func() bool { return p.Queued() == 2 })

	cancel <- struct{}{}
	select {
	case err := <-first:
		if err != ErrCancelled {
			t.Fatalf("cancelled wait: %v, want ErrCancelled", err)
		}
	case <-time.After(3 * time.Second): // at once by design; generous for CI
		t.Fatal("cancelled waiter still waiting")
	}
	if n := p.Queued(); n != 1 {
		t.Fatalf("queued %d after the cancel, want 1", n)
	}
	if p.met.queueTimeouts.Get() != 0 {
		t.Fatal("a cancel counted as a queue timeout")
	}
	p.Release(held)
	ep := <-second
	if ep != held || ep.inFlight.Load() != 1 {
		t.Fatalf("second waiter got %v with %d in flight", ep, ep.inFlight.Load())
	}
	p.Release(ep)
	if p.Queued() != 0 || ep.inFlight.Load() != 0 {
		t.Fatalf("queued %d, in flight %d", p.Queued(), ep.inFlight.Load())
	}
}

// TestQueueCancelHammer races cancels with releases that serve the same
// waiters: a waiter served just as it is cancelled gives its slot back,
// so nothing is held, queued or lost at the end, no cap is exceeded, and
// every waiter that was not cancelled is served.
func TestQueueCancelHammer(t *testing.T) {
	p := queuedPool(t, 2, 1, 30*time.Second)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w, cancel := cancellableWaiter()
			for i := range 200 {
				if (g+i)%3 == 0 {
					go func() {
						time.Sleep(time.Duration(rand.IntN(200)) * time.Microsecond)
						select {
						case cancel <- struct{}{}:
						default:
						}
					}()
				}
				ep, err := p.Acquire(&w)
				if ep == nil {
					if err != ErrCancelled {
						t.Errorf("not served: %v", err)
						return
					}
				} else {
					if n := ep.inFlight.Load(); n > 1 {
						t.Errorf("in flight %d over the cap", n)
					}
					p.Release(ep)
				}
				select { // a cancel that came after the wait ended
				case <-cancel:
				default:
				}
			}
		}()
	}
	wg.Wait()
	if n := p.Queued(); n != 0 {
		t.Fatalf("%d still queued", n)
	}
	for _, ep := range p.endpoints {
		if n := ep.inFlight.Load(); n != 0 {
			t.Fatalf("endpoint %d holds %d slots after the hammer", ep.idx, n)
		}
	}
}
