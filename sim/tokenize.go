package sim

import "encoding/binary"

// bytesPerToken is the tokenizer's fixed rule: every 4 bytes of text are
// one token (the package doc says why).
const bytesPerToken = 4

// tokenize appends the tokens of s to dst. A token's id is its 4 bytes,
// little-endian, so equal text gives equal ids and different 4-byte
// chunks never collide. A short last chunk (1 to 3 bytes) is zero-padded
// with its length in the top byte: it can equal a full chunk only if that
// chunk ends in byte 0x01 to 0x03, control characters text does not hold.
func tokenize(dst []uint32, s string) []uint32 {
	for len(s) >= bytesPerToken {
		dst = append(dst, binary.LittleEndian.Uint32([]byte(s[:bytesPerToken])))
		s = s[bytesPerToken:]
	}
	if len(s) > 0 {
		var b [4]byte
		copy(b[:], s)
		b[3] = byte(len(s)) // 1..3 in the last byte of a short token
		dst = append(dst, binary.LittleEndian.Uint32(b[:]))
	}
	return dst
}

// numTokens is len(tokenize(nil, s)) without building the slice.
func numTokens(n int) int { return (n + bytesPerToken - 1) / bytesPerToken }

// outputWords are the simulated model's vocabulary: 4-byte words, so each
// is exactly one token under the tokenizer's rule and a conversation that
// quotes an answer back tokenizes it the same way.
var outputWords = [...]string{
	"the ", "and ", "for ", "are ", "but ", "not ", "you ", "all ",
	"any ", "can ", "had ", "her ", "was ", "one ", "our ", "out ",
	"day ", "get ", "has ", "him ", "his ", "how ", "man ", "new ",
	"now ", "old ", "see ", "two ", "way ", "who ", "its ", "say ",
}

// mix is a 64-bit finaliser (splitmix64's): a good enough hash for
// choosing words and lengths deterministically.
func mix(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}

// Natural output lengths are uniform in [minNatural, maxNatural].
const minNatural, maxNatural = 32, 512

// naturalLen is how many tokens the simulated model writes before its
// end-of-sequence token for a prompt with hash ph.
func naturalLen(seed int64, ph uint64) int {
	return minNatural + int(mix(uint64(seed)^mix(ph))%uint64(maxNatural-minNatural+1))
}

// outputWord is the i-th output word for a prompt with hash ph.
func outputWord(seed int64, ph uint64, i int) string {
	return outputWords[mix(uint64(seed)+mix(ph^uint64(i)*0x9e3779b97f4a7c15))%uint64(len(outputWords))]
}

// wordToken is the token id of an output word.
func wordToken(w string) uint32 { return binary.LittleEndian.Uint32([]byte(w)) }

// FNV-1a, 64 bit: block hashes and prompt hashes.
const (
	fnvOffset = 14695981039346656037
	fnvPrime  = 1099511628211
)

// hashBlock chains a block's tokens onto its parent's hash (0 for the
// first block), as vLLM's hash_block_tokens does.
func hashBlock(parent uint64, toks []uint32) uint64 {
	h := uint64(fnvOffset)
	for i := 0; i < 8; i++ {
		h = (h ^ (parent >> (8 * i) & 0xff)) * fnvPrime
	}
	for _, t := range toks {
		for i := 0; i < 4; i++ {
			h = (h ^ uint64(t>>(8*i)&0xff)) * fnvPrime
		}
	}
	return h
}

// hashPrompt hashes a whole prompt (for output words and lengths).
func hashPrompt(toks []uint32) uint64 { return hashBlock(uint64(len(toks)), toks) }
