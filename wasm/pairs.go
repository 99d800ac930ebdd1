package wasm

import (
	"encoding/binary"

	"github.com/sluice-proxy/sluice/proxy"
)

// Header maps cross the ABI in the Proxy-Wasm pairs encoding
// (little-endian): a u32 count, count × (u32 key_len, u32 value_len), then
// each key and each value followed by a NUL byte. Lengths exclude the NUL.
// An empty map is either zero bytes or the single byte 0x00.

// maxPairsSize bounds a serialised map the host produces (the size is a u32
// on the wire).
const maxPairsSize = 1<<32 - 1

// pairsSize returns the encoded size of h, or false when it would not fit
// in a u32.
func pairsSize(h *proxy.Headers) (uint32, bool) {
	n := h.Len()
	size := uint64(4) + uint64(n)*8
	for i := 0; i < n; i++ {
		k, v := h.At(i)
		size += uint64(len(k)) + uint64(len(v)) + 2
	}
	if size > maxPairsSize {
		return 0, false
	}
	return uint32(size), true
}

// encodePairs writes h into dst, which must be exactly pairsSize(h) bytes.
func encodePairs(dst []byte, h *proxy.Headers) {
	n := h.Len()
	binary.LittleEndian.PutUint32(dst, uint32(n))
	lens := dst[4:]
	data := dst[4+8*n:]
	for i := 0; i < n; i++ {
		k, v := h.At(i)
		binary.LittleEndian.PutUint32(lens[8*i:], uint32(len(k)))
		binary.LittleEndian.PutUint32(lens[8*i+4:], uint32(len(v)))
		data = data[copy(data, k):]
		data[0] = 0
		data = data[1+copy(data[1:], v):]
		data[0] = 0
		data = data[1:]
	}
}

// appendPairs appends the encoding of h to dst.
func appendPairs(dst []byte, h *proxy.Headers) []byte {
	size, ok := pairsSize(h)
	if !ok {
		return dst
	}
	start := len(dst)
	dst = append(dst, make([]byte, size)...)
	encodePairs(dst[start:], h)
	return dst
}

// pairsReader walks an encoded map without copying. Call validate first:
// next assumes the lengths are consistent.
type pairsReader struct {
	data []byte
	n    uint32 // pairs
	i    uint32 // next pair
	pos  uint64 // offset of the next key in data
}

// validate checks that data is a well-formed encoding (every length in
// bounds, in 64-bit arithmetic, so a hostile count or length cannot wrap
// or make the host allocate) and prepares r to iterate it. The NUL bytes
// between fields are skipped but not checked, as Envoy does.
func (r *pairsReader) validate(data []byte) bool {
	*r = pairsReader{data: data}
	if len(data) == 0 || (len(data) == 1 && data[0] == 0) {
		return true
	}
	if len(data) < 4 {
		return false
	}
	n := binary.LittleEndian.Uint32(data)
	end := uint64(len(data))
	pos := 4 + uint64(n)*8
	if pos > end {
		return false
	}
	for i := uint64(0); i < uint64(n); i++ {
		kl := uint64(binary.LittleEndian.Uint32(data[4+8*i:]))
		vl := uint64(binary.LittleEndian.Uint32(data[8+8*i:]))
		pos += kl + vl + 2
		if pos > end {
			return false
		}
	}
	r.n = n
	r.pos = 4 + uint64(n)*8
	return true
}

// next returns the next pair (views into data), or ok false at the end.
func (r *pairsReader) next() (key, value []byte, ok bool) {
	if r.i >= r.n {
		return nil, nil, false
	}
	kl := uint64(binary.LittleEndian.Uint32(r.data[4+8*uint64(r.i):]))
	vl := uint64(binary.LittleEndian.Uint32(r.data[8+8*uint64(r.i):]))
	key = r.data[r.pos : r.pos+kl]
	value = r.data[r.pos+kl+1 : r.pos+kl+1+vl]
	r.pos += kl + vl + 2
	r.i++
	return key, value, true
}

// eachPair checks data as pairsReader.validate does and calls fn with
// each pair in order (views into data, valid only during the call) until
// fn returns false. It reports whether data is well formed and fn accepted
// every pair. fn does not escape: a closure passed here is not allocated.
func eachPair(data []byte, fn func(key, value []byte) bool) bool {
	var r pairsReader
	if !r.validate(data) {
		return false
	}
	for {
		k, v, ok := r.next()
		if !ok {
			return true
		}
		if !fn(k, v) {
			return false
		}
	}
}

// decodePairsInto replaces h's fields with the encoded map in data,
// pseudo-headers (":name") first, as proxy.Headers expects. It reports
// false, leaving h untouched, when data is malformed or any field fails
// validField; with keep true, a field h holds already is accepted as is
// (validFieldOrKept).
func decodePairsInto(h *proxy.Headers, data []byte, keep bool) bool {
	if !eachPair(data, func(k, v []byte) bool {
		if keep {
			return validFieldOrKept(h, k, v)
		}
		return validField(k, v)
	}) {
		return false
	}
	h.Reset()
	for _, pseudo := range [2]bool{true, false} {
		eachPair(data, func(k, v []byte) bool {
			if (len(k) > 0 && k[0] == ':') == pseudo {
				h.Add(k, v)
			}
			return true
		})
	}
	return true
}
