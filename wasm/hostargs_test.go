package wasm

import (
	"context"
	"testing"
)

// readArgs reads a string at arguments 0-1, a u32 return slot at 2 and a
// return pair at 3-4 from a memory of memSize bytes, as a host function
// does, and returns what refused said and left in stack[0].
func readArgs(memSize int, args ...uint64) (refused bool, st uint64, b []byte) {
	stack := append([]uint64(nil), args...)
	a := hostArgs{in: &instance{}, mem: make(sliceMemory, memSize), stack: stack, ok: true}
	b = a.bytes(0)
	a.retU32(2)
	a.retPair(3)
	return a.refused(), stack[0], b
}

func TestHostArgs(t *testing.T) {
	const ok, bad = false, true
	for _, tc := range []struct {
		name    string
		memSize int
		args    []uint64
		want    bool
	}{
		{"all in bounds", 16, []uint64{0, 4, 12, 8, 12}, ok},
		{"empty string anywhere", 16, []uint64{1 << 31, 0, 0, 0, 4}, ok},
		{"string past the end", 16, []uint64{8, 9, 0, 0, 4}, bad},
		{"string wraps 32 bits", 16, []uint64{0xFFFFFFFF, 2, 0, 0, 4}, bad},
		{"u32 slot past the end", 16, []uint64{0, 4, 13, 0, 4}, bad},
		{"pair's size slot past the end", 16, []uint64{0, 4, 0, 0, 16}, bad},
		{"no memory", 0, []uint64{0, 0, 0, 0, 0}, bad},
	} {
		refused, st, b := readArgs(tc.memSize, tc.args...)
		if refused != tc.want {
			t.Errorf("%s: refused %v, want %v", tc.name, refused, tc.want)
		}
		if refused && st != uint64(statusInvalidMemoryAccess) {
			t.Errorf("%s: stack[0] = %d, want INVALID_MEMORY_ACCESS", tc.name, st)
		}
		if !refused && len(b) != int(tc.args[1]) {
			t.Errorf("%s: read %d bytes, want %d", tc.name, len(b), tc.args[1])
		}
	}
	// With no caller, callerOf's INTERNAL_FAILURE stands and nothing is read.
	stack := []uint64{0, 4, 0}
	a := argsOf(context.Background(), nil, stack)
	if b := a.bytes(0); b != nil || a.retU32(2) != 0 || !a.refused() || stack[0] != uint64(statusInternalFailure) {
		t.Fatalf("no caller: read %q, refused %v, stack[0] %d", b, a.refused(), stack[0])
	}
}

// FuzzHostArgs: no arguments panic the reads, and refused is true exactly
// when one of them lies outside memory.
func FuzzHostArgs(f *testing.F) {
	f.Add(uint16(16), uint32(0), uint32(4), uint32(12), uint32(8), uint32(12))
	f.Add(uint16(16), uint32(0xFFFFFFFF), uint32(2), uint32(0), uint32(0), uint32(0))
	f.Add(uint16(0), uint32(0), uint32(0), uint32(0), uint32(0), uint32(0))
	f.Fuzz(func(t *testing.T, memSize uint16, ptr, size, ret, retPtr, retSize uint32) {
		refused, st, _ := readArgs(int(memSize), uint64(ptr), uint64(size), uint64(ret), uint64(retPtr), uint64(retSize))
		fits := func(p, n uint32) bool { return uint64(p)+uint64(n) <= uint64(memSize) }
		want := !(size == 0 || fits(ptr, size)) || !fits(ret, 4) || !fits(retPtr, 4) || !fits(retSize, 4)
		if refused != want || (refused && st != uint64(statusInvalidMemoryAccess)) {
			t.Fatalf("memory %d, args %d %d %d %d %d: refused %v (stack[0] %d), want %v",
				memSize, ptr, size, ret, retPtr, retSize, refused, st, want)
		}
	})
}
