// Package prompthash defines the prefix block hashes of an OpenAI
// request's prompt: the contract of Sluice's sluice.prompt_block_hashes
// foreign function (wasm/foreign_prompt.go), which computes them on the
// host, and of the cacheaware plugin (plugins/cacheaware), which computes
// the same ones itself on a host without that function (Envoy) or for a
// body the host does not read. Both import this package, so the two can
// never disagree: the hashes are part of the ABI, like its constants.
//
// The tokenisation is approximate, by bytes: the prompt is the request
// body's raw JSON from the value of "messages" (chat completions: every
// message in order, as the client serialised them) or of "prompt"
// (completions) to the body's end, trailing space cut, or to the first
// member an engine does not read (one that a later member of the same
// name overrides: cut.go), and it is cut into fixed-size chunks (64
// bytes ≈ 16 tokens at ~4 bytes a token, one vLLM KV block). Block i's
// hash chains block i−1's hash and its bytes, seeded with the model, so
// equal hashes mean equal prefixes (up to 64-bit collisions).
//
// Everything here is a pure function, safe for concurrent use, and
// allocates nothing; returned slices are views into the input.
package prompthash

import (
	"bytes"
	"encoding/binary"
	"math/bits"
)

// seedBase starts the hash of the model name.
const seedBase = 0x9e3779b97f4a7c15

// Seed is the first link of a prompt's chain: the hash of the raw JSON
// of its "model" member, quotes included, so that two models never share
// a block.
func Seed(model []byte) uint64 { return Mix(seedBase, model) }

// Quick reads a body that opens with scalar members, "model" a string
// among them, then "messages" or "prompt" (a client's usual order),
// without validating the rest: it reads the rest only for its strings
// and keys (cut.go), to find a later top-level "model", "messages" or
// "prompt" (then ok is false: an engine reads the last one, and "messages"
// wins over "prompt") and where a duplicate member begins. The body must
// end with '}'. It returns the prompt text (PromptText) and the raw
// "model" value. ok is false for any other start: the caller then
// validates the body (the cacheaware plugin does, with the last
// occurrence of each member winning), or gives up. An invalid body is
// hashed like a valid one, and the engine rejects it.
func Quick(body []byte) (text, model []byte, ok bool) {
	i := 0
	skip := func() {
		for i < len(body) && isSpace(body[i]) {
			i++
		}
	}
	skip()
	if i == len(body) || body[i] != '{' {
		return nil, nil, false
	}
	i++
	for {
		skip()
		key, next, ok := quickString(body, i)
		if !ok || bytes.IndexByte(key, '\\') >= 0 {
			return nil, nil, false
		}
		i = next
		skip()
		if i == len(body) || body[i] != ':' {
			return nil, nil, false
		}
		i++
		skip()
		k := string(key[1 : len(key)-1])
		if k == "messages" || k == "prompt" {
			text, later := promptText(body, i)
			rest := bytes.TrimRight(body[i:], " \t\r\n")
			if model == nil || later || len(rest) < 2 || rest[len(rest)-1] != '}' {
				return nil, nil, false
			}
			return text, model, true
		}
		// A scalar value: a string, or a number or literal up to the
		// next ',' (not validated: the engine will).
		start := i
		if i < len(body) && body[i] == '"' {
			if _, i, ok = quickString(body, i); !ok {
				return nil, nil, false
			}
		} else {
			for i < len(body) && body[i] != ',' && body[i] != '}' && body[i] != '{' && body[i] != '[' && body[i] != '"' {
				i++
			}
		}
		val := bytes.TrimRight(body[start:i], " \t\r\n")
		switch {
		case k == "model" && (model != nil || len(val) == 0 || val[0] != '"'):
			return nil, nil, false // twice, or not a string: validate
		case k == "model":
			model = val
		case len(val) == 0:
			return nil, nil, false
		}
		skip()
		if i == len(body) || body[i] != ',' {
			return nil, nil, false
		}
		i++
	}
}

// PromptText is the prompt text of body whose prompt's value (that of
// the last "messages", or of the last "prompt" when there is no
// "messages") starts at start: the body from there to its end, trailing
// space cut, or to the first member an engine does not read (cut). A view
// into body.
func PromptText(body []byte, start int) []byte {
	text, _ := promptText(body, start)
	return text
}

// promptText is PromptText, and whether a later top-level member
// overrides what the value at start says (cut's later).
func promptText(body []byte, start int) (text []byte, later bool) {
	end := len(body)
	for end > start && isSpace(body[end-1]) {
		end--
	}
	n, later := cut(body[start:end])
	return body[start : start+n], later
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

// quickString returns the JSON string starting at body[i] (quotes
// included) and the index after it. Escapes are skipped over, not
// checked (Quick refuses a key with one: it may spell "messages").
func quickString(body []byte, i int) (s []byte, next int, ok bool) {
	if i >= len(body) || body[i] != '"' {
		return nil, i, false
	}
	for j := i + 1; j < len(body); j++ {
		switch body[j] {
		case '"':
			return body[i : j+1], j + 1, true
		case '\\':
			j++
		}
	}
	return nil, i, false
}

// AppendBlocks appends to dst one chained hash per full chunk of text
// (at most max bytes of it): hash i covers chunks 0..i, the way an
// engine's prefix cache names a KV block by its parent and its tokens. A
// trailing partial chunk is not hashed, as an engine caches only full
// blocks. chunk must be positive.
func AppendBlocks(dst []uint64, seed uint64, text []byte, chunk, max int) []uint64 {
	h := seed
	for text = limit(text, max); len(text) >= chunk; text = text[chunk:] {
		h = Block(h, text[:chunk])
		dst = append(dst, h)
	}
	return dst
}

// AppendBlocksLE is AppendBlocks writing each hash as 8 bytes
// little-endian: the foreign function's result, without a []uint64.
func AppendBlocksLE(dst []byte, seed uint64, text []byte, chunk, max int) []byte {
	h := seed
	for text = limit(text, max); len(text) >= chunk; text = text[chunk:] {
		h = Block(h, text[:chunk])
		dst = binary.LittleEndian.AppendUint64(dst, h)
	}
	return dst
}

func limit(text []byte, max int) []byte {
	if len(text) > max {
		return text[:max]
	}
	return text
}

// Block chains chunk b to h (the previous block's hash, or the seed). It
// mixes b like Mix, but 32 bytes per step in four independent lanes,
// folded into Mix for the tail and the finalisation: four lanes halve
// the time in a wazero-compiled Go guest (fewer loop iterations and stop
// checks, no dependency between the lanes' multiplications).
func Block(h uint64, b []byte) uint64 {
	const m = 0xff51afd7ed558ccd
	a, c, d, e := h, h^0x9e3779b97f4a7c15, h^0xc2b2ae3d27d4eb4f, h^0x165667b19e3779f9
	for len(b) >= 32 {
		a = (a ^ binary.LittleEndian.Uint64(b)) * m
		c = (c ^ binary.LittleEndian.Uint64(b[8:])) * m
		d = (d ^ binary.LittleEndian.Uint64(b[16:])) * m
		e = (e ^ binary.LittleEndian.Uint64(b[24:])) * m
		a ^= a >> 29
		c ^= c >> 29
		d ^= d >> 29
		e ^= e >> 29
		b = b[32:]
	}
	return Mix(a^bits.RotateLeft64(c, 17)^bits.RotateLeft64(d, 31)^bits.RotateLeft64(e, 47), b)
}

// Mix mixes b into h, eight bytes at a time (a multiply-xorshift hash;
// not cryptographic: a collision only misroutes a request).
func Mix(h uint64, b []byte) uint64 {
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
