package main

import "testing"

func TestTallyFlush(t *testing.T) {
	var ty tally
	ty.decisions[reasonPrefix] += 3
	ty.decisions[reasonOverload]++
	ty.counts[countMatchedBlocks] += 40
	got := map[string]uint64{}
	flush := func() {
		ty.flush(func(r reason, n uint64) { got[reasonNames[r]] += n },
			func(c int, n uint64) { got[[]string{"skipped", "prompt", "matched", "failures"}[c]] += n })
	}
	flush()
	if len(got) != 3 || got["prefix"] != 3 || got["overload"] != 1 || got["matched"] != 40 {
		t.Fatalf("first flush: %v", got)
	}
	flush() // nothing new: no sink call
	if len(got) != 3 || got["prefix"] != 3 {
		t.Fatalf("second flush: %v", got)
	}
	ty.counts[countSkipped]++
	flush()
	if got["skipped"] != 1 || got["prefix"] != 3 {
		t.Fatalf("third flush: %v", got)
	}
}
