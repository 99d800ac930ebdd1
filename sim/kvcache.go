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

// pushTail appends the block to the free queue.
func (p *blockPool) pushTail(id int32) { p.link(p.tail, id, -1) }

// pushHead puts the block first in the free queue.
func (p *blockPool) pushHead(id int32) { p.link(-1, id, p.head) }

// link puts the block between prev and next in the free queue.
func (p *blockPool) link(prev, id, next int32) {
	p.blocks[id].free = true
	p.join(prev, id)
	p.join(id, next)
	p.nFree++
}

func (p *blockPool) unlink(id int32) {
	b := &p.blocks[id]
	p.join(b.prev, b.next)
	b.free, b.prev, b.next = false, -1, -1
	p.nFree--
}

// join makes a the predecessor of z in the free queue; -1 stands for an
// end of the queue (a == -1: z becomes the head; z == -1: a the tail).
func (p *blockPool) join(a, z int32) {
	if a >= 0 {
		p.blocks[a].next = z
	} else {
		p.head = z
	}
	if z >= 0 {
		p.blocks[z].prev = a
	} else {
		p.tail = a
	}
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
