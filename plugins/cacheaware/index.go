package main

import (
	"encoding/binary"
	"math"
	"time"
	"unsafe"

	"github.com/sluice-proxy/sluice/internal/prompthash"
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
	cps  []int  // prompthash.Checkpoints(cpsN): match and record share them
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
// longest down and stops at the first present (matchIn: whose endpoint
// is still in the pool): 1 read for a repeated prompt, at most 1 +
// log1.5(n/min) (5 for cache_threshold 0.3) for a new one. On Sluice the
// plugin does neither this nor record: sluice.prompt_prefix_match and
// sluice.prompt_prefix_record do the same on the host, hashing included,
// in one call each (prefix.go). (One host call for the reads alone,
// sluice.shared_data_get_first, was tried before: a Go guest's encoding
// of the keys cost more than the reads it saved; benchmarks/RESULTS.md.)
//
// A descending scan, not a binary search: a prompt of n blocks records
// only the checkpoints in [ceil(threshold·n), n], so a longer earlier
// prompt may have skipped a short checkpoint that a later one looks up,
// and presence is no longer monotone across prompts of different
// lengths.
func (x *index) match(pool string, hs []uint64, min int) (blocks int, endpoint string) {
	return x.matchIn(pool, hs, min, nil)
}

// matchIn is match that prefers, to a longer prefix whose endpoint has
// left eps (gone, or unhealthy), the longest whose endpoint is in eps,
// and returns that endpoint's address string from eps instead of a new
// string (an allocation per repeated prompt). With no such prefix it
// returns the longest (decide then balances the request by load). With
// eps nil every endpoint counts as in the pool.
func (x *index) matchIn(pool string, hs []uint64, min int, eps []endpoint) (blocks int, endpoint string) {
	cps := x.checkpoints(len(hs))
	for i := len(cps) - 1; i >= 0 && cps[i] >= min; i-- {
		v, ok := x.kv.get(x.keyFor(pool, 'b', hs[cps[i]-1]))
		if !ok {
			continue
		}
		addr, in := addrIn(eps, v)
		x.kv.release(v)
		switch {
		case addr == "":
		case in || eps == nil:
			return cps[i], addr
		case endpoint == "":
			blocks, endpoint = cps[i], addr
		}
	}
	return blocks, endpoint
}

// addrIn returns the address of the endpoint in eps whose address is
// addr, and true; else addr as a new string, and false.
func addrIn(eps []endpoint, addr []byte) (string, bool) {
	for i := range eps {
		if eps[i].addr == string(addr) {
			return eps[i].addr, true
		}
	}
	return string(addr), false
}

// checkpoints returns the checkpoints of a prompt of n blocks, computed
// once for a request's match and record.
func (x *index) checkpoints(n int) []int {
	if x.cpsN != n || len(x.cps) == 0 {
		x.cps, x.cpsN = prompthash.Checkpoints(x.cps[:0], n), n
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
	endpoint, _ := addrIn(eps, v)
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
// The list holds the Unix time its counts are as of (8 bytes), then per
// endpoint the 8 bytes of its id (endpointID) and its count as a
// float32, all little-endian; at most maxStartsEndpoints of them.
// ('N': the list of integer counts without a time, before the counts
// decayed, was 'n'.)
func (x *index) startsKey(pool string) []byte { return x.keyFor(pool, 'N', 0) }

// startsHeader and startsEntry are the sizes of the list's time and of
// one endpoint's entry.
const (
	startsHeader = 8
	startsEntry  = 12
)

// maxStartsEndpoints bounds the starts list: an endpoint new to a full
// list replaces the one with the fewest starts.
const maxStartsEndpoints = 256

// startsHalfLife is how fast the counts of the starts list forget: each
// write scales every count by 2^(−elapsed/startsHalfLife). The counts
// stand for the prefixes an engine still caches, and engines evict; a
// count that never decayed would send every new prefix to an endpoint
// whose count fell behind (one that was out of rotation for a while)
// until it caught up, however long ago the others' starts were.
const startsHalfLife = time.Minute

// minStartsKept: an entry whose count decays below it is dropped (it
// reads as 0 anyway).
const minStartsKept = 1.0 / 1024

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

// startsOf returns the count of the endpoint whose hash is h in list (as
// of the list's time: all counts decay alike, so their order needs no
// decay applied).
func startsOf(list []byte, h uint64) float32 {
	if len(list) < startsHeader {
		return 0
	}
	for list = list[startsHeader:]; len(list) >= startsEntry; list = list[startsEntry:] {
		if binary.LittleEndian.Uint64(list) == h {
			return sane(math.Float32frombits(binary.LittleEndian.Uint32(list[8:])))
		}
	}
	return 0
}

// withStart appends to dst the list as of now (Unix nanoseconds; a time
// before the list's counts as the list's), its counts decayed
// (startsHalfLife), with one more start for the endpoint whose hash is
// h. An endpoint new to the list joins at floor, decayed likewise (at
// least 1): the fewest starts among the pool's other endpoints, as of
// the list's time, so that one added to a busy
// pool, or back after its count decayed away, takes its share of new
// prefixes rather than all of them until its count caught up. A torn
// tail, not a whole entry, is dropped.
func withStart(dst, list []byte, h uint64, now int64, floor float32) []byte {
	body, f, now := startsAsOf(list, now)
	dst = binary.LittleEndian.AppendUint64(dst, uint64(now))
	found := false
	for ; len(body) >= startsEntry; body = body[startsEntry:] {
		id := binary.LittleEndian.Uint64(body)
		c := sane(math.Float32frombits(binary.LittleEndian.Uint32(body[8:]))) * f
		if id == h {
			c, found = c+1, true
		} else if c < minStartsKept {
			continue
		}
		dst = appendStart(dst, id, c)
	}
	if found {
		return dst
	}
	c := max(sane(floor)*f, 1)
	if len(dst) < startsHeader+maxStartsEndpoints*startsEntry {
		return appendStart(dst, h, c)
	}
	fewest := startsHeader
	for i := startsHeader; i < len(dst); i += startsEntry {
		if math.Float32frombits(binary.LittleEndian.Uint32(dst[i+8:])) < math.Float32frombits(binary.LittleEndian.Uint32(dst[fewest+8:])) {
			fewest = i
		}
	}
	binary.LittleEndian.PutUint64(dst[fewest:], h)
	binary.LittleEndian.PutUint32(dst[fewest+8:], math.Float32bits(c))
	return dst
}

// startsAsOf returns the entries of list, the factor that decays its
// counts to now (Unix nanoseconds) and the time the list will be as of:
// now, or the list's own time when now is before it.
func startsAsOf(list []byte, now int64) (body []byte, f float32, asOf int64) {
	var at int64
	if len(list) >= startsHeader {
		at, body = int64(binary.LittleEndian.Uint64(list)), list[startsHeader:]
	}
	f = 1
	if now > at && at > 0 {
		f = float32(math.Exp2(-float64(now-at) / float64(startsHalfLife)))
	}
	return body, f, max(now, at)
}

// withoutStart appends to dst the list as of now, decayed as withStart
// decays it, with one start fewer (not under 0) for the endpoint whose
// id is h: a start taken back (undoStart). An endpoint not in the list
// stays out of it; a torn tail is dropped.
func withoutStart(dst, list []byte, h uint64, now int64) []byte {
	body, f, now := startsAsOf(list, now)
	dst = binary.LittleEndian.AppendUint64(dst, uint64(now))
	for ; len(body) >= startsEntry; body = body[startsEntry:] {
		id := binary.LittleEndian.Uint64(body)
		c := sane(math.Float32frombits(binary.LittleEndian.Uint32(body[8:]))) * f
		if id == h {
			c = max(c-1, 0)
		}
		if c >= minStartsKept {
			dst = appendStart(dst, id, c)
		}
	}
	return dst
}

// maxStartsCount bounds a count read from the list: the shared store is
// writable by every plugin of the vm_id, so a count may be anything.
const maxStartsCount = 1e30

// sane returns c, or 0 for a count no write of this plugin makes (NaN,
// negative, infinite or past maxStartsCount).
func sane(c float32) float32 {
	if c >= 0 && c <= maxStartsCount {
		return c
	}
	return 0
}

// appendStart appends an entry of the starts list.
func appendStart(dst []byte, id uint64, c float32) []byte {
	dst = binary.LittleEndian.AppendUint64(dst, id)
	return binary.LittleEndian.AppendUint32(dst, math.Float32bits(c))
}

// maxStartsTries bounds the compare-and-swap attempts of a start: a lost
// increment only blurs the balance.
const maxStartsTries = 3

// tryStart writes the starts list read last (reading it first if it is
// not the pool's) as of now with one more start for the endpoint whose
// id is h (withStart; floor for an endpoint new to the list), with
// compare-and-swap. When another instance wrote the list since it was
// read, it reads it again and reports false.
func (x *index) tryStart(pool string, h uint64, now int64, floor float32) bool {
	if !x.startsOK || x.startsPool != pool {
		x.readStarts(pool)
	}
	x.val = withStart(x.val[:0], x.starts, h, now, floor)
	if x.kv.setCAS(x.startsKey(pool), unsafe.String(unsafe.SliceData(x.val), len(x.val)), x.startsCAS) {
		return true
	}
	x.readStarts(pool)
	return false
}

// commitStart counts the start of the prefix of a request that decide
// sent to eps[0] (reason least_load) in the pool's shared list, as of now
// (Unix nanoseconds). When
// another instance started a prefix since the list was read (the swap
// fails), the request is decided again on the list as it is now, so
// that two requests starting prefixes at once do not both go to the
// endpoint with the fewest; after maxStartsTries the last decision
// stands, uncounted. It returns the reason of the final decision and
// whether a start was counted for eps[0]; eps must hold the starts
// loadStarts read.
func (x *index) commitStart(s *settings, pool string, eps []endpoint, c choice, now int64) (why reason, counted bool) {
	why = reasonLeastLoad
	for try := 0; try < maxStartsTries; try++ {
		if x.tryStart(pool, eps[0].key(), now, fewestOthers(eps)) {
			counted = true
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
	return why, counted
}

// undoStart takes back, as of now, a start commitStart counted for the
// endpoint whose id is h: the request went where another instance had
// just started the same prefix (a lost claim), so no prefix lives where
// the start was counted, and the count would send one new prefix too
// few there. It reads the list again for each of maxStartsTries
// compare-and-swap attempts; a lost undo only blurs the balance.
func (x *index) undoStart(pool string, h uint64, now int64) {
	for try := 0; try < maxStartsTries; try++ {
		x.readStarts(pool)
		x.val = withoutStart(x.val[:0], x.starts, h, now)
		if x.kv.setCAS(x.startsKey(pool), unsafe.String(unsafe.SliceData(x.val), len(x.val)), x.startsCAS) {
			break
		}
	}
	x.releaseStarts()
}

// fewestOthers is the fewest starts among eps[1:] (0 for none): where an
// endpoint new to the starts list, eps[0], joins.
func fewestOthers(eps []endpoint) float32 {
	if len(eps) < 2 {
		return 0
	}
	m := eps[1].starts
	for _, e := range eps[2:] {
		m = min(m, e.starts)
	}
	return m
}
