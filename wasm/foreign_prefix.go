package wasm

import (
	"encoding/binary"
	"math"

	"github.com/sluice-proxy/sluice/internal/prompthash"
)

// sluice.prompt_prefix_match and sluice.prompt_prefix_record: a prefix
// index kept in the plugin's shared data, read and written by the host.
// A cache-aware router records, under a key prefix of its choosing, the
// endpoint each prompt went to at the prompt's checkpoints
// (prompthash.Checkpoints): the key is the prefix followed by the
// chained hash of the prompt's first p blocks, 8 bytes little-endian,
// the value the endpoint. A guest can do this itself with
// sluice.prompt_block_hashes and proxy_get/set_shared_data, and the
// cacheaware plugin does on a host without these functions; here one
// call replaces the hash call and a read per checkpoint looked up, and
// another a write per checkpoint recorded, each a host call that costs
// a Go guest about a microsecond (benchmarks/RESULTS.md). The keys are
// the guest's own, so both ways read what the other wrote, and the
// store's policy (sluice.shared_data_policy: TTL, eviction) bounds them.

// Bounds of the key prefix of sluice.prompt_prefix_match (a key is that
// and 8 bytes) and of the value of sluice.prompt_prefix_record.
const (
	maxPrefixKeyPrefix = 1024
	maxPrefixValue     = 1024
)

// prefixMatch is what the last sluice.prompt_prefix_match on an instance
// left for sluice.prompt_prefix_record: the context it ran in, the
// prompt's block hashes and the keys' prefix. Guarded by the instance's
// mu, reused across requests.
type prefixMatch struct {
	owner   *stream // nil: none (or the context has ended)
	ownerID uint32
	min     int
	hashes  []byte // 8 bytes little-endian per block
	key     []byte // the key prefix, then room for 8 bytes
	cps     []int
}

// keyAt returns the key of the prompt's checkpoint of cp blocks: the
// key prefix, then the hash of its first cp blocks. It is pm.key,
// rewritten by the next call.
func (pm *prefixMatch) keyAt(cp int) []byte {
	copy(pm.key[len(pm.key)-8:], pm.hashes[8*(cp-1):8*cp])
	return pm.key
}

// heldBy reports whether the match on record ran in s's context.
func (pm *prefixMatch) heldBy(s *stream) bool { return pm.owner == s && pm.ownerID == s.id }

// parsePrefixMatchArgs decodes sluice.prompt_prefix_match's arguments:
// u32 little-endian chunk size in bytes (16–65536), u32 little-endian
// number of prompt bytes to hash at most (0: none), the cache threshold
// as a float64's bits little-endian (0–1: the share of the prompt a
// match must cover, prompthash.MinMatch), then the key prefix (the rest,
// 1–1024 bytes).
func parsePrefixMatchArgs(args []byte) (chunk, max int, threshold float64, prefix []byte, ok bool) {
	if len(args) < 17 || len(args)-16 > maxPrefixKeyPrefix {
		return 0, 0, 0, nil, false
	}
	chunk, max, ok = parsePromptHashArgs(args[:8])
	threshold = math.Float64frombits(binary.LittleEndian.Uint64(args[8:]))
	if !ok || !(threshold >= 0 && threshold <= 1) {
		return 0, 0, 0, nil, false
	}
	return chunk, max, threshold, args[16:], true
}

// foreignPromptPrefixMatch hashes the prompt of the request's buffered
// OpenAI body as sluice.prompt_block_hashes does and looks its
// checkpoints of at least MinMatch blocks up in the plugin's shared data,
// longest first. It returns u64 the hash seed, u32 the prompt's blocks
// n, u32 the shortest match looked up (min), u32 the length of the
// request's pool (the sluice.upstream property: "" when no route or
// plugin chose one yet) and its name, then for each checkpoint found,
// longest first and leaving out one whose value equals the entry before
// it, u32 its blocks, u32 its value's length and the value, all
// little-endian. The caller takes the first value it can use (an
// endpoint still in the pool). The pool's name lets a caller that keys
// the index by pool guess the pool (the last request's) and check the
// guess instead of reading the property first, a host call that costs a
// Go guest ~2 µs (benchmarks/RESULTS.md). It remembers the hashes for
// sluice.prompt_prefix_record. PARSE_FAILURE for a body that does not
// open the usual way (the guest reads it itself, as for
// sluice.prompt_block_hashes); BAD_ARGUMENT in the root context or for
// malformed arguments. A read takes no CAS value (unlike
// proxy_get_shared_data, which issues one for a missing key).
func foreignPromptPrefixMatch(s *stream, args, dst []byte) ([]byte, status) {
	chunk, max, threshold, prefix, ok := parsePrefixMatchArgs(args)
	if s == nil || !ok {
		return nil, statusBadArgument
	}
	pm := &s.inst.prefix
	pm.owner = nil
	if cap(pm.hashes) > maxScratchKeep {
		pm.hashes = nil // a huge prompt's hashes are not kept past the next match
	}
	text, model, ok := prompthash.Quick(s.ex.RequestBody())
	if !ok {
		return nil, statusParseFailure
	}
	seed := prompthash.Seed(model)
	pm.hashes = prompthash.AppendBlocksLE(pm.hashes[:0], seed, text, chunk, max)
	n := len(pm.hashes) / 8
	pm.min = prompthash.MinMatch(n, threshold)
	pm.key = append(append(pm.key[:0], prefix...), make([]byte, 8)...)
	pm.cps = prompthash.Checkpoints(pm.cps[:0], n)
	pm.owner, pm.ownerID = s, s.id

	dst = binary.LittleEndian.AppendUint64(dst, seed)
	dst = binary.LittleEndian.AppendUint32(dst, uint32(n))
	dst = binary.LittleEndian.AppendUint32(dst, uint32(pm.min))
	up := s.ex.Upstream()
	dst = binary.LittleEndian.AppendUint32(dst, uint32(len(up)))
	dst = append(dst, up...)
	lastAt, lastLen := 0, -1 // the last value returned: dst[lastAt:lastAt+lastLen]
	for i := len(pm.cps) - 1; i >= 0 && pm.cps[i] >= pm.min; i-- {
		cp := pm.cps[i]
		key := pm.keyAt(cp)
		head := len(dst)
		dst = binary.LittleEndian.AppendUint32(dst, uint32(cp))
		dst = binary.LittleEndian.AppendUint32(dst, 0) // the value's length, below
		at := len(dst)
		var found bool
		dst, found = s.p.shared.peek(dst, key)
		size := len(dst) - at
		if !found || (size == lastLen && string(dst[at:]) == string(dst[lastAt:lastAt+lastLen])) {
			dst = dst[:head] // missing, or the same value as a longer prefix
			continue
		}
		binary.LittleEndian.PutUint32(dst[at-4:], uint32(size))
		lastAt, lastLen = at, size
	}
	return dst, statusOK
}

