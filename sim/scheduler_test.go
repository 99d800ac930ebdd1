package sim

import (
	"testing"
	"time"
)

// A repeated prompt hits the prefix cache: its full blocks (all but the
// last token's) are reused, the hit counters move by those tokens, and
// its TTFT in simulated time is the cost of the uncached rest only.
func TestPrefixCacheRepeatedPrompt(t *testing.T) {
	e := newManual(t, Config{})
	prompt := textOf("sys-", 50) // 3 full blocks + 2 tokens
	a := submitText(t, e, prompt, 4, true)
	runUntil(t, e, 100, a)
	st := e.Stats()
	if st.PrefixQueries != 50 || st.PrefixHits != 0 {
		t.Fatalf("first request: queries %d hits %d, want 50 and 0", st.PrefixQueries, st.PrefixHits)
	}
	b := submitText(t, e, prompt, 4, true)
	runUntil(t, e, 100, b)
	st = e.Stats()
	if st.PrefixQueries != 100 || st.PrefixHits != 48 {
		t.Fatalf("second request: queries %d hits %d, want 100 and 48", st.PrefixQueries, st.PrefixHits)
	}
	c := e.cfg
	if want := c.StepOverhead + 50*c.PrefillPerToken; a.ttft != want {
		t.Errorf("first TTFT %v, want %v (overhead + 50 uncached tokens)", a.ttft, want)
	}
	if want := c.StepOverhead + 2*c.PrefillPerToken; b.ttft != want {
		t.Errorf("second TTFT %v, want %v (overhead + 2 uncached tokens)", b.ttft, want)
	}
	if st.TTFTCount != 2 || st.TTFTSum != a.ttft+b.ttft {
		t.Errorf("TTFT stats %v over %d, want %v over 2", st.TTFTSum, st.TTFTCount, a.ttft+b.ttft)
	}
	if st.PromptTokens != 100 || st.GenerationTokens != 8 || st.RequestsFinished != 2 {
		t.Errorf("stats %+v, want 100 prompt tokens, 8 generated, 2 finished", st)
	}
	// A prompt sharing only the first two blocks hits just those.
	d := submitText(t, e, prompt[:32*4]+textOf("usr-", 20), 1, true)
	runUntil(t, e, 100, d)
	if got := e.Stats().PrefixHits - st.PrefixHits; got != 32 {
		t.Errorf("shared 2-block prefix hit %d tokens, want 32", got)
	}
}

// Two requests for one prompt that wait together are admitted in one
// step, and the second hits the first's full blocks there: vLLM V1 names
// a block in the cache when the step that computes it is scheduled, not
// when it ends. So does a prompt's last chunk for a request admitted
// after it in the same step.
func TestPrefixSharedWithinAStep(t *testing.T) {
	e := newManual(t, Config{})
	prompt := textOf("sys-", 50) // 3 full blocks + 2 tokens
	a := submitText(t, e, prompt, 1, true)
	b := submitText(t, e, prompt, 1, true)
	plans := runUntil(t, e, 10, a, b)
	if len(plans) != 1 || plans[0].prefill != 50+2 {
		t.Fatalf("steps %+v, want one step prefilling 50 + 2 tokens", plans)
	}
	if st := e.Stats(); st.PrefixHits != 48 {
		t.Fatalf("hits %d, want 48 (the second request's 3 full blocks)", st.PrefixHits)
	}
	if a.ttft != b.ttft {
		t.Errorf("TTFTs %v and %v, want one step's", a.ttft, b.ttft)
	}

	e = newManual(t, Config{MaxNumSeqs: 4, MaxBatchedTokens: 320})
	long := textOf("long", 600)
	c := submitText(t, e, long, 1, true)
	e.step() // c's first 320 tokens: 20 blocks named
	d := submitText(t, e, long, 1, true)
	e.step() // c's last 280 tokens name blocks 20–36; d, admitted after, hits all 37
	if got := e.Stats().PrefixHits; got != 37*16 {
		t.Fatalf("hits %d after c's last chunk, want %d (37 blocks, the last token left to compute)", got, 37*16)
	}
	runUntil(t, e, 10, c, d)
}

// A prompt longer than the step's token budget is prefilled in chunks;
// its first token comes after the last chunk.
func TestChunkedPrefill(t *testing.T) {
	e := newManual(t, Config{MaxNumSeqs: 4, MaxBatchedTokens: 256})
	s := submitText(t, e, textOf("long", 600), 1, true)
	plans := runUntil(t, e, 10, s)
	if len(plans) != 3 || plans[0].prefill != 256 || plans[1].prefill != 256 || plans[2].prefill != 88 {
		t.Fatalf("chunks %+v, want 256, 256, 88 tokens", plans)
	}
	c := e.cfg
	if want := 3*c.StepOverhead + 600*c.PrefillPerToken; s.ttft != want {
		t.Errorf("TTFT %v, want %v", s.ttft, want)
	}
}

