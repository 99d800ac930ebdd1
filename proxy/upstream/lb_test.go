package upstream

import (
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/sluice-proxy/sluice/proxy/config"
)

// testPool builds a pool of n endpoints (no network) with the given
// policy, weights (nil: all 1) and cap.
func testPool(t testing.TB, policy string, weights []int, maxBatch, n int) *Pool {
	t.Helper()
	urls := make([]string, n)
	for i := range urls {
		urls[i] = "http://127.0.0.1:" + strconv.Itoa(10001+i)
	}
	u := config.UpstreamConfig{Name: "p", Endpoints: urls, Weights: weights, LBPolicy: policy, MaxBatchSize: maxBatch}
	if policy == config.LBLeastQueue {
		u.MetricsPath = "/metrics"
	}
	cfg := config.New().WithUpstreamConfig(u)
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	ps, err := newPools(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ps.Close)
	return ps.list[0]
}

// spread picks and releases n times and counts the endpoints chosen.
func spread(t testing.TB, p *Pool, n int) []int {
	t.Helper()
	counts := make([]int, len(p.endpoints))
	for range n {
		ep := p.Pick(nil)
		if ep == nil {
			t.Fatal("no endpoint picked")
		}
		counts[ep.idx]++
		p.Release(ep)
	}
	return counts
}

func TestPickRoundRobinWeighted(t *testing.T) {
	p := testPool(t, config.LBRoundRobin, []int{3, 1, 2}, 4, 3)
	if c := spread(t, p, 600); c[0] != 300 || c[1] != 100 || c[2] != 200 {
		t.Fatalf("3:1:2 split over 600 requests: %v", c)
	}
	// Unweighted: exact rotation.
	p = testPool(t, "", nil, 4, 4)
	if c := spread(t, p, 40); c[0] != 10 || c[1] != 10 || c[2] != 10 || c[3] != 10 {
		t.Fatalf("round robin %v", c)
	}
}

func TestPickRandomWeighted(t *testing.T) {
	p := testPool(t, config.LBRandom, []int{3, 1}, 4, 2)
	c := spread(t, p, 8000)
	if share := float64(c[0]) / 8000; share < 0.70 || share > 0.80 {
		t.Fatalf("weight 3 of 4 got %.3f of the requests (%v)", share, c)
	}
	p = testPool(t, config.LBRandom, nil, 4, 4)
	for i, n := range spread(t, p, 8000) {
		if n < 1600 || n > 2400 { // expected 2000, sd ≈ 39
			t.Fatalf("endpoint %d got %d of 8000", i, n)
		}
	}
}

func TestPickLeastRequest(t *testing.T) {
	p := testPool(t, config.LBLeastRequest, nil, 10, 2)
	busy := p.endpoints[0]
	for range 5 {
		if !busy.TryAcquire(p.maxBatch) {
			t.Fatal("cannot load endpoint 0")
		}
	}
	if c := spread(t, p, 200); c[1] != 200 {
		t.Fatalf("idle endpoint not favoured: %v", c)
	}
	// Three endpoints, two busy: the idle one wins whenever it is drawn
	// (two draws in three), and the busy ones share the rest.
	p = testPool(t, config.LBLeastRequest, nil, 10, 3)
	for _, ep := range p.endpoints[:2] {
		for range 5 {
			ep.TryAcquire(p.maxBatch)
		}
	}
	c := spread(t, p, 3000)
	if c[2] < 1800 || c[2] > 2200 {
		t.Fatalf("idle endpoint got %d of 3000, want about 2000 (%v)", c[2], c)
	}
	// Weights scale the load: 2 in flight on weight 4 beats 1 on weight 1.
	p = testPool(t, config.LBLeastRequest, []int{4, 1}, 10, 2)
	p.endpoints[0].TryAcquire(10)
	p.endpoints[0].TryAcquire(10)
	p.endpoints[1].TryAcquire(10)
	if ep := p.Pick(nil); ep != p.endpoints[0] {
		t.Fatalf("picked %v, want the heavier endpoint", ep)
	}
}

