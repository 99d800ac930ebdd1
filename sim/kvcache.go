package sim

// blockPool is the paged KV cache: a fixed array of blocks, a free queue
// in LRU order and a map from block hash to the cached block. It is not
// safe for concurrent use; the engine's mutex guards it.
//
// A block is in one of three states: in use (ref > 0, never evicted),
// free and cached (ref == 0, hashed, in the free queue: reusable by a
// prefix hit until evicted), or free and empty (ref == 0, no hash). Freed
// cached blocks go to the tail of the queue and allocation takes from the
// head, so the least recently freed cached block is evicted first, as in
// vLLM's FreeKVCacheBlockQueue. Empty blocks go to the head: using one
// evicts nothing (vLLM appends them to the tail too; taking them first only
// keeps more of the cache).
type blockPool struct {
	blocks     []block
	head, tail int32 // free queue ends; -1 when empty
	nFree      int
	cached     map[uint64]int32
	evictions  int64
}

type block struct {
	hash       uint64
	hashed     bool
	ref        int32
	prev, next int32 // free queue links; -1 at the ends
	free       bool
}

func newBlockPool(n int) *blockPool {
	p := &blockPool{blocks: make([]block, n), head: -1, tail: -1, cached: make(map[uint64]int32)}
	for i := range p.blocks {
		p.blocks[i].prev, p.blocks[i].next = -1, -1
		p.pushTail(int32(i))
	}
	return p
}

func (p *blockPool) pushTail(id int32) {
	b := &p.blocks[id]
	b.free, b.prev, b.next = true, p.tail, -1
	if p.tail >= 0 {
		p.blocks[p.tail].next = id
	} else {
		p.head = id
	}
	p.tail = id
	p.nFree++
}

func (p *blockPool) pushHead(id int32) {
	b := &p.blocks[id]
	b.free, b.prev, b.next = true, -1, p.head
	if p.head >= 0 {
		p.blocks[p.head].prev = id
	} else {
		p.tail = id
	}
	p.head = id
	p.nFree++
}

func (p *blockPool) unlink(id int32) {
	b := &p.blocks[id]
	if b.prev >= 0 {
		p.blocks[b.prev].next = b.next
	} else {
		p.head = b.next
	}
	if b.next >= 0 {
		p.blocks[b.next].prev = b.prev
	} else {
		p.tail = b.prev
	}
	b.free, b.prev, b.next = false, -1, -1
	p.nFree--
}

// alloc takes the head of the free queue, evicting its cached contents,
// and returns it with one reference; false when no block is free.
func (p *blockPool) alloc() (int32, bool) {
	id := p.head
	if id < 0 {
		return -1, false
	}
	p.unlink(id)
	b := &p.blocks[id]
	if b.hashed {
		delete(p.cached, b.hash)
		b.hashed, b.hash = false, 0
		p.evictions++
	}
	b.ref = 1
	return id, true
}

// lookup returns the cached block with hash h.
func (p *blockPool) lookup(h uint64) (int32, bool) {
	id, ok := p.cached[h]
	return id, ok
}

// touch takes one more reference on a cached block, taking it out of the
// free queue if it was there.
func (p *blockPool) touch(id int32) {
	b := &p.blocks[id]
	if b.free {
		p.unlink(id)
	}
	b.ref++
}

// release drops one reference; at zero the block joins the free queue:
// at the tail if it holds a cached prefix, at the head if it is empty.
func (p *blockPool) release(id int32) {
	b := &p.blocks[id]
	b.ref--
	if b.ref > 0 {
		return
	}
	if b.hashed {
		p.pushTail(id)
	} else {
		p.pushHead(id)
	}
}

// commit names a full, computed block by its chained hash so later
// requests can share it. A hash already cached in another block is left
// there (the first copy wins, as in vLLM); this block stays unnamed.
func (p *blockPool) commit(id int32, h uint64) {
	if _, dup := p.cached[h]; dup {
		return
	}
	b := &p.blocks[id]
	b.hash, b.hashed = h, true
	p.cached[h] = id
}

// used is the number of blocks with references: vLLM's KV usage counts
// free cached blocks as free.
func (p *blockPool) used() int { return len(p.blocks) - p.nFree }
