package wasm

import (
	"encoding/binary"
	"testing"
)

// sliceMemory is a guestMemory over a byte slice, with the same contract
// as wazero's (which bounds-checks too): the accessors must never rely on
// it.
type sliceMemory []byte

func (m sliceMemory) Size() uint32 { return uint32(len(m)) }
func (m sliceMemory) Read(off, n uint32) ([]byte, bool) {
	return m[off : off+n], true // panics when the caller did not check
}
func (m sliceMemory) WriteUint32Le(off, v uint32) bool {
	binary.LittleEndian.PutUint32(m[off:off+4], v)
	return true
}
func (m sliceMemory) WriteUint64Le(off uint32, v uint64) bool {
	binary.LittleEndian.PutUint64(m[off:off+8], v)
	return true
}

func FuzzGuestMemory(f *testing.F) {
	f.Add(uint32(0), uint32(16), uint16(64))
	f.Add(uint32(0xFFFFFFF0), uint32(0x100), uint16(256))
	f.Add(uint32(60), uint32(4), uint16(64))
	f.Add(uint32(61), uint32(4), uint16(64))
	f.Add(uint32(16), uint32(0xFFFFFFFF), uint16(64))
	f.Fuzz(func(t *testing.T, ptr, size uint32, memSize uint16) {
		mem := make(sliceMemory, memSize)
		fits := uint64(ptr)+uint64(size) <= uint64(memSize)
		b, ok := readGuest(mem, ptr, size)
		if ok != (fits || size == 0) || (ok && len(b) != int(size)) {
			t.Fatalf("readGuest(%d, %d) on %d bytes = %d bytes, %v", ptr, size, memSize, len(b), ok)
		}
		if ok := writeGuestU32(mem, ptr, 7); ok != (uint64(ptr)+4 <= uint64(memSize)) {
			t.Fatalf("writeGuestU32(%d) on %d bytes = %v", ptr, memSize, ok)
		}
		if ok := writeGuestU64(mem, ptr, 7); ok != (uint64(ptr)+8 <= uint64(memSize)) {
			t.Fatalf("writeGuestU64(%d) on %d bytes = %v", ptr, memSize, ok)
		}
		if ok := checkRetPair(mem, ptr, size); ok != (uint64(ptr)+4 <= uint64(memSize) && uint64(size)+4 <= uint64(memSize)) {
			t.Fatalf("checkRetPair(%d, %d) on %d bytes = %v", ptr, size, memSize, ok)
		}
		_ = writeRetPair(mem, ptr, size, 1, 2)
	})
}