// The cache evicts the least recently freed cached block first; a cached
// block a running sequence uses is never evicted, and a request that
// would need it waits instead.
func TestEvictionLRUAndInUse(t *testing.T) {
	e := newManual(t, Config{NumBlocks: 8, MaxNumSeqs: 4, MaxBatchedTokens: 256})
	bs := e.cfg.BlockSize
	hashesOf := func(text string) []uint64 {
		s := &seq{tokens: tokenize(nil, text)}
		return []uint64{s.blockHash(0, bs), s.blockHash(1, bs)}
	}
	cached := func(h uint64) bool { _, ok := e.kv.lookup(h); return ok }
	pa, pb := textOf("aaa-", 33), textOf("bbb-", 33)
	ha, hb := hashesOf(pa), hashesOf(pb)
	runUntil(t, e, 10, submitText(t, e, pa, 1, true)) // frees a1 then a0 to the LRU
	runUntil(t, e, 10, submitText(t, e, pb, 1, true)) // then b1, b0
	for i, h := range append(ha, hb...) {
		if !cached(h) {
			t.Fatalf("block %d not cached after its request finished", i)
		}
	}
	// 4 empty blocks left; a 5-block request evicts exactly one: a1, the
	// oldest freed (a sequence's blocks are freed tail first).
	runUntil(t, e, 10, submitText(t, e, textOf("ccc-", 66), 1, true))
	if ev := e.Stats().Evictions; ev != 1 {
		t.Fatalf("%d evictions, want 1", ev)
	}
	if cached(ha[1]) || !cached(ha[0]) || !cached(hb[0]) || !cached(hb[1]) {
		t.Fatalf("after one eviction: a0 %v a1 %v b0 %v b1 %v; want only a1 evicted",
			cached(ha[0]), cached(ha[1]), cached(hb[0]), cached(hb[1]))
	}
	// A running request holds a0 (a prefix hit); a request that needs all
	// 8 blocks must wait rather than evict it.
	hold := submitText(t, e, pa, 80, true)
	e.step()
	id, _ := e.kv.lookup(ha[0])
	if e.kv.blocks[id].ref == 0 {
		t.Fatal("a0 not referenced by the running request")
	}
	big := submitText(t, e, textOf("big-", 120), 1, true)
	for range 5 {
		e.step()
		if id2, ok := e.kv.lookup(ha[0]); !ok || id2 != id {
			t.Fatal("a cached block in use was evicted")
		}
	}
	if st := e.Stats(); st.Waiting != 1 || st.Running != 1 {
		t.Fatalf("stats %+v, want the big request waiting behind the running one", st)
	}
	e.cancel(hold)
	runUntil(t, e, 10, big)
	if cached(ha[0]) {
		t.Error("a0 survived a request that needed every block")
	}
}

// When a running sequence cannot get a block, the most recently admitted
// one is preempted (recompute); it still completes with all its tokens.
func TestPreemptionCompletes(t *testing.T) {
	e := newManual(t, Config{NumBlocks: 8, MaxNumSeqs: 4, MaxBatchedTokens: 256})
	a := submitText(t, e, textOf("one-", 40), 50, true)
	b := submitText(t, e, textOf("two-", 40), 50, true)
	runUntil(t, e, 1000, a, b)
	st := e.Stats()
	if st.Preemptions == 0 {
		t.Fatal("no preemption, though two 90-token sequences need 12 of 8 blocks")
	}
	for _, s := range []*seq{a, b} {
		if n, _, err := e.progress(s); n != 50 || err != nil {
			t.Errorf("sequence %d: %d tokens, err %v; want 50, nil", s.id, n, err)
		}
	}
	if st.GenerationTokens != 100 || st.RequestsFinished != 2 || st.KVUsage != 0 || st.Running+st.Waiting != 0 {
		t.Errorf("stats %+v, want 100 tokens, 2 finished, an empty cache and queue", st)
	}
}

