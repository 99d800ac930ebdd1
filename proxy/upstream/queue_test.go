package upstream

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluice-proxy/sluice/proxy/config"
)

func queuedPool(t *testing.T, endpoints, maxBatch int, timeout time.Duration) *Pool {
	t.Helper()
	p := testPool(t, config.LBRoundRobin, nil, maxBatch, endpoints)
	p.queueTimeout = timeout
	return p
}

func TestQueueFIFO(t *testing.T) {
	p := queuedPool(t, 1, 1, time.Minute)
	held, kind := p.Acquire(&Waiter{})
	if held == nil || kind != nil {
		t.Fatalf("first acquire: %v %v", held, kind)
	}
	order := make(chan int, 3)
	eps := make(chan *Endpoint, 3)
	for i := 1; i <= 3; i++ {
		go func() {
			w := NewWaiter()
			ep, kind := p.Acquire(&w)
			if ep == nil {
				t.Errorf("waiter %d: %v", i, kind)
			}
			order <- i
			eps <- ep
		}()
		waitFor(t, "waiter queued", func() bool { return p.queue.n.Load() == int32(i) })
	}
	// An arrival while others wait queues behind them even though it
	// could race for the next free slot.
	late := acquireAsync(p)
	waitFor(t, "late arrival queued", func() bool { return p.queue.n.Load() == 4 })
	p.Release(held)
	for want := 1; want <= 3; want++ {
		if got := <-order; got != want {
			t.Fatalf("served waiter %d, want %d (FIFO)", got, want)
		}
		ep := <-eps
		if ep.inFlight.Load() != 1 {
			t.Fatalf("in flight %d while a waiter holds the only slot", ep.inFlight.Load())
		}
		p.Release(ep)
	}
	p.Release(<-late)
	if p.queue.n.Load() != 0 || p.endpoints[0].inFlight.Load() != 0 {
		t.Fatalf("queue %d, in flight %d", p.queue.n.Load(), p.endpoints[0].inFlight.Load())
	}
}

func TestQueueTimeout(t *testing.T) {
	p := queuedPool(t, 2, 1, 50*time.Millisecond)
	a, _ := p.Acquire(&Waiter{})
	b, _ := p.Acquire(&Waiter{})
	if a == nil || b == nil {
		t.Fatal("could not fill the pool")
	}
	w := NewWaiter()
	start := time.Now()
	ep, kind := p.Acquire(&w)
	if ep != nil || kind != ErrQueueTimeout {
		t.Fatalf("acquire on a full pool: %v %v", ep, kind)
	}
	if d := time.Since(start); d < 50*time.Millisecond {
		t.Fatalf("gave up after %s, before the queue timeout", d)
	}
	if p.queue.n.Load() != 0 || p.met.queueTimeouts.Get() != 1 {
		t.Fatalf("queue %d timeouts %d", p.queue.n.Load(), p.met.queueTimeouts.Get())
	}
	// The waiter is reusable: released capacity reaches it.
	go func() {
		time.Sleep(20 * time.Millisecond)
		p.Release(a)
	}()
	p.queueTimeout = time.Minute
	if ep, _ := p.Acquire(&w); ep != a {
		t.Fatalf("reused waiter got %v", ep)
	}
	// No queue: 429 at once.
	p.queueTimeout = 0
	if ep, kind := p.Acquire(&w); ep != nil || kind != ErrSaturated {
		t.Fatalf("no queue: %v %v", ep, kind)
	}
}

// TestQueueComeBack checks that an endpoint returning to rotation serves
// waiters (kick), not only releases.
func TestQueueComeBack(t *testing.T) {
	p := queuedPool(t, 2, 1, time.Minute)
	p.endpoints[1].SetActive(false)
	held, _ := p.Acquire(&Waiter{})
	if held != p.endpoints[0] {
		t.Fatalf("acquired %v", held)
	}
	got := acquireAsync(p)
	waitFor(t, "queued", func() bool { return p.queue.n.Load() == 1 })
	p.endpoints[1].SetActive(true)
	if ep := <-got; ep != p.endpoints[1] {
		t.Fatalf("waiter got %v, want the endpoint that came back", ep)
	}
}

// TestQueueHammer races arrivals, waits and releases: every request is
// served, no cap is exceeded, and nothing is left queued or held.
func TestQueueHammer(t *testing.T) {
	p := queuedPool(t, 3, 2, 30*time.Second)
	var served atomic.Int64
	var wg sync.WaitGroup
	for range 12 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w := NewWaiter()
			for range 300 {
				ep, kind := p.Acquire(&w)
				if ep == nil {
					t.Errorf("not served: %v", kind)
					return
				}
				if n := ep.inFlight.Load(); n > 2 {
					t.Errorf("in flight %d over the cap", n)
				}
				served.Add(1)
				p.Release(ep)
			}
		}()
	}
	wg.Wait()
	if served.Load() != 12*300 || p.queue.n.Load() != 0 {
		t.Fatalf("served %d, queued %d", served.Load(), p.queue.n.Load())
	}
	for _, ep := range p.endpoints {
		if ep.inFlight.Load() != 0 {
			t.Fatalf("endpoint %d holds %d", ep.idx, ep.inFlight.Load())
		}
	}
}
