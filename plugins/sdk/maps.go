package sdk

import (
	"encoding/binary"
	"fmt"
	"strings"
)

// SerializeMap encodes header pairs in the Proxy-Wasm map format: a
// little-endian u32 count, count × (u32 key length, u32 value length), then
// every key and value each followed by a NUL byte (lengths exclude the NUL).
// An empty or nil map encodes as a zero count (4 bytes). Pair order is kept.
//
// Keys and values are copied; the result is a new slice owned by the caller.
func SerializeMap(pairs [][2]string) []byte {
	size := 4 + 8*len(pairs)
	for _, p := range pairs {
		size += len(p[0]) + len(p[1]) + 2
	}
	buf := make([]byte, size)
	binary.LittleEndian.PutUint32(buf, uint32(len(pairs)))
	lens := buf[4:]
	data := buf[4+8*len(pairs):]
	for i, p := range pairs {
		binary.LittleEndian.PutUint32(lens[8*i:], uint32(len(p[0])))
		binary.LittleEndian.PutUint32(lens[8*i+4:], uint32(len(p[1])))
		n := copy(data, p[0])
		data[n] = 0
		data = data[n+1:]
		n = copy(data, p[1])
		data[n] = 0
		data = data[n+1:]
	}
	return buf
}

// DeserializeMap decodes the Proxy-Wasm map format written by SerializeMap
// (and by hosts). It accepts both spellings of an empty map the spec allows:
// no bytes at all, or a single 0x00 byte. Anything malformed — a count that
// does not fit the data, a length running past the end, a missing NUL
// terminator, trailing bytes — yields an error wrapping ErrParseFailure that
// names the problem; DeserializeMap never panics.
//
// The returned strings are copies: data may be reused after it returns.
// They share one backing copy, which stays alive while any of them does.
func DeserializeMap(data []byte) ([][2]string, error) {
	switch {
	case len(data) == 0:
		return nil, nil
	case len(data) == 1 && data[0] == 0:
		return nil, nil
	case len(data) < 4:
		return nil, fmt.Errorf("sdk: serialized map of %d bytes is shorter than its 4-byte count: %w", len(data), ErrParseFailure)
	}
	count := uint64(binary.LittleEndian.Uint32(data))
	header := 4 + 8*count
	if header > uint64(len(data)) {
		return nil, fmt.Errorf("sdk: serialized map claims %d pairs, which need %d header bytes, but has %d bytes: %w",
			count, header, len(data), ErrParseFailure)
	}
	if count == 0 {
		if len(data) != 4 {
			return nil, fmt.Errorf("sdk: serialized map with 0 pairs has %d trailing bytes: %w", len(data)-4, ErrParseFailure)
		}
		return nil, nil
	}
	pairs := make([][2]string, count)
	// One copy of all keys and values; the pairs are views into it, so a
	// map of n pairs costs two allocations instead of 2n+1.
	str := string(data[header:])
	off := header
	end := uint64(len(data))
	for i := uint64(0); i < count; i++ {
		klen := uint64(binary.LittleEndian.Uint32(data[4+8*i:]))
		vlen := uint64(binary.LittleEndian.Uint32(data[8+8*i:]))
		if off+klen+1+vlen+1 > end {
			return nil, fmt.Errorf("sdk: serialized map pair %d (key %d bytes, value %d bytes) runs past the end at offset %d of %d: %w",
				i, klen, vlen, off, end, ErrParseFailure)
		}
		if data[off+klen] != 0 {
			return nil, fmt.Errorf("sdk: serialized map pair %d: key is not NUL-terminated at offset %d: %w", i, off+klen, ErrParseFailure)
		}
		pairs[i][0] = str[off-header : off-header+klen]
		off += klen + 1
		if data[off+vlen] != 0 {
			return nil, fmt.Errorf("sdk: serialized map pair %d: value is not NUL-terminated at offset %d: %w", i, off+vlen, ErrParseFailure)
		}
		pairs[i][1] = str[off-header : off-header+vlen]
		off += vlen + 1
	}
	if off != end {
		return nil, fmt.Errorf("sdk: serialized map has %d trailing bytes after %d pairs: %w", end-off, count, ErrParseFailure)
	}
	return pairs, nil
}

// SerializePropertyPath joins property path segments with NUL bytes, the
// form proxy_get_property and proxy_set_property expect
// (["request", "path"] → "request\x00path"). An empty path, or a segment
// that itself contains a NUL byte, is an error wrapping ErrBadArgument.
func SerializePropertyPath(path []string) ([]byte, error) {
	return appendPropertyPath(nil, path)
}

// appendPropertyPath is SerializePropertyPath appending to dst, so that
// GetProperty and SetProperty reuse one buffer: the host reads the path
// during the call and keeps nothing.
func appendPropertyPath(dst []byte, path []string) ([]byte, error) {
	if len(path) == 0 {
		return dst, fmt.Errorf("sdk: empty property path: %w", ErrBadArgument)
	}
	for i, seg := range path {
		if strings.IndexByte(seg, 0) >= 0 {
			return dst, fmt.Errorf("sdk: property path segment %d (%q) contains a NUL byte: %w", i, seg, ErrBadArgument)
		}
		if i > 0 {
			dst = append(dst, 0)
		}
		dst = append(dst, seg...)
	}
	return dst, nil
}
