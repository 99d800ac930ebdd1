package wasm

import (
	"encoding/binary"

	"github.com/sluice-proxy/sluice/internal/prompthash"
)

// sluice.prompt_block_hashes: the chained block hashes of the prompt of
// the request's buffered OpenAI body, computed on the host so that a
// cache-aware router never copies the body into the guest nor hashes it
// there (for an 8 KiB prompt a Go guest spent ~40 µs on the copy and
// ~15 µs on the hashing; the host hashes it in ~1 µs). The rendering and
// the hash are internal/prompthash's, which the cacheaware plugin uses
// for its own fallback, so both give the same hashes.

// Bounds of sluice.prompt_block_hashes' chunk size: at least 16 bytes
// keeps the result at most half the body's size.
const (
	minPromptChunk = 16
	maxPromptChunk = 64 << 10
)

// parsePromptHashArgs decodes sluice.prompt_block_hashes' arguments:
// u32 little-endian chunk size in bytes (16–65536), then u32
// little-endian number of prompt bytes to hash at most (0: none).
func parsePromptHashArgs(args []byte) (chunk, max int, ok bool) {
	if len(args) != 8 {
		return 0, 0, false
	}
	c := binary.LittleEndian.Uint32(args)
	if c < minPromptChunk || c > maxPromptChunk {
		return 0, 0, false
	}
	return int(c), int(binary.LittleEndian.Uint32(args[4:])), true
}

// foreignPromptBlockHashes returns, for the request body as it stands
// (after any earlier plugin's rewrite), the seed (prompthash.Seed of the
// "model" member) and one hash per full chunk of the prompt's first max
// bytes, each 8 bytes little-endian: 8·(1+n) bytes. The body must open
// the usual way (prompthash.Quick: scalar members, "model" among them,
// then "messages" or "prompt", none of the three repeated after it: an
// engine reads the last); for any other body the answer is
// PARSE_FAILURE and the guest reads and validates the body itself.
// BAD_ARGUMENT in the root context or for malformed arguments. It reads
// the body in place and writes only dst.
func foreignPromptBlockHashes(s *stream, args, dst []byte) ([]byte, status) {
	chunk, max, ok := parsePromptHashArgs(args)
	if s == nil || !ok {
		return nil, statusBadArgument
	}
	text, model, ok := prompthash.Quick(s.ex.RequestBody())
	if !ok {
		return nil, statusParseFailure
	}
	seed := prompthash.Seed(model)
	dst = binary.LittleEndian.AppendUint64(dst, seed)
	return prompthash.AppendBlocksLE(dst, seed, text, chunk, max), statusOK
}
