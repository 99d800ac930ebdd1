package sim

import "time"

// seq is one request's sequence. The engine's mutex guards every field
// except those the handler reads after done is closed (see engine.go).
type seq struct {
	id         uint64
	promptLen  int
	tokens     []uint32 // prompt, then generated tokens
	promptHash uint64
	target     int    // tokens to generate
	reason     string // finish_reason when target is reached: "stop" or "length"

	computed  int      // tokens whose KV is computed
	blocks    []int32  // block table
	hashes    []uint64 // chained hashes of the full blocks of tokens, grown lazily
	committed int      // leading blocks already named in the cache
	generated int
	arrival   time.Duration // simulated
	ttft      time.Duration // simulated; valid once generated > 0
	running   bool
	finished  bool
	err       error

	notify chan struct{} // cap 1: "generated or finished changed"
}

// blockHash returns the chained hash of full block i of s's tokens.
func (s *seq) blockHash(i, bs int) uint64 {
	for len(s.hashes) <= i {
		j := len(s.hashes)
		var parent uint64
		if j > 0 {
			parent = s.hashes[j-1]
		}
		s.hashes = append(s.hashes, hashBlock(parent, s.tokens[j*bs:(j+1)*bs]))
	}
	return s.hashes[i]
}

func (s *seq) wake() {
	select {
	case s.notify <- struct{}{}:
	default:
	}
}

// scheduled is one sequence's share of a step.
type scheduled struct {
	s *seq
	n int // tokens computed for s in this step
}

// plan is one step: what runs and how long it takes in simulated time.
type plan struct {
	work    []scheduled
	prefill int // uncached prompt (or recomputed) tokens
	decode  int // sequences decoding one token
	dur     time.Duration
}

// schedule builds the next step, as vLLM V1's scheduler does: running
// sequences first (in admission order), each given the tokens it still
// needs within the token budget, preempting from the back of the running
// list when a block cannot be had; then, if nothing was preempted, waiting
// requests in FIFO order while a sequence slot, budget and blocks last,
// after a prefix-cache lookup. start is the step's simulated start: a
// request admitted in it arrived no later (a stamp taken from the wall
// clock while the scheduler lagged could say otherwise, and TTFT would
// shrink). Called with e.mu held.
func (e *Engine) schedule(p *plan, start time.Duration) {
	p.work, p.prefill, p.decode = p.work[:0], 0, 0
	budget := e.cfg.MaxBatchedTokens
	preempted := false
	for i := 0; i < len(e.running) && budget > 0; i++ {
		s := e.running[i]
		n := min(len(s.tokens)-s.computed, budget)
		for !e.grow(s, s.computed+n) {
			victim := e.running[len(e.running)-1]
			e.running = e.running[:len(e.running)-1]
			e.preempt(victim)
			preempted = true
			if victim == s {
				s = nil
				break
			}
		}
		if s == nil {
			break
		}
		e.account(p, s, n)
		e.cacheScheduled(s, s.computed+n)
		budget -= n
	}
	for !preempted && len(e.waiting) > 0 && len(e.running) < e.cfg.MaxNumSeqs && budget > 0 {
		s := e.waiting[0]
		hits := e.hits(s)
		cachedTokens := len(hits) * e.cfg.BlockSize
		n := min(len(s.tokens)-cachedTokens, budget)
		if !e.admit(s, hits, cachedTokens+n) {
			break
		}
		e.prefixQueries += int64(len(s.tokens))
		e.prefixHits += int64(cachedTokens)
		e.waiting = e.waiting[1:]
		s.arrival = min(s.arrival, start)
		s.running = true
		e.running = append(e.running, s)
		e.account(p, s, n)
		e.cacheScheduled(s, cachedTokens+n)
		budget -= n
	}
	p.dur = e.cfg.StepOverhead + time.Duration(p.prefill)*e.cfg.PrefillPerToken +
		time.Duration(p.decode)*e.cfg.DecodePerSeq
}

// cacheScheduled names in the cache the full blocks of s's first upTo
// tokens, those the step computes included, as soon as they are
// scheduled, as vLLM V1 does (KVCacheManager.allocate_slots caches the
// request's blocks up to its computed tokens plus the step's new ones):
// a request scheduled later in the same step, or in any later one, hits
// them. The step's forward pass writes their KV before any attention in
// it reads them, so sharing within a step is sound; a block is never
// named before the step that computes it is scheduled.
func (e *Engine) cacheScheduled(s *seq, upTo int) {
	bs := e.cfg.BlockSize
	for s.committed < upTo/bs {
		e.kv.commit(s.blocks[s.committed], s.blockHash(s.committed, bs))
		s.committed++
	}
}