func TestPickLeastQueue(t *testing.T) {
	p := testPool(t, config.LBLeastQueue, nil, 10, 3)
	p.endpoints[0].storeLoad(engineLoad{Waiting: 5})
	p.endpoints[1].storeLoad(engineLoad{Waiting: 0})
	p.endpoints[2].storeLoad(engineLoad{Waiting: 3})
	if c := spread(t, p, 50); c[1] != 50 {
		t.Fatalf("shortest queue not followed: %v", c)
	}
	// Equal queues: fewer requests in flight wins.
	p.endpoints[1].storeLoad(engineLoad{Waiting: 3})
	p.endpoints[1].TryAcquire(10)
	if c := spread(t, p, 20); c[2] != 20 {
		t.Fatalf("tie not broken by in-flight: %v", c)
	}
	// Full ties rotate.
	p = testPool(t, config.LBLeastQueue, nil, 10, 2)
	if c := spread(t, p, 20); c[0] == 0 || c[1] == 0 {
		t.Fatalf("ties always went to one endpoint: %v", c)
	}
}

func TestPickCapAndRelease(t *testing.T) {
	for _, policy := range []string{config.LBRoundRobin, config.LBLeastRequest, config.LBRandom, config.LBLeastQueue} {
		t.Run(policy, func(t *testing.T) {
			p := testPool(t, policy, nil, 2, 3)
			var held []*Endpoint
			for range 6 {
				ep := p.Pick(nil)
				if ep == nil {
					t.Fatalf("pick %d failed below the caps", len(held))
				}
				held = append(held, ep)
			}
			for _, ep := range p.endpoints {
				if ep.inFlight.Load() != 2 {
					t.Fatalf("endpoint %d has %d in flight, cap 2", ep.idx, ep.inFlight.Load())
				}
			}
			if ep := p.Pick(nil); ep != nil {
				t.Fatal("picked past every cap")
			}
			p.Release(held[3])
			if ep := p.Pick(nil); ep != held[3] {
				t.Fatalf("after a release picked %v, want %v", ep, held[3])
			}
		})
	}
}

func TestPickHealth(t *testing.T) {
	p := testPool(t, config.LBRoundRobin, nil, 10, 3)
	p.ejection.BaseEjection, p.ejection.MaxEjection = config.Duration(time.Hour), config.Duration(time.Hour)
	p.endpoints[0].SetActive(false)
	p.endpoints[2].eject()
	if p.upCount.Load() != 1 {
		t.Fatalf("up count %d", p.upCount.Load())
	}
	if c := spread(t, p, 30); c[1] != 30 {
		t.Fatalf("traffic went to endpoints out of rotation: %v", c)
	}
	// Panic mode: nothing in rotation, so everything is tried.
	p.endpoints[1].SetActive(false)
	if c := spread(t, p, 30); c[0] != 10 || c[1] != 10 || c[2] != 10 {
		t.Fatalf("panic mode: %v", c)
	}
	p.endpoints[1].SetActive(true)
	if c := spread(t, p, 30); c[1] != 30 {
		t.Fatalf("after recovery: %v", c)
	}
	// Exclusions (retries) skip tried endpoints; nil when none is left.
	p.endpoints[0].SetActive(true)
	ep := p.Pick([]*Endpoint{p.endpoints[0]})
	if ep != p.endpoints[1] {
		t.Fatalf("excluding 0 picked %v", ep)
	}
	p.Release(ep)
	if ep := p.Pick([]*Endpoint{p.endpoints[0], p.endpoints[1]}); ep != nil {
		t.Fatalf("every eligible endpoint excluded, picked %v", ep)
	}
}

