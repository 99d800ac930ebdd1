//go:build !race

package upstream

import (
	"testing"

	"github.com/sluice-proxy/sluice/proxy/config"
)

// TestAllocsPick asserts that endpoint selection and release allocate
// nothing, for every policy, with retries' exclusions and plugin pins.
func TestAllocsPick(t *testing.T) {
	for _, policy := range []string{config.LBRoundRobin, config.LBLeastRequest, config.LBRandom, config.LBLeastQueue} {
		p := testPool(t, policy, []int{1, 2, 3}, 4, 3)
		excl := []*Endpoint{p.endpoints[0]}
		pins := []int32{2, 1}
		var w Waiter = NewWaiter()
		if n := testing.AllocsPerRun(1000, func() {
			ep, _ := p.Acquire(&w)
			p.Release(ep)
			ep = p.Pick(excl)
			p.Release(ep)
			ep, _ = p.PickPinned(pins, excl)
			p.Release(ep)
		}); n != 0 {
			t.Errorf("%s: %v allocs per selection", policy, n)
		}
	}
}
