package proxy

import (
	"errors"
	"math/rand/v2"
	"sync"
	"testing"
)

func TestRouterSlots(t *testing.T) {
	r := NewRouter(NewConfig().WithMaxConcurrentRequests(2))
	g1, err := r.TryAcquire()
	if err != nil {
		t.Fatal(err)
	}
	g2, err := r.TryAcquire()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.TryAcquire(); !errors.Is(err, ErrResourceExhausted) {
		t.Fatalf("third acquire: got %v, want ErrResourceExhausted", err)
	}
	if h := r.Health(); h.ActiveRequests != 2 || h.MaxConcurrentRequests != 2 {
		t.Fatalf("health = %+v", h)
	}
	g1.Complete()
	g1.Complete() // no-op
	g1.Fail()     // no-op
	g1.Release()  // no-op
	g2.Release()  // no outcome: failed
	g2.Complete() // no-op
	m := r.Metrics()
	// The rejected attempt is a request too (issue 13: 429s were left out
	// of sluice_requests_total) and not a success.
	if m.Active != 0 || m.Total != 3 || m.Completed != 1 || m.Failed != 1 || m.Rejected != 1 {
		t.Fatalf("metrics = %+v", m)
	}
	if got := m.SuccessRate(); got != 1.0/3 {
		t.Fatalf("success rate = %v", got)
	}
	if _, err := r.TryAcquire(); err != nil {
		t.Fatalf("acquire after release: %v", err)
	}
	if got := r.Metrics().Utilization(); got != 0.5 {
		t.Fatalf("utilization = %v", got)
	}
}

func TestRouterDefaultsAndHealth(t *testing.T) {
	r := NewRouter(nil)
	if got := r.Health(); got.Status != StatusStarting || got.MaxConcurrentRequests != DefaultMaxConcurrentRequests {
		t.Fatalf("new router health = %+v", got)
	}
	if r.IsReady() {
		t.Fatal("new router is ready")
	}
	r.SetReady(true)
	if !r.IsReady() || r.Health().Status != StatusHealthy {
		t.Fatalf("ready router: %+v", r.Health())
	}
	r.StartDrain()
	if r.IsReady() || r.Health().Status != StatusUnhealthy {
		t.Fatalf("draining router: %+v", r.Health())
	}
	if got := (Metrics{}).SuccessRate(); got != 1 {
		t.Fatalf("success rate with no requests = %v, want 1", got)
	}
}

func TestGuardReleasedOnPanic(t *testing.T) {
	r := NewRouter(NewConfig().WithMaxConcurrentRequests(1))
	func() {
		defer func() { _ = recover() }()
		g, err := r.TryAcquire()
		if err != nil {
			t.Fatal(err)
		}
		defer g.Release()
		panic("handler bug")
	}()
	if m := r.Metrics(); m.Active != 0 || m.Failed != 1 {
		t.Fatalf("after panic: %+v", m)
	}
}

// TestRouterHammer checks the slot invariant under contention: whatever mix
// of Complete, Fail, panics and repeated releases, every slot comes back
// and total == completed + failed.
func TestRouterHammer(t *testing.T) {
	const workers, perWorker, slots = 32, 2000, 8
	r := NewRouter(NewConfig().WithMaxConcurrentRequests(slots))
	var wg sync.WaitGroup
	var overflow sync.Once
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(seed uint64) {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
			for i := 0; i < perWorker; i++ {
				func() {
					defer func() { _ = recover() }()
					g, err := r.TryAcquire()
					if err != nil {
						return
					}
					defer g.Release()
					if a := r.active.Load(); a > slots || a < 1 {
						overflow.Do(func() { t.Errorf("active = %d with %d slots", a, slots) })
					}
					switch rng.IntN(5) {
					case 0:
						g.Complete()
					case 1:
						g.Fail()
					case 2:
						panic("boom")
					case 3:
						g.Complete()
						g.Fail()
						g.Complete()
					case 4: // released by the defer only
					}
				}()
			}
		}(uint64(w))
	}
	wg.Wait()
	m := r.Metrics()
	if m.Active != 0 {
		t.Fatalf("active = %d after all released", m.Active)
	}
	if m.Total != m.Completed+m.Failed+m.Rejected {
		t.Fatalf("total %d != completed %d + failed %d + rejected %d", m.Total, m.Completed, m.Failed, m.Rejected)
	}
	if m.Total != workers*perWorker {
		t.Fatalf("total %d != attempts %d", m.Total, workers*perWorker)
	}
}

func BenchmarkTryAcquireRelease(b *testing.B) {
	r := NewRouter(NewConfig().WithMaxConcurrentRequests(1 << 20))
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		var g Guard
		for pb.Next() {
			if err := r.acquireInto(&g); err != nil {
				b.Fatal(err)
			}
			g.Complete()
		}
	})
}

func BenchmarkTryAcquirePublic(b *testing.B) {
	r := NewRouter(NewConfig().WithMaxConcurrentRequests(1 << 20))
	b.ReportAllocs()
	for b.Loop() {
		g, err := r.TryAcquire()
		if err != nil {
			b.Fatal(err)
		}
		g.Complete()
	}
}