func TestPickPinned(t *testing.T) {
	p := testPool(t, config.LBRoundRobin, nil, 1, 3)
	ep, sat := p.PickPinned([]int32{2, 0}, nil)
	if ep != p.endpoints[2] || sat {
		t.Fatalf("first choice: %v %v", ep, sat)
	}
	ep, sat = p.PickPinned([]int32{2, 0}, nil) // 2 is at its cap of 1
	if ep != p.endpoints[0] || sat {
		t.Fatalf("fallback: %v %v", ep, sat)
	}
	if ep, sat = p.PickPinned([]int32{2, 0}, nil); ep != nil || !sat {
		t.Fatalf("both at cap: %v %v", ep, sat)
	}
	p.endpoints[1].SetActive(false)
	if ep, sat = p.PickPinned([]int32{1}, nil); ep != nil || sat {
		t.Fatalf("out of rotation: %v %v", ep, sat)
	}
}

func TestEjectionBackoff(t *testing.T) {
	p := testPool(t, config.LBRoundRobin, nil, 10, 2)
	ep := p.endpoints[0]
	p.ejection = config.PassiveEjectionConfig{ConsecutiveFailures: 3, BaseEjection: config.Duration(1 << 40), MaxEjection: config.Duration(1 << 42)}
	ep.RecordFailure()
	ep.RecordFailure()
	ep.RecordSuccess() // breaks the run
	ep.RecordFailure()
	ep.RecordFailure()
	if ep.ejected.Load() {
		t.Fatal("ejected without 3 consecutive failures")
	}
	ep.RecordFailure()
	if !ep.ejected.Load() || ep.up.Load() || ep.ejections.Load() != 1 || ep.ejectTotal.Get() != 1 {
		t.Fatalf("not ejected: ejected=%v up=%v ejections=%d", ep.ejected.Load(), ep.up.Load(), ep.ejections.Load())
	}
	ep.RecordFailure() // ignored while ejected
	ep.unEject()
	if !ep.up.Load() || ep.fails.Load() != 0 {
		t.Fatal("not back after the ejection")
	}
	for range 3 {
		ep.RecordFailure()
	}
	if ep.ejections.Load() != 2 {
		t.Fatalf("second ejection counted %d", ep.ejections.Load())
	}
	ep.unEject()
	ep.RecordSuccess()
	if ep.ejections.Load() != 0 {
		t.Fatal("a success did not reset the backoff")
	}
	// Disabled ejection never ejects.
	p.ejection.ConsecutiveFailures = 0
	for range 10 {
		p.endpoints[1].RecordFailure()
	}
	if p.endpoints[1].ejected.Load() {
		t.Fatal("ejected with passive ejection off")
	}
}

// TestPickHammer races picks and releases on every policy and checks the
// caps hold and every slot comes back.
func TestPickHammer(t *testing.T) {
	for _, policy := range []string{config.LBRoundRobin, config.LBLeastRequest, config.LBRandom, config.LBLeastQueue} {
		t.Run(policy, func(t *testing.T) {
			p := testPool(t, policy, []int{1, 2, 3}, 3, 3)
			var wg sync.WaitGroup
			for g := range 8 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := range 2000 {
						ep := p.Pick(nil)
						if ep == nil {
							continue
						}
						if n := ep.inFlight.Load(); n > p.maxBatch {
							t.Errorf("endpoint %d at %d in flight, cap %d", ep.idx, n, p.maxBatch)
						}
						if (g+i)%7 == 0 {
							p.endpoints[i%3].storeLoad(engineLoad{Waiting: float64(i % 5)})
						}
						p.Release(ep)
					}
				}()
			}
			wg.Wait()
			for _, ep := range p.endpoints {
				if n := ep.inFlight.Load(); n != 0 {
					t.Fatalf("endpoint %d left with %d in flight", ep.idx, n)
				}
			}
		})
	}
}

func BenchmarkPick(b *testing.B) {
	for _, policy := range []string{config.LBRoundRobin, config.LBLeastRequest, config.LBRandom, config.LBLeastQueue} {
		b.Run(policy, func(b *testing.B) {
			p := testPool(b, policy, []int{1, 2, 3, 1, 2, 3, 1, 2}, 1<<20, 8)
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					ep := p.Pick(nil)
					p.Release(ep)
				}
			})
		})
	}
}
