package main

import (
	"encoding/binary"
	"unsafe"
)

// store is the shared key-value store the index lives in: on Sluice the
// plugin's vm_id shared data, which every instance of the plugin sees,
// bounded by the host (sluice.shared_data_policy: entries expire
// block_ttl after their last write, and a full store drops the oldest).
// Tests use a map.
type store interface {
	get(key []byte) (value []byte, ok bool)
	set(key []byte, value string) // copies key and value
	// getCAS is get with the value's compare-and-swap token (for a
	// missing key, the token that creates it); setCAS writes only while
	// the token holds, and reports whether it did.
	getCAS(key []byte) (value []byte, cas uint32, ok bool)
	setCAS(key []byte, value string, cas uint32) bool
	// release gives back a value get or getCAS returned, once unused
	// (sdk.ReleaseBytes: the next answer reuses its memory).
	release(value []byte)
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
	key  []byte // scratch: "ca/<pool>/<kind>" and 8 bytes of hash
	val  []byte // scratch: the starts list to write
	cps  []int  // checkpoints(cpsN): match and record share them
	cpsN int
	pool string // the pool key holds
	kind byte   // the kind key holds
	// starts is the starts list loadStarts read for startsPool, with its
	// CAS, kept for commitStart (startsOK) until it writes the list.
	starts     []byte
	startsCAS  uint32
	startsPool string
	startsOK   bool
}

func newIndex(kv store) *index { return &index{kv: kv} }

// keyFor returns the key of hash h of the given kind ('b' a prefix
// block, 's' a session) in pool: "ca/<pool>/<kind>" then h's 8 bytes,
// little-endian. The bytes are binary, not hex: formatting them cost a Go
// guest more than the host call that reads the key. Consecutive calls for
// one pool and kind rewrite only the last 8 bytes. The result is valid
// until the next call.
func (x *index) keyFor(pool string, kind byte, h uint64) []byte {
	if len(x.key) == 0 || x.pool != pool || x.kind != kind {
		k := append(x.key[:0], keyPrefix...)
		k = append(k, pool...)
		k = append(k, '/', kind)
		x.key = append(k, make([]byte, 8)...)
		x.pool, x.kind = pool, kind
	}
	binary.LittleEndian.PutUint64(x.key[len(x.key)-8:], h)
	return x.key
}

// match returns the longest recorded prefix of the prompt whose block
// hashes are hs, among the checkpoints of at least min blocks: its length
// in blocks (0: none) and the endpoint it was sent to. min is the
// shortest match that can decide (settings.minMatch); shorter prefixes
// are neither recorded nor looked up. It reads the checkpoints from the
// longest down and stops at the first present: 1 read for a repeated
// prompt, at most 1 + log1.5(n/min) (5 for cache_threshold 0.3) for a
// new one. (One host call for all of them, sluice.shared_data_get_first,
// was tried: a Go guest's encoding of the call cost more than the reads
// it saved; benchmarks/RESULTS.md.)
//
// A descending scan, not a binary search: a prompt of n blocks records
// only the checkpoints in [ceil(threshold·n), n], so a longer earlier
// prompt may have skipped a short checkpoint that a later one looks up,
// and presence is no longer monotone across prompts of different
// lengths.
func (x *index) match(pool string, hs []uint64, min int) (blocks int, endpoint string) {
	return x.matchIn(pool, hs, min, nil)
}

// matchIn is match that returns the address string of the endpoint in
// eps the prefix went to, when it is there, instead of a new string (an
// allocation per repeated prompt).
func (x *index) matchIn(pool string, hs []uint64, min int, eps []endpoint) (blocks int, endpoint string) {
	cps := x.checkpoints(len(hs))
	for i := len(cps) - 1; i >= 0 && cps[i] >= min; i-- {
		if v, ok := x.kv.get(x.keyFor(pool, 'b', hs[cps[i]-1])); ok {
			endpoint = addrIn(eps, v)
			x.kv.release(v)
			if endpoint != "" {
				return cps[i], endpoint
			}
		}
	}
	return 0, ""
}

// addrIn returns the address of the endpoint in eps whose address is
// addr, else addr as a new string.
func addrIn(eps []endpoint, addr []byte) string {
	for i := range eps {
		if eps[i].addr == string(addr) {
			return eps[i].addr
		}
	}
	return string(addr)
}

// checkpoints returns the checkpoints of a prompt of n blocks, computed
// once for a request's match and record.
func (x *index) checkpoints(n int) []int {
	if x.cpsN != n || len(x.cps) == 0 {
		x.cps, x.cpsN = checkpoints(x.cps[:0], n), n
	}
	return x.cps
}

// record notes that the prompt with block hashes hs went to endpoint: it
// writes its checkpoints of at least min blocks past the first from
// (which also restarts their TTL). from is 0, or the length of a match
// already recorded for endpoint, to save the writes (each is a host
// call): a new 8 KiB prompt writes 4 keys with cache_threshold 0.3.
func (x *index) record(pool string, hs []uint64, endpoint string, from, min int) {
	for _, p := range x.checkpoints(len(hs)) {
		if p > from && p >= min {
			x.kv.set(x.keyFor(pool, 'b', hs[p-1]), endpoint)
		}
	}
}

// session returns the endpoint the session (hashed) last went to: the
// address string of that endpoint in eps when it is there (as matchIn).
func (x *index) session(pool string, h uint64, eps []endpoint) (string, bool) {
	v, ok := x.kv.get(x.keyFor(pool, 's', h))
	if !ok {
		return "", false
	}
	endpoint := addrIn(eps, v)
	x.kv.release(v)
	return endpoint, endpoint != ""
}

