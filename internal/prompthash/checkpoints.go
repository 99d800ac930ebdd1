package prompthash

import "math"

// Checkpoints appends to dst the block counts at which a prefix index
// records a prompt of n blocks: 1, 2, 3, 4, then each about 1.5 times
// the last, and n itself. Recording every block would cost one write per
// chunk; checkpoints tell a match to within a third of its length. The
// cacheaware plugin's index and Sluice's sluice.prompt_prefix_match use
// these same checkpoints, so that either can read what the other wrote.
func Checkpoints(dst []int, n int) []int {
	for p := 1; p < n; {
		dst = append(dst, p)
		if p < 4 {
			p++
		} else {
			p += p / 2
		}
	}
	if n > 0 {
		dst = append(dst, n)
	}
	return dst
}

// MinMatch is the shortest match, in blocks, that lets the prefix of a
// prompt of n blocks decide under a cache threshold (SGLang's
// cache_threshold: the share of the prompt that must match): the least
// m with m ≥ threshold·n, and at least 1. An index neither records nor
// looks up shorter prefixes: they could only ever lose to the load.
func MinMatch(n int, threshold float64) int {
	return max(1, int(math.Ceil(threshold*float64(n))))
}
