package sdk

import (
	"math/rand/v2"
	"testing"
)

// TestStreamTableMatchesMap runs random puts, gets and deletes on a
// streamTable and on a map, with IDs drawn from a small range so that
// probes collide and deletions shift entries back, and checks that they
// agree after every step.
func TestStreamTableMatchesMap(t *testing.T) {
	for _, idRange := range []uint32{8, 64, 1000} {
		rng := rand.New(rand.NewPCG(1, uint64(idRange)))
		var tab streamTable
		model := map[uint32]*stream{}
		for step := range 20000 {
			id := rng.Uint32N(idRange)
			if idRange == 1000 {
				id *= 1 << 16 // IDs that share their low bits
			}
			switch rng.IntN(3) {
			case 0:
				s := &stream{pluginID: uint32(step)}
				tab.put(id, s)
				model[id] = s
			case 1:
				if got, want := tab.del(id), model[id]; got != want {
					t.Fatalf("range %d step %d: del(%d) = %p, want %p", idRange, step, id, got, want)
				}
				delete(model, id)
			}
			if got, want := tab.get(id), model[id]; got != want {
				t.Fatalf("range %d step %d: get(%d) = %p, want %p", idRange, step, id, got, want)
			}
			if tab.len() != len(model) {
				t.Fatalf("range %d step %d: len %d, want %d", idRange, step, tab.len(), len(model))
			}
		}
		for id, want := range model {
			if got := tab.get(id); got != want {
				t.Fatalf("range %d: at the end get(%d) = %p, want %p", idRange, id, got, want)
			}
		}
		if len(tab.slots) > 4*max(minStreamSlots, len(model)*2) {
			t.Errorf("range %d: %d slots for at most %d streams", idRange, len(tab.slots), idRange)
		}
	}
}

// TestStreamTableNoAllocs: once grown, a request's put, gets and del
// allocate nothing.
func TestStreamTableNoAllocs(t *testing.T) {
	var tab streamTable
	s := &stream{}
	for id := range uint32(8) {
		tab.put(id, s)
	}
	id := uint32(100)
	if n := testing.AllocsPerRun(1000, func() {
		id++
		tab.put(id, s)
		_ = tab.get(id)
		tab.del(id)
	}); n != 0 {
		t.Errorf("%v allocations per stream", n)
	}
}
