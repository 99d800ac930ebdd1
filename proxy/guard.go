package proxy

import "sync/atomic"

const (
	guardFree uint32 = iota
	guardHeld
	guardReleased
)

// Guard holds one admission slot. The first of Complete, Fail or Release
// gives the slot back and records the outcome; later calls are no-ops.
// Release without an outcome counts the request as failed, so
//
//	g, err := router.TryAcquire()
//	if err != nil { … 429 … }
//	defer g.Release()
//	… work, which may panic …
//	g.Complete()
//
// frees the slot exactly once on every path. A Guard is safe for concurrent
// use.
type Guard struct {
	r     *Router
	state atomic.Uint32
}

// Complete releases the slot and counts the request as completed.
func (g *Guard) Complete() { g.finish(true) }

// Fail releases the slot and counts the request as failed.
func (g *Guard) Fail() { g.finish(false) }

// Release releases the slot if Complete or Fail has not, counting the
// request as failed.
func (g *Guard) Release() { g.finish(false) }

// Held reports whether the guard still holds its slot.
func (g *Guard) Held() bool { return g.state.Load() == guardHeld }

func (g *Guard) finish(ok bool) {
	if g == nil || !g.state.CompareAndSwap(guardHeld, guardReleased) {
		return
	}
	if ok {
		g.r.completed.Inc()
	} else {
		g.r.failed.Inc()
	}
	g.r.active.Add(-1)
}