// Batching raises throughput and per-token latency exactly as the time
// model says (simulated time).
func TestBatchingTimeModel(t *testing.T) {
	c := Config{}.withDefaults()
	decodeTPOT := func(n int) (tpot time.Duration, tokPerSec float64) {
		e := newManual(t, Config{})
		var ss []*seq
		for i := range n {
			ss = append(ss, submitText(t, e, textOf(string(rune('A'+i))+"-x", 32), 64, true))
		}
		plans := runUntil(t, e, 1000, ss...)
		var total time.Duration
		for _, p := range plans {
			total += p.dur
		}
		if st := e.Stats(); st.SimulatedTime != total {
			t.Fatalf("simulated clock %v, want the sum of step times %v", st.SimulatedTime, total)
		}
		var dur time.Duration
		var steps int
		for _, p := range plans {
			if p.prefill == 0 {
				if p.decode != n {
					t.Fatalf("decode step with %d sequences, want %d", p.decode, n)
				}
				if want := c.StepOverhead + time.Duration(n)*c.DecodePerSeq; p.dur != want {
					t.Fatalf("decode step %v, want %v", p.dur, want)
				}
				dur += p.dur
				steps++
			}
		}
		if steps != 63 {
			t.Fatalf("%d decode steps, want 63", steps)
		}
		return dur / time.Duration(steps), float64(n*steps) / dur.Seconds()
	}
	tpot1, tput1 := decodeTPOT(1)
	tpot32, tput32 := decodeTPOT(32)
	if tpot32 <= tpot1 {
		t.Errorf("TPOT at batch 32 %v not above batch 1's %v", tpot32, tpot1)
	}
	if tput32 < 20*tput1 {
		t.Errorf("throughput at batch 32 %.0f tok/s, want over 20x batch 1's %.0f", tput32, tput1)
	}
	t.Logf("batch 1: %v/token, %.0f tok/s; batch 32: %v/token, %.0f tok/s", tpot1, tput1, tpot32, tput32)
}

// A cancelled sequence leaves the batch and frees its blocks at once.
func TestCancelFreesBlocks(t *testing.T) {
	e := newManual(t, Config{NumBlocks: 64, MaxNumSeqs: 4, MaxBatchedTokens: 256})
	s := submitText(t, e, textOf("gone", 100), 200, true)
	w := submitText(t, e, textOf("wait", 10), 5, true)
	e.step()
	e.step()
	e.cancel(s)
	e.cancel(w)
	st := e.Stats()
	if st.Running != 0 || st.Waiting != 0 || st.KVUsage != 0 {
		t.Fatalf("after cancel: %+v, want nothing running and no block used", st)
	}
	if _, fin, err := e.progress(s); !fin || err == nil {
		t.Fatalf("cancelled sequence: finished %v err %v", fin, err)
	}
}

// Natural lengths: without ignore_eos the model stops by itself unless
// max_tokens cuts it first; the same prompt always stops at the same place.
func TestStopAndLength(t *testing.T) {
	e := newManual(t, Config{})
	p := textOf("stop", 10)
	a := submitText(t, e, p, 0, false)
	b := submitText(t, e, p, 0, false)
	cut := submitText(t, e, p, minNatural-1, false)
	runUntil(t, e, 2000, a, b, cut)
	if a.reason != "stop" || a.generated != b.generated || a.generated < minNatural || a.generated > maxNatural {
		t.Errorf("natural stop: reason %q, %d and %d tokens", a.reason, a.generated, b.generated)
	}
	if cut.reason != "length" || cut.generated != minNatural-1 {
		t.Errorf("max_tokens cut: reason %q, %d tokens", cut.reason, cut.generated)
	}
}

func TestConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		cfg   Config
		field string
	}{
		{Config{MaxNumSeqs: -1}, "MaxNumSeqs"},
		{Config{MaxBatchedTokens: -5}, "MaxBatchedTokens"},
		{Config{MaxNumSeqs: 300, MaxBatchedTokens: 200}, "MaxBatchedTokens"},
		{Config{BlockSize: -16}, "BlockSize"},
		{Config{NumBlocks: -1}, "NumBlocks"},
		{Config{NumBlocks: 4, MaxModelLen: 100}, "MaxModelLen"},
		{Config{TimeScale: -2}, "TimeScale"},
		{Config{StepOverhead: -time.Millisecond}, "StepOverhead"},
		{Config{PrefillPerToken: -1}, "PrefillPerToken"},
		{Config{DecodePerSeq: -1}, "DecodePerSeq"},
		{Config{Model: `a"b`}, "Model"},
	} {
		_, err := New(tc.cfg)
		if err == nil || !contains(err.Error(), tc.field) {
			t.Errorf("New(%+v) = %v, want an error naming %s", tc.cfg, err, tc.field)
		}
	}
}

func contains(s, sub string) bool {
	for i := 0; i+len(sub) <= len(s); i++ {
		if s[i:i+len(sub)] == sub {
			return true
		}
	}
	return false
}
