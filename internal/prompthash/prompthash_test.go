package prompthash

import (
	"encoding/binary"
	"strings"
	"testing"
)

func TestAppendBlocks(t *testing.T) {
	a := AppendBlocks(nil, 1, []byte(strings.Repeat("a", 64)+"b"+strings.Repeat("c", 63)), 64, 1<<20)
	b := AppendBlocks(nil, 1, []byte(strings.Repeat("a", 64)+"X"+strings.Repeat("c", 63)+"tail"), 64, 1<<20)
	if len(a) != 2 || len(b) != 2 {
		t.Fatalf("blocks: %d %d (a partial chunk is not hashed)", len(a), len(b))
	}
	if a[0] != b[0] || a[1] == b[1] {
		t.Fatalf("chaining: %x %x", a, b)
	}
	// The chain: equal second chunks after different first ones differ.
	c := AppendBlocks(nil, 1, []byte(strings.Repeat("z", 64)+"b"+strings.Repeat("c", 63)), 64, 1<<20)
	if c[1] == a[1] {
		t.Fatal("a block's hash ignores its parent")
	}
	if n := len(AppendBlocks(nil, 1, make([]byte, 10000), 64, 1024)); n != 16 {
		t.Fatalf("max_prompt_bytes: %d blocks", n)
	}
}

// TestAppendBlocksLE: the foreign function's encoding holds the same
// hashes as AppendBlocks, in order.
func TestAppendBlocksLE(t *testing.T) {
	text := []byte(strings.Repeat("0123456789abcdef", 40) + "tail")
	for _, c := range []struct{ chunk, max int }{{16, 1 << 20}, {64, 1 << 20}, {64, 100}, {4096, 1 << 20}} {
		want := AppendBlocks(nil, 5, text, c.chunk, c.max)
		got := AppendBlocksLE([]byte("x"), 5, text, c.chunk, c.max)
		if len(got) != 1+8*len(want) {
			t.Fatalf("chunk %d max %d: %d bytes for %d hashes", c.chunk, c.max, len(got), len(want))
		}
		for i, h := range want {
			if g := binary.LittleEndian.Uint64(got[1+8*i:]); g != h {
				t.Fatalf("chunk %d max %d: hash %d is %x, want %x", c.chunk, c.max, i, g, h)
			}
		}
	}
}

// TestBlockBitFlips: flipping any single bit of a chunk, in any lane
// or in the tail, changes its hash, and no two of the flipped chunks of
// a size collide with each other.
func TestBlockBitFlips(t *testing.T) {
	for _, size := range []int{16, 31, 32, 64, 100} {
		b := []byte(strings.Repeat("The quick brown fox jumps over the lazy dog. ", 3)[:size])
		base := Block(7, b)
		seen := map[uint64]int{base: -1}
		for bit := range size * 8 {
			b[bit/8] ^= 1 << (bit % 8)
			h := Block(7, b)
			b[bit/8] ^= 1 << (bit % 8)
			if prev, ok := seen[h]; ok {
				t.Fatalf("size %d: flipping bit %d collides with %d", size, bit, prev)
			}
			seen[h] = bit
		}
		if Block(8, b) == base {
			t.Fatalf("size %d: the chained hash does not depend on the previous block", size)
		}
	}
}

// BenchmarkHost8KiB is the host's side of sluice.prompt_block_hashes for
// an 8 KiB chat body: find the prompt, hash it in 64-byte blocks.
func BenchmarkHost8KiB(b *testing.B) {
	benchHost(b, []byte(`{"model":"m","messages":[{"role":"user","content":"`+strings.Repeat("x", 8150)+`"}]}`))
}

// BenchmarkHostTurns8KiB is BenchmarkHost8KiB for a conversation of 64
// short turns: many keys for the duplicate check (cut.go) to compare.
func BenchmarkHostTurns8KiB(b *testing.B) {
	benchHost(b, turns(64))
}

func benchHost(b *testing.B, body []byte) {
	dst := make([]byte, 0, 2048)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		text, model, ok := Quick(body)
		if !ok || len(text) < len(body)/2 {
			b.Fatalf("Quick: %d bytes, ok %v", len(text), ok)
		}
		dst = AppendBlocksLE(dst[:0], Seed(model), text, 64, 1<<20)
	}
}

// turns is a chat body of n turns of about 128 bytes each.
func turns(n int) []byte {
	body := []byte(`{"model":"m","messages":[`)
	for i := range n {
		if i > 0 {
			body = append(body, ',')
		}
		body = append(body, `{"role":"user","content":"`+strings.Repeat("turn ", 18)+`","name":"n"}`...)
	}
	return append(body, `],"max_tokens":64,"stream":true}`...)
}
