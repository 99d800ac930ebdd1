package wasm

import "testing"

// pick sends a request to the instance with the fewest pinned requests
// and, among equals, to the one it picked last: an idle plugin serves
// request after request from one instance, whose memory is in the caches,
// instead of rotating through all of them.
func TestPickPrefersTheInstanceUsedLast(t *testing.T) {
	p := &Plugin{slots: make([]slot, 3)}
	for i := range p.slots {
		p.slots[i].inst.Store(&instance{})
	}
	index := func(sl *slot) int {
		for i := range p.slots {
			if sl == &p.slots[i] {
				return i
			}
		}
		return -1
	}
	pickIndex := func() int {
		t.Helper()
		sl, in := p.pick()
		if sl == nil || in == nil || sl.inst.Load() != in {
			t.Fatalf("pick: slot %v, instance %v", sl, in)
		}
		return index(sl)
	}
	first := pickIndex()
	for range 5 {
		if got := pickIndex(); got != first {
			t.Fatalf("idle: picked %d after %d", got, first)
		}
	}
	// A request in flight on it: the next goes elsewhere, and stays there
	// while the first is still in flight.
	p.slots[first].pinned.Add(1)
	second := pickIndex()
	if second == first {
		t.Fatalf("picked the busy instance %d", first)
	}
	if got := pickIndex(); got != second {
		t.Fatalf("picked %d, want %d again (the one used last)", got, second)
	}
	// Fewest pinned wins over the one used last.
	p.slots[second].pinned.Add(2)
	if got := pickIndex(); got == second || got == first {
		t.Fatalf("picked %d with slots %d and %d busier", got, first, second)
	}
	// A dead instance is never picked, even when used last.
	p.slots[first].pinned.Add(-1)
	p.slots[second].pinned.Add(-2)
	last := pickIndex()
	p.slots[last].inst.Load().dead.Store(true)
	for range 3 {
		if got := pickIndex(); got == last {
			t.Fatalf("picked dead instance %d", last)
		}
	}
	for i := range p.slots {
		p.slots[i].inst.Store(nil)
	}
	if sl, in := p.pick(); sl != nil || in != nil {
		t.Fatalf("no instance: picked %v %v", sl, in)
	}
}