// recordSession pins the session to endpoint.
func (x *index) recordSession(pool string, h uint64, endpoint string) {
	x.kv.set(x.keyFor(pool, 's', h), endpoint)
}

// startsKey is the key of the pool's starts list: the number of
// prefixes started on each endpoint (fewestStarts), in one key per pool,
// so that a new prompt reads it once and adds its start with one
// compare-and-swap write. One key per endpoint cost a new prompt ~17 µs
// of a Go guest's CPU in front of four endpoints (a read each, and a
// read and a write to add one; BenchmarkPluginHot8KiB/cacheaware-misses).
// The list holds, per endpoint, the 8 bytes of its id (endpointID) then
// a u32 count, all little-endian; at most maxStartsEndpoints of
// them.
func (x *index) startsKey(pool string) []byte { return x.keyFor(pool, 'n', 0) }

// startsEntry is the size of one endpoint's entry in the starts list.
const startsEntry = 12

// maxStartsEndpoints bounds the starts list: an endpoint new to a full
// list replaces the one with the fewest starts.
const maxStartsEndpoints = 256

// loadStarts sets each endpoint's starts to the pool's shared count of
// prefixes started on it (0 when none was recorded or the list expired),
// and keeps the list for commitStart.
func (x *index) loadStarts(pool string, eps []endpoint) {
	x.readStarts(pool)
	for i := range eps {
		eps[i].starts = startsOf(x.starts, eps[i].key())
	}
}

// readStarts reads the pool's starts list and its CAS (giving back the
// list read before).
func (x *index) readStarts(pool string) {
	x.releaseStarts()
	v, cas, _ := x.kv.getCAS(x.startsKey(pool))
	x.starts, x.startsCAS, x.startsPool, x.startsOK = v, cas, pool, true
}

// releaseStarts gives back the starts list read last.
func (x *index) releaseStarts() {
	if x.starts != nil {
		x.kv.release(x.starts)
	}
	x.starts, x.startsOK = nil, false
}

// startsOf returns the count of the endpoint whose hash is h in list.
func startsOf(list []byte, h uint64) uint32 {
	for ; len(list) >= startsEntry; list = list[startsEntry:] {
		if binary.LittleEndian.Uint64(list) == h {
			return binary.LittleEndian.Uint32(list[8:])
		}
	}
	return 0
}

// maxStarts bounds a count in the starts list: when one reaches it,
// every count is halved, so the counts never wrap and their differences
// follow the recent starts (the list lives as long as prefixes start:
// each write restarts its TTL).
const maxStarts = 1 << 20

// withStart appends to dst the list with one more start for the endpoint
// whose hash is h (a torn tail, not a whole entry, is dropped).
func withStart(dst, list []byte, h uint64) []byte {
	dst = append(dst, list[:len(list)/startsEntry*startsEntry]...)
	for e := dst; len(e) >= startsEntry; e = e[startsEntry:] {
		if binary.LittleEndian.Uint64(e) == h {
			n := binary.LittleEndian.Uint32(e[8:]) + 1
			binary.LittleEndian.PutUint32(e[8:], n)
			if n >= maxStarts {
				for i := 8; i < len(dst); i += startsEntry {
					binary.LittleEndian.PutUint32(dst[i:], binary.LittleEndian.Uint32(dst[i:])/2)
				}
			}
			return dst
		}
	}
	if len(dst) < maxStartsEndpoints*startsEntry {
		dst = binary.LittleEndian.AppendUint64(dst, h)
		return binary.LittleEndian.AppendUint32(dst, 1)
	}
	fewest := 0
	for i := 0; i < len(dst); i += startsEntry {
		if binary.LittleEndian.Uint32(dst[i+8:]) < binary.LittleEndian.Uint32(dst[fewest+8:]) {
			fewest = i
		}
	}
	binary.LittleEndian.PutUint64(dst[fewest:], h)
	binary.LittleEndian.PutUint32(dst[fewest+8:], 1)
	return dst
}

// maxStartsTries bounds the compare-and-swap attempts of a start: a lost
// increment only blurs the balance.
const maxStartsTries = 3

// tryStart writes the starts list read last (reading it first if it is
// not the pool's) with one more start for the endpoint whose id is h,
// with compare-and-swap. When another instance wrote the list since it
// was read, it reads it again and reports false.
func (x *index) tryStart(pool string, h uint64) bool {
	if !x.startsOK || x.startsPool != pool {
		x.readStarts(pool)
	}
	x.val = withStart(x.val[:0], x.starts, h)
	if x.kv.setCAS(x.startsKey(pool), unsafe.String(unsafe.SliceData(x.val), len(x.val)), x.startsCAS) {
		return true
	}
	x.readStarts(pool)
	return false
}

// commitStart counts the start of the prefix of a request that decide
// sent to eps[0] (reason least_load) in the pool's shared list. When
// another instance started a prefix since the list was read (the swap
// fails), the request is decided again on the list as it is now, so
// that two requests starting prefixes at once do not both go to the
// endpoint with the fewest; after maxStartsTries the last decision
// stands, uncounted. It returns the reason of the final decision; eps
// must hold the starts loadStarts read.
func (x *index) commitStart(s *settings, pool string, eps []endpoint, c choice) reason {
	why := reasonLeastLoad
	for try := 0; try < maxStartsTries; try++ {
		if x.tryStart(pool, eps[0].key()) {
			break
		}
		for i := range eps {
			eps[i].starts = startsOf(x.starts, eps[i].key())
		}
		if why = s.decide(eps, c); why != reasonLeastLoad {
			break
		}
	}
	x.releaseStarts()
	return why
}
