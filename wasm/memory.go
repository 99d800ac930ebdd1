package wasm

import (
	"github.com/tetratelabs/wazero/api"
)

// Guest memory accessors. Every access the host makes to guest memory goes
// through these functions: they check the whole [ptr, ptr+size) range in
// 64-bit arithmetic (so ptr+size never wraps in uint32) and report false
// instead of panicking. Slices they return are views into guest memory, not
// copies: valid only until the guest runs again (a call into the guest may
// grow, and so move, its memory).

// guestMemory is the part of api.Memory the accessors use; tests implement
// it over a plain byte slice.
type guestMemory interface {
	Size() uint32
	Read(offset, byteCount uint32) ([]byte, bool)
	WriteUint32Le(offset, v uint32) bool
	WriteUint64Le(offset uint32, v uint64) bool
}

var _ guestMemory = api.Memory(nil)

// inBounds reports whether [ptr, ptr+size) lies inside a memory of memSize
// bytes.
func inBounds(memSize, ptr, size uint32) bool {
	return uint64(ptr)+uint64(size) <= uint64(memSize)
}

// readGuest returns a view of size bytes at ptr. A zero size is always
// valid and returns an empty slice, whatever ptr is.
func readGuest(mem guestMemory, ptr, size uint32) ([]byte, bool) {
	if size == 0 {
		return nil, true
	}
	if mem == nil || !inBounds(mem.Size(), ptr, size) {
		return nil, false
	}
	return mem.Read(ptr, size)
}

// writeGuestU32 stores v little-endian at ptr.
func writeGuestU32(mem guestMemory, ptr, v uint32) bool {
	if mem == nil || !inBounds(mem.Size(), ptr, 4) {
		return false
	}
	return mem.WriteUint32Le(ptr, v)
}

// writeGuestU64 stores v little-endian at ptr.
func writeGuestU64(mem guestMemory, ptr uint32, v uint64) bool {
	if mem == nil || !inBounds(mem.Size(), ptr, 8) {
		return false
	}
	return mem.WriteUint64Le(ptr, v)
}

// checkRetPair reports whether both 4-byte return slots are writable. Host
// functions check it before allocating guest memory so that a bad return
// pointer costs the guest no allocation.
func checkRetPair(mem guestMemory, ptrPtr, sizePtr uint32) bool {
	if mem == nil {
		return false
	}
	n := mem.Size()
	return inBounds(n, ptrPtr, 4) && inBounds(n, sizePtr, 4)
}

// thenWriteU32 finishes a host call whose status so far is st and which
// also returns a u32 at ptr: it writes v only when st is OK, and the write
// failing turns OK into INVALID_MEMORY_ACCESS.
func thenWriteU32(st status, mem guestMemory, ptr, v uint32) status {
	if st == statusOK && !writeGuestU32(mem, ptr, v) {
		return statusInvalidMemoryAccess
	}
	return st
}

// accessStatus is OK for a guest-memory access that succeeded, else
// INVALID_MEMORY_ACCESS.
func accessStatus(ok bool) status {
	if !ok {
		return statusInvalidMemoryAccess
	}
	return statusOK
}

// writeRetPair stores a (pointer, size) result.
func writeRetPair(mem guestMemory, ptrPtr, sizePtr, ptr, size uint32) status {
	if !writeGuestU32(mem, ptrPtr, ptr) || !writeGuestU32(mem, sizePtr, size) {
		return statusInvalidMemoryAccess
	}
	return statusOK
}
