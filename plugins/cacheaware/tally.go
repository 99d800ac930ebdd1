package main

// Counts kept by a tally (the plugin's counters besides the decisions).
const (
	countSkipped       = iota // left to the pool's own policy
	countPromptBlocks         // blocks in routed prompts
	countMatchedBlocks        // of them, matched in the index
	countWriteFailures        // index writes the store refused
	countGuestHashed          // prompts the plugin read and hashed itself
	countClaimsLost           // new prefixes another instance started first
	numCounts
)

// tally accumulates counter increments between flushes. Not safe for
// concurrent use (one per instance, whose callbacks never overlap).
type tally struct {
	decisions [numReasons]uint64
	counts    [numCounts]uint64
}

// flush hands every non-zero count to the sinks and zeroes it.
func (t *tally) flush(decision func(reason, uint64), count func(int, uint64)) {
	for r, n := range t.decisions {
		if n > 0 {
			decision(reason(r), n)
			t.decisions[r] = 0
		}
	}
	for c, n := range t.counts {
		if n > 0 {
			count(c, n)
			t.counts[c] = 0
		}
	}
}
