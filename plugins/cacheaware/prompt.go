package main

import (
	"encoding/binary"

	"github.com/sluice-proxy/sluice/plugins/internal/jsonscan"
)

// request is what the plugin reads from an OpenAI request body.
type request struct {
	// text is the prompt as sent: the raw JSON of "messages" (chat
	// completions: every message in order, as the client serialised
	// them, so a conversation's next turn extends the previous turn's
	// text) or of "prompt" (completions). A view into the body.
	text []byte
	// seed keys the hashes by model: two models never share a cache.
	seed uint64
	// user is the raw "user" field, quotes included, when it is a
	// non-empty string; nil otherwise.
	user []byte
}

// parseRequest extracts the prompt of an OpenAI chat completions or
// completions body. ok is false for anything else (not JSON, no
// messages or prompt): the plugin then leaves the request alone.
func parseRequest(body []byte) (request, bool) {
	ms, err := jsonscan.Object(body, "model", "messages", "prompt", "user")
	if err != nil {
		return request{}, false
	}
	var r request
	switch {
	case ms[1].Found():
		r.text = ms[1].Raw(body)
	case ms[2].Found():
		r.text = ms[2].Raw(body)
	default:
		return request{}, false
	}
	r.seed = hashBytes(0x9e3779b97f4a7c15, ms[0].Raw(body))
	// A non-empty JSON string only: "" or null names no session.
	if u := ms[3].Raw(body); len(u) > 2 && u[0] == '"' {
		r.user = u
	}
	return r, true
}

// blockHashes appends to dst one chained hash per full chunk of text
// (at most max bytes of it): hash i covers chunks 0..i, the way an
// engine's prefix cache names a KV block by its parent and its tokens,
// so equal hashes mean equal prefixes (up to 64-bit collisions). A
// trailing partial chunk is not hashed, as an engine caches only full
// blocks.
func blockHashes(dst []uint64, seed uint64, text []byte, chunk, max int) []uint64 {
	if len(text) > max {
		text = text[:max]
	}
	h := seed
	for len(text) >= chunk {
		h = hashBytes(h, text[:chunk])
		dst = append(dst, h)
		text = text[chunk:]
	}
	return dst
}

// hashBytes mixes b into h, eight bytes at a time (a multiply-xorshift
// hash; not cryptographic: a collision only misroutes a request).
func hashBytes(h uint64, b []byte) uint64 {
	const m = 0xff51afd7ed558ccd
	for len(b) >= 8 {
		h = (h ^ binary.LittleEndian.Uint64(b)) * m
		h ^= h >> 29
		b = b[8:]
	}
	var tail uint64
	for i, c := range b {
		tail |= uint64(c) << (8 * i)
	}
	h = (h ^ tail ^ uint64(len(b))<<56) * m
	h ^= h >> 32
	h *= 0xc4ceb9fe1a85ec53
	return h ^ h>>29
}

// checkpoints appends to dst the block counts at which the index records
// a prompt of n blocks: 1, 2, 3, 4, then each about 1.5 times the last,
// and n itself. Recording every block would cost one shared-data write
// per 64 bytes; checkpoints cost O(log n) writes and reads and still
// tell a match to within a third of its length. Every prompt that covers
// a checkpoint records it, so shorter checkpoints are written at least
// as often as longer ones: presence is monotone, and lookups can
// binary-search.
func checkpoints(dst []int, n int) []int {
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
