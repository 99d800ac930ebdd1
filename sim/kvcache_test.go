package sim

import (
	"slices"
	"testing"
)

// freeQueue walks the free queue from head to tail and checks that the
// backward links and the free count agree with it.
func freeQueue(t *testing.T, p *blockPool) []int32 {
	t.Helper()
	var ids []int32
	prev := int32(-1)
	for id := p.head; id >= 0; id = p.blocks[id].next {
		if b := p.blocks[id]; b.prev != prev || !b.free {
			t.Fatalf("block %d: prev %d free %v, want prev %d and free", id, b.prev, b.free, prev)
		}
		ids = append(ids, id)
		prev = id
	}
	if p.tail != prev || len(ids) != p.nFree {
		t.Fatalf("tail %d, %d free; the walk ends at %d after %d blocks", p.tail, p.nFree, prev, len(ids))
	}
	return ids
}

// TestBlockPoolFreeQueue: allocation takes the head; a released cached
// block joins the tail, an empty one the head; a touched cached block
// leaves the queue from wherever it stands.
func TestBlockPoolFreeQueue(t *testing.T) {
	p := newBlockPool(4)
	check := func(want ...int32) {
		t.Helper()
		if got := freeQueue(t, p); !slices.Equal(got, want) {
			t.Fatalf("free queue %v, want %v", got, want)
		}
	}
	check(0, 1, 2, 3)
	for want := range int32(4) {
		if id, ok := p.alloc(); !ok || id != want {
			t.Fatalf("alloc = %d %v, want %d", id, ok, want)
		}
	}
	check()
	if _, ok := p.alloc(); ok {
		t.Fatal("alloc succeeded with no free block")
	}
	p.commit(1, 11)
	p.commit(2, 22)
	p.release(1) // cached: tail
	p.release(0) // empty: head
	p.release(2) // cached: tail
	p.release(3) // empty: head
	check(3, 0, 1, 2)
	p.touch(1) // a prefix hit in the middle
	check(3, 0, 2)
	p.touch(3)
	p.touch(2)
	check(0)
	p.touch(0)
	check()
	p.release(2)
	check(2)
	if p.used() != 3 {
		t.Fatalf("used %d, want 3", p.used())
	}
}