// parsePrefixRecordArgs decodes sluice.prompt_prefix_record's arguments:
// u32 little-endian from (checkpoints of at most from blocks are not
// written: a match already recorded them for this value), then the value
// (the rest, 1–1024 bytes).
func parsePrefixRecordArgs(args []byte) (from int, value []byte, ok bool) {
	if len(args) < 5 || len(args)-4 > maxPrefixValue {
		return 0, nil, false
	}
	return int(binary.LittleEndian.Uint32(args)), args[4:], true
}

// foreignPromptPrefixRecord writes value under the keys of the
// checkpoints of at least min and more than from blocks of the prompt
// that the last sluice.prompt_prefix_match in this context hashed, with
// the policy the operator or the plugin set for them (each write
// restarts a key's time to live), as proxy_set_shared_data with cas 0
// would. BAD_ARGUMENT in the root context, for malformed arguments, or
// when no match of this context is on record (none ran, or one in
// another context ran since on this instance); INTERNAL_FAILURE when the
// store is full and the policy cannot evict (the writes before it stay).
// The result is empty.
func foreignPromptPrefixRecord(s *stream, args, dst []byte) ([]byte, status) {
	from, value, ok := parsePrefixRecordArgs(args)
	if s == nil || !ok {
		return nil, statusBadArgument
	}
	pm := &s.inst.prefix
	if !pm.heldBy(s) {
		return nil, statusBadArgument
	}
	for _, cp := range pm.cps {
		if cp <= from || cp < pm.min {
			continue
		}
		key := pm.keyAt(cp)
		if st := s.p.shared.set(key, value, 0, s.p.sharedRules.policyFor(key)); st != statusOK {
			return nil, st
		}
	}
	return dst, statusOK
}

// foreignPromptPrefixClaim is sluice.prompt_prefix_record from 0 for a
// request that starts a prefix, made one step with a second look-up:
// when a key of a checkpoint of at least min blocks of the prompt that
// this context's last sluice.prompt_prefix_match hashed holds another
// value than the argument (1–1024 bytes), it writes nothing and returns
// u32 little-endian that checkpoint's blocks, then its value (the
// longest such checkpoint); otherwise it writes the value under all of
// them and the result is empty. Between a match and its record another
// instance may have routed a prompt with the same prefix (two requests
// of a new conversation or system prompt at once); record would then
// split the prefix over two endpoints, the later write winning its keys,
// while a claim tells the later request where the first went. Statuses
// as sluice.prompt_prefix_record.
func foreignPromptPrefixClaim(s *stream, args, dst []byte) ([]byte, status) {
	if s == nil || len(args) == 0 || len(args) > maxPrefixValue {
		return nil, statusBadArgument
	}
	pm := &s.inst.prefix
	if !pm.heldBy(s) {
		return nil, statusBadArgument
	}
	first := 0
	for first < len(pm.cps) && pm.cps[first] < pm.min {
		first++
	}
	cps := pm.cps[first:]
	key := func(i int) []byte { return pm.keyAt(cps[len(cps)-1-i]) } // longest first
	head := len(dst)
	dst = binary.LittleEndian.AppendUint32(dst, 0) // the checkpoint's blocks, below
	dst, i, st := s.p.shared.claim(dst, len(cps), key, args, s.p.sharedRules.policyFor)
	switch {
	case st != statusOK:
		return nil, st
	case i < 0:
		return dst[:head], statusOK
	}
	binary.LittleEndian.PutUint32(dst[head:], uint32(cps[len(cps)-1-i]))
	return dst, statusOK
}
