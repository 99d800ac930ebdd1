package main

import (
	"encoding/binary"
	"unsafe"
)

// leHashes returns the little-endian u64s of b (a multiple of 8 bytes).
// On a little-endian machine (Wasm is one) an 8-aligned b is used in
// place: the SDK handed the host's answer over to the plugin (nothing
// else refers to it), and decoding 128 hashes one by one cost the guest
// more than the call. A misaligned b is decoded into dst.
func leHashes(dst []uint64, b []byte) []uint64 {
	n := len(b) / 8
	if n == 0 {
		return dst[:0]
	}
	if littleEndian && uintptr(unsafe.Pointer(unsafe.SliceData(b)))%8 == 0 {
		return unsafe.Slice((*uint64)(unsafe.Pointer(unsafe.SliceData(b))), n)
	}
	dst = dst[:0]
	for ; len(b) >= 8; b = b[8:] {
		dst = append(dst, binary.LittleEndian.Uint64(b))
	}
	return dst
}

// littleEndian is true on a little-endian machine.
var littleEndian = func() bool {
	x := uint16(1)
	return *(*byte)(unsafe.Pointer(&x)) == 1
}()
