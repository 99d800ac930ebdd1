package upstream

import (
	"math"
	"math/rand/v2"
)

// Endpoint selection. Every policy takes a slot on the endpoint it
// returns (inFlight, capped at the pool's max_batch_size) with a CAS, so
// two requests racing for the last slot of an endpoint cannot both win;
// the loser moves on to another endpoint. Selection takes no lock and
// allocates nothing (lb_alloc_test.go).
//
// Health: endpoints out of rotation (failed active checks or passively
// ejected) are skipped — unless none of the pool's endpoints is in
// rotation. Then the pool is in "panic mode" and every endpoint is tried
// again, as Envoy does below its panic threshold: a pool whose health
// checks all fail (a wrong health path, a shared dependency that is
// down) keeps serving what it can instead of failing every request with
// no attempt. A request that fails there still gets its 502 and retries.

// tryAcquire takes one of ep's limit slots; false when all are taken.
func (ep *Endpoint) TryAcquire(limit int64) bool {
	for {
		n := ep.inFlight.Load()
		if n >= limit {
			return false
		}
		if ep.inFlight.CompareAndSwap(n, n+1) {
			return true
		}
	}
}

// inPanic reports whether no endpoint of p is in rotation.
func (p *Pool) InPanic() bool { return p.upCount.Load() == 0 }

// eligible reports whether ep may be chosen: in rotation (or the pool is
// in panic mode) and not already tried by this request.
func eligible(ep *Endpoint, panicMode bool, excl []*Endpoint) bool {
	if !panicMode && !ep.up.Load() {
		return false
	}
	for _, t := range excl {
		if t == ep {
			return false
		}
	}
	return true
}

// pick returns an endpoint chosen by the pool's policy with a slot taken
// on it, skipping the endpoints in excl; nil when every eligible endpoint
// is at its cap.
func (p *Pool) Pick(excl []*Endpoint) *Endpoint {
	pm := p.InPanic()
	switch p.policy {
	case lbLeastRequest:
		return p.pickLeastRequest(pm, excl)
	case lbRandom:
		return p.pickRandom(pm, excl)
	case lbLeastQueue:
		return p.pickLeastQueue(pm, excl)
	}
	return p.pickRoundRobin(pm, excl)
}

// pickRoundRobin walks the weighted schedule from the shared cursor. A
// retry (excl not empty) walks on from the cursor without moving it, so
// that an endpoint that fails does not shift the rotation onto itself.
func (p *Pool) pickRoundRobin(pm bool, excl []*Endpoint) *Endpoint {
	n := uint64(len(p.sched))
	var start uint64
	if len(excl) > 0 {
		start = p.next.Load()
	} else {
		start = p.next.Add(1)
	}
	for i := uint64(0); i < n; i++ {
		ep := p.endpoints[p.sched[(start+i)%n]]
		if eligible(ep, pm, excl) && ep.TryAcquire(p.maxBatch) {
			return ep
		}
	}
	return nil
}

// pickRandom draws an endpoint in proportion to the weights, then walks
// on from it when that one cannot take the request.
func (p *Pool) pickRandom(pm bool, excl []*Endpoint) *Endpoint {
	r := rand.Uint64N(p.totalWeight)
	lo, hi := 0, len(p.cum)-1
	for lo < hi { // first i with cum[i] > r
		mid := int(uint(lo+hi) >> 1)
		if p.cum[mid] > r {
			hi = mid
		} else {
			lo = mid + 1
		}
	}
	n := len(p.endpoints)
	for i := 0; i < n; i++ {
		ep := p.endpoints[(lo+i)%n]
		if eligible(ep, pm, excl) && ep.TryAcquire(p.maxBatch) {
			return ep
		}
	}
	return nil
}

// lessLoaded reports whether a has fewer requests in flight than b per
// unit of weight.
func lessLoaded(a, b *Endpoint) bool {
	return a.inFlight.Load()*b.weight < b.inFlight.Load()*a.weight
}

// pickLeastRequest compares two distinct random endpoints and takes the
// less loaded (power of two choices), falling back to a full scan when
// neither can take the request.
func (p *Pool) pickLeastRequest(pm bool, excl []*Endpoint) *Endpoint {
	n := len(p.endpoints)
	if n >= 2 {
		i := rand.IntN(n)
		j := rand.IntN(n - 1)
		if j >= i {
			j++
		}
		a, b := p.endpoints[i], p.endpoints[j]
		if lessLoaded(b, a) {
			a, b = b, a
		}
		if eligible(a, pm, excl) && a.TryAcquire(p.maxBatch) {
			return a
		}
		if eligible(b, pm, excl) && b.TryAcquire(p.maxBatch) {
			return b
		}
	}
	return p.pickBest(pm, excl, lessLoaded)
}

// lessQueued orders endpoints by the queue depth their engine reported,
// then by requests in flight.
func lessQueued(a, b *Endpoint) bool {
	qa, qb := math.Float64frombits(a.waiting.Load()), math.Float64frombits(b.waiting.Load())
	if qa != qb {
		return qa < qb
	}
	return a.inFlight.Load() < b.inFlight.Load()
}

// pickLeastQueue takes the endpoint with the shortest engine queue.
func (p *Pool) pickLeastQueue(pm bool, excl []*Endpoint) *Endpoint {
	return p.pickBest(pm, excl, lessQueued)
}

// pickBest scans every endpoint, from a rotating offset so that ties do
// not always go to the first, for the best by less that has a free slot.
// A slot lost to a concurrent request makes it scan again (at most once
// per endpoint).
func (p *Pool) pickBest(pm bool, excl []*Endpoint, less func(a, b *Endpoint) bool) *Endpoint {
	n := len(p.endpoints)
	off := int(p.next.Add(1) % uint64(n))
	for range n {
		var best *Endpoint
		for i := 0; i < n; i++ {
			ep := p.endpoints[(off+i)%n]
			if !eligible(ep, pm, excl) || ep.inFlight.Load() >= p.maxBatch {
				continue
			}
			if best == nil || less(ep, best) {
				best = ep
			}
		}
		if best == nil {
			return nil
		}
		if best.TryAcquire(p.maxBatch) {
			return best
		}
	}
	return nil
}

// AcquirePinned takes a slot on the first usable endpoint of list (a
// plugin's choice, as endpoint indexes): ErrSaturated when one was skipped
// only for its cap, ErrNoEndpoint when none can be used. It never waits.
func (p *Pool) AcquirePinned(list []int32) (*Endpoint, error) {
	ep, saturated := p.PickPinned(list, nil)
	switch {
	case ep != nil:
		return ep, nil
	case saturated:
		p.met.saturated.Inc()
		return nil, ErrSaturated
	}
	p.met.noEndpoint.Inc()
	return nil, ErrNoEndpoint
}

// PickPinned tries the endpoints a plugin named, in order, skipping those
// out of rotation (unless the pool is in panic mode), those already tried
// and those at their cap. saturated reports whether one was skipped only
// for its cap.
func (p *Pool) PickPinned(list []int32, excl []*Endpoint) (ep *Endpoint, saturated bool) {
	pm := p.InPanic()
	for _, i := range list {
		ep := p.endpoints[i]
		if !eligible(ep, pm, excl) {
			continue
		}
		if ep.TryAcquire(p.maxBatch) {
			return ep, false
		}
		saturated = true
	}
	return nil, saturated
}
