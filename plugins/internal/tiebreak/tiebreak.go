// Package tiebreak gives endpoint pickers a per-request tie-breaking key,
// so equally good endpoints share load instead of the first always
// winning. It builds for the host and for wasip1 guests and allocates
// nothing.
package tiebreak

// Mix hashes rnd and addr (FNV-1a, seeded with rnd) into a tie-breaking
// key: the same rnd and addr always give the same key, and a new rnd per
// request reorders endpoints that tie.
func Mix(rnd uint64, addr string) uint64 {
	h := uint64(14695981039346656037) ^ rnd
	for i := 0; i < len(addr); i++ {
		h ^= uint64(addr[i])
		h *= 1099511628211
	}
	return h
}
