package main

import "strconv"

// store is the shared key-value store the index lives in: on Sluice the
// plugin's vm_id shared data, which every instance of the plugin sees,
// bounded by the host (sluice.shared_data_policy: entries expire
// block_ttl after their last write, and a full store drops the oldest).
// Tests use a map.
type store interface {
	get(key []byte) (value []byte, ok bool)
	set(key, value []byte)
}

// keyPrefix starts every key the plugin writes; the TTL policy is set on
// it.
const keyPrefix = "ca/"

// index is the approximate prefix index of one pool: checkpoint block
// hash → the endpoint that last received a prompt with that prefix. Like
// SGLang's router and llm-d's approximate scorer it is built from the
// routed requests, not from the engines' caches. It is not safe for
// concurrent use (one per instance; the store is shared).
type index struct {
	kv   store
	pool string
	key  []byte // scratch: "ca/<pool>/<16 hex digits>"
	cps  []int  // scratch: checkpoints
}

func newIndex(kv store) *index { return &index{kv: kv} }

func (x *index) keyFor(kind byte, h uint64) []byte {
	k := append(x.key[:0], keyPrefix...)
	k = append(k, x.pool...)
	k = append(k, '/', kind)
	k = strconv.AppendUint(k, h, 16)
	x.key = k
	return k
}

// match returns the longest recorded prefix of the prompt whose block
// hashes are hs: its length in blocks (0: none) and the endpoint it was
// sent to. It reads O(log len(hs)) keys.
func (x *index) match(pool string, hs []uint64) (blocks int, endpoint string) {
	x.pool = pool
	x.cps = checkpoints(x.cps[:0], len(hs))
	lo, hi := -1, len(x.cps)
	for lo+1 < hi {
		mid := (lo + hi) / 2
		v, ok := x.kv.get(x.keyFor('b', hs[x.cps[mid]-1]))
		if ok && len(v) > 0 {
			lo, endpoint = mid, string(v)
		} else {
			hi = mid
		}
	}
	if lo < 0 {
		return 0, ""
	}
	return x.cps[lo], endpoint
}

// record notes that the prompt with block hashes hs went to endpoint: it
// writes the checkpoints past the first from blocks (which also restarts
// their TTL). from is 0, or the length of a match already recorded for
// endpoint, to save the writes (each is a host call).
func (x *index) record(pool string, hs []uint64, endpoint string, from int) {
	x.pool = pool
	x.cps = checkpoints(x.cps[:0], len(hs))
	for _, p := range x.cps {
		if p > from {
			x.kv.set(x.keyFor('b', hs[p-1]), []byte(endpoint))
		}
	}
}

// session returns the endpoint the session (hashed) last went to.
func (x *index) session(pool string, h uint64) (string, bool) {
	x.pool = pool
	v, ok := x.kv.get(x.keyFor('s', h))
	return string(v), ok && len(v) > 0
}

// recordSession pins the session to endpoint.
func (x *index) recordSession(pool string, h uint64, endpoint string) {
	x.pool = pool
	x.kv.set(x.keyFor('s', h), []byte(endpoint))
}
