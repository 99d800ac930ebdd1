package main

import (
	"encoding/binary"
	"slices"
	"testing"
	"unsafe"
)

// TestLEHashes checks that the host's little-endian hashes decode to the
// same values whether used in place (8-aligned) or copied (misaligned).
func TestLEHashes(t *testing.T) {
	want := []uint64{1, 0x0102030405060708, 1<<64 - 1}
	raw := make([]byte, 8+8*len(want)) // Go aligns a fresh allocation to 8
	for i, h := range want {
		binary.LittleEndian.PutUint64(raw[8*i:], h)
	}
	aligned := leHashes(nil, raw[:8*len(want)])
	if !slices.Equal(aligned, want) {
		t.Errorf("aligned: %#x, want %#x", aligned, want)
	}
	if littleEndian && &aligned[0] != (*uint64)(unsafe.Pointer(&raw[0])) {
		t.Error("an aligned answer was copied, not used in place")
	}
	copy(raw[1:], raw[:8*len(want)]) // misalign by one byte
	if got := leHashes(make([]uint64, 0, 8), raw[1:1+8*len(want)]); !slices.Equal(got, want) {
		t.Errorf("misaligned: %#x, want %#x", got, want)
	}
	if got := leHashes(nil, nil); len(got) != 0 {
		t.Errorf("no bytes gave %d hashes", len(got))
	}
}
