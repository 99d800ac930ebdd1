package main

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math/bits"

	"github.com/sluice-proxy/sluice/plugins/internal/jsonscan"
)

// request is what the plugin reads from an OpenAI request body.
type request struct {
	// text is the prompt as sent: the body from the value of "messages"
	// (chat completions: every message in order, as the client
	// serialised them, so a conversation's next turn extends the
	// previous turn's text) or of "prompt" (completions) to the body's
	// end, trailing space cut. The members after the prompt (max_tokens,
	// stream…) only change the last block or two. A view into the body.
	text []byte
	// seed keys the hashes by model: two models never share a cache.
	seed uint64
	// user is the raw "user" field, quotes included, when it is a
	// non-empty string; nil otherwise (and always nil unless asked for).
	user []byte
}

// seedBase starts the hash of the model name.
const seedBase = 0x9e3779b97f4a7c15

// parseRequest extracts the prompt of an OpenAI chat completions or
// completions body. ok is false for anything else (not JSON, no
// messages or prompt): the plugin then leaves the request alone. The
// "user" field is read only when wantUser.
//
// Usually the body starts with "model" and "messages" (or "prompt"):
// then only that start is read (quickPrompt) and the rest is not
// validated, which saves a Go guest a pass over the body (~30 µs for 8
// KiB). An invalid body is then routed like a valid one, and the engine
// rejects it. Otherwise, or for the user field, the body is validated
// and the last occurrence of each member counts (jsonscan).
func parseRequest(body []byte, wantUser bool) (request, bool) {
	if !wantUser {
		if r, ok := quickPrompt(body); ok {
			return r, true
		}
	}
	r, err := validatedRequest(body)
	if err != nil {
		return request{}, false
	}
	if !wantUser {
		r.user = nil
	}
	return r, true
}

// validatedRequest is parseRequest for any valid JSON body.
func validatedRequest(body []byte) (request, error) {
	ms, err := jsonscan.Object(body, "model", "messages", "prompt", "user")
	if err != nil {
		return request{}, err
	}
	var r request
	switch {
	case ms[1].Found():
		r.text = promptText(body, ms[1].Start)
	case ms[2].Found():
		r.text = promptText(body, ms[2].Start)
	default:
		return request{}, errNoPrompt
	}
	r.seed = hashBytes(seedBase, ms[0].Raw(body))
	// A non-empty JSON string only: "" or null names no session.
	if u := ms[3].Raw(body); len(u) > 2 && u[0] == '"' {
		r.user = u
	}
	return r, nil
}

var errNoPrompt = errors.New(`cacheaware: no "messages" or "prompt"`)

// promptText is the body from start to its end, trailing space cut.
func promptText(body []byte, start int) []byte {
	end := len(body)
	for end > start && isSpace(body[end-1]) {
		end--
	}
	return body[start:end]
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

// quickPrompt reads a body that opens with scalar members, "model" a
// string among them, then "messages" or "prompt" (a client's usual
// order), without looking further than the prompt's first byte, except
// that a "prompt" must not be followed by "messages" (which would win).
// ok is false for any other start, and parseRequest validates the body.
func quickPrompt(body []byte) (request, bool) {
	i, model := 0, []byte(nil)
	skip := func() {
		for i < len(body) && isSpace(body[i]) {
			i++
		}
	}
	skip()
	if i == len(body) || body[i] != '{' {
		return request{}, false
	}
	i++
	for {
		skip()
		key, next, ok := quickString(body, i)
		if !ok || bytes.IndexByte(key, '\\') >= 0 {
			return request{}, false
		}
		i = next
		skip()
		if i == len(body) || body[i] != ':' {
			return request{}, false
		}
		i++
		skip()
		k := string(key[1 : len(key)-1])
		if k == "messages" || k == "prompt" {
			text := promptText(body, i)
			if model == nil || len(text) < 2 || text[len(text)-1] != '}' ||
				k == "prompt" && bytes.Contains(text, []byte(`"messages"`)) {
				return request{}, false
			}
			return request{text: text, seed: hashBytes(seedBase, model)}, true
		}
		// A scalar value: a string, or a number or literal up to the
		// next ',' (not validated: the engine will).
		start := i
		if i < len(body) && body[i] == '"' {
			if _, i, ok = quickString(body, i); !ok {
				return request{}, false
			}
		} else {
			for i < len(body) && body[i] != ',' && body[i] != '}' && body[i] != '{' && body[i] != '[' && body[i] != '"' {
				i++
			}
		}
		val := bytes.TrimRight(body[start:i], " \t\r\n")
		switch {
		case k == "model" && (model != nil || len(val) == 0 || val[0] != '"'):
			return request{}, false // twice, or not a string: validate
		case k == "model":
			model = val
		case len(val) == 0:
			return request{}, false
		}
		skip()
		if i == len(body) || body[i] != ',' {
			return request{}, false
		}
		i++
	}
}

// quickString returns the JSON string starting at body[i] (quotes
// included) and the index after it. Escapes are skipped over, not
// checked (quickPrompt refuses a key with one: it may spell
// "messages").
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
		h = chunkHash(h, text[:chunk])
		dst = append(dst, h)
		text = text[chunk:]
	}
	return dst
}

// chunkHash mixes a chunk into h like hashBytes, but 32 bytes per step
// in four independent lanes, folded into hashBytes for the tail and the
// finalisation. Hashing is most of the plugin's guest CPU after the body
// copy: four lanes halve it in a wazero-compiled Go guest (fewer loop
// iterations and stop checks, no dependency between the lanes'
// multiplications), 8 KiB in ~10–15 µs instead of ~25–35 µs on the
// loaded test machine.
func chunkHash(h uint64, b []byte) uint64 {
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
	return hashBytes(a^bits.RotateLeft64(c, 17)^bits.RotateLeft64(d, 31)^bits.RotateLeft64(e, 47), b)
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

// checkpoints appends to dst the block counts at which the index may
// record a prompt of n blocks: 1, 2, 3, 4, then each about 1.5 times the
// last, and n itself. Recording every block would cost one shared-data
// write per 64 bytes; checkpoints tell a match to within a third of its
// length, and the index keeps only those a match could decide with
// (index.record).
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