// account adds n tokens of s to the step: one token for a sequence whose
// other tokens are all computed and that has generated before is a decode;
// anything else is prefill (or recompute after preemption).
func (e *Engine) account(p *plan, s *seq, n int) {
	p.work = append(p.work, scheduled{s, n})
	if n == 1 && s.generated > 0 && s.computed == len(s.tokens)-1 {
		p.decode++
	} else {
		p.prefill += n
	}
}

// hits returns the cached blocks that match s's leading full blocks. At
// least one token is always left to compute (vLLM's rule: the last token's
// logits are needed), so a prompt of exactly k blocks hits at most k-1.
func (e *Engine) hits(s *seq) []int32 {
	bs := e.cfg.BlockSize
	limit := (len(s.tokens) - 1) / bs
	e.hitBuf = e.hitBuf[:0]
	for i := range limit {
		id, ok := e.kv.lookup(s.blockHash(i, bs))
		if !ok {
			break
		}
		e.hitBuf = append(e.hitBuf, id)
	}
	return e.hitBuf
}

// admit gives a waiting sequence the cached blocks it hit and new blocks
// for the rest of its first chunk; false, with nothing changed, when the
// free queue cannot supply both.
func (e *Engine) admit(s *seq, hits []int32, total int) bool {
	needNew := e.blocksFor(total) - len(hits)
	need := needNew
	for _, id := range hits {
		if e.kv.blocks[id].ref == 0 {
			need++ // a free cached block leaves the free queue when touched
		}
	}
	if need > e.kv.nFree {
		return false
	}
	for _, id := range hits {
		e.kv.touch(id)
	}
	s.blocks = append(s.blocks[:0], hits...)
	s.computed = len(hits) * e.cfg.BlockSize
	s.committed = len(hits)
	for range needNew {
		id, _ := e.kv.alloc()
		s.blocks = append(s.blocks, id)
	}
	return true
}

// grow gives a running sequence blocks for total tokens; false, with
// nothing changed, when too few blocks are free.
func (e *Engine) grow(s *seq, total int) bool {
	need := e.blocksFor(total) - len(s.blocks)
	if need > e.kv.nFree {
		return false
	}
	for range need {
		id, _ := e.kv.alloc()
		s.blocks = append(s.blocks, id)
	}
	return true
}

func (e *Engine) blocksFor(tokens int) int {
	return (tokens + e.cfg.BlockSize - 1) / e.cfg.BlockSize
}

// preempt frees s's blocks and puts it at the front of the waiting queue;
// it will recompute its prompt and the tokens it generated (most of them
// from the prefix cache if nothing evicted them meanwhile).
func (e *Engine) preempt(s *seq) {
	e.freeBlocks(s)
	s.computed, s.committed, s.running = 0, 0, false
	e.waiting = append(e.waiting, nil)
	copy(e.waiting[1:], e.waiting)
	e.waiting[0] = s
	e.preemptions++
}

// freeBlocks releases s's blocks, last first, so the tail of a sequence
// is evicted before its head (shared prefixes stay longest), as vLLM does.
func (e *Engine) freeBlocks(s *seq) {
	for i := len(s.blocks) - 1; i >= 0; i-- {
		e.kv.release(s.blocks[i])
	}
	s.blocks = s.blocks[:0]
}

// apply records the results of step p, which ended at simulated time end:
// computed tokens advance, each sequence that has computed all its tokens
// samples one more, and finished sequences leave. Sequences cancelled
// while the step ran are skipped. Called with e.mu held.
func (e *Engine) apply(p *plan, end time.Duration) {
	for _, w := range p.work {
		s := w.s
		if s.finished || !s.running {
			continue
		}
		s.computed += w.n // its full blocks were named when scheduled
		if s.computed < len(s.tokens) {
			continue // a chunk of a longer prefill
		}
		if s.generated == 0 {
			s.ttft = end - s.arrival
			e.ttft.observe(s.ttft.Seconds())
			e.ttftSum += s.ttft
			e.promptTokens += int64(s.promptLen)
		}
		s.tokens = append(s.tokens, wordToken(outputWord(e.cfg.Seed, s.promptHash, s.generated)))
		s.generated++
		e.generationTokens++
		if s.generated >= s.target {
			e.finish(s, nil)
			continue
		}
		s.wake()
	}
	if len(e.running) > 0 {
		kept := e.running[:0]
		for _, s := range e.running {
			if !s.finished {
				kept = append(kept, s)
			}
		}
		clear(e.running[len(kept):])
		e.running = kept
	}
}

// finish ends s: its blocks are freed and its handler is woken. err nil
// means it completed. Called with e.mu held; s leaves e.running at the
// next apply (or at once when cancelled, see cancel).
func (e *Engine) finish(s *seq, err error) {
	if s.finished {
		return
	}
	s.finished, s.err = true, err
	e.freeBlocks(s)
	if err == nil {
		e.finished++
		if s.reason == "stop" {
			e.finishedStop++
		}
	}
	s.wake()
}
