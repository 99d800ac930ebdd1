package wasm

import "encoding/binary"

// maxSharedBatch bounds the keys of one sluice.shared_data_get_many or
// sluice.shared_data_set_many call.
const maxSharedBatch = 64

// sharedMissing is the length sluice.shared_data_get_many gives a
// missing key.
const sharedMissing = 0xFFFFFFFF

// cutLenPrefixed splits a u32 little-endian length and that many bytes
// off b.
func cutLenPrefixed(b []byte) (field, rest []byte, ok bool) {
	if len(b) < 4 {
		return nil, b, false
	}
	n := binary.LittleEndian.Uint32(b)
	if uint64(n) > uint64(len(b)-4) {
		return nil, b, false
	}
	return b[4 : 4+n], b[4+n:], true
}

// countSharedGetMany checks sluice.shared_data_get_many's arguments: one
// or more keys, each a u32 little-endian length then its bytes, at most
// maxSharedBatch. It returns how many, or false.
func countSharedGetMany(args []byte) (int, bool) {
	return countBatch(args, func(b []byte) ([]byte, bool) {
		_, rest, ok := cutLenPrefixed(b)
		return rest, ok
	})
}

// countBatch counts the items cut splits off args, one after the other
// until none is left: at least 1 and at most maxSharedBatch, else false.
func countBatch(args []byte, cut func([]byte) (rest []byte, ok bool)) (int, bool) {
	n := 0
	for len(args) > 0 {
		var ok bool
		if args, ok = cut(args); !ok || n == maxSharedBatch {
			return 0, false
		}
		n++
	}
	return n, n > 0
}

// foreignSharedDataGetMany reads several keys of the plugin's shared data
// in one call, each as proxy_get_shared_data would (a missing key gets a
// creation CAS). The result has, per key in order, a u32 little-endian
// CAS, a u32 little-endian value length (0xFFFFFFFF: missing), then the
// value. Each key is read atomically; the batch is not a snapshot.
// BAD_ARGUMENT for malformed arguments, and then nothing is read.
func foreignSharedDataGetMany(p *Plugin, args, dst []byte) ([]byte, status) {
	if _, ok := countSharedGetMany(args); !ok {
		return nil, statusBadArgument
	}
	for len(args) > 0 {
		var key []byte
		key, args, _ = cutLenPrefixed(args)
		at := len(dst)
		dst = append(dst, 0, 0, 0, 0, 0, 0, 0, 0)
		var (
			cas   uint32
			found bool
		)
		dst, cas, found = p.shared.get(dst, key)
		n := uint32(sharedMissing)
		if found {
			n = uint32(len(dst) - at - 8)
		}
		binary.LittleEndian.PutUint32(dst[at:], cas)
		binary.LittleEndian.PutUint32(dst[at+4:], n)
	}
	return dst, statusOK
}

// cutSharedWrite splits one write of sluice.shared_data_set_many's
// arguments off b: a u32 little-endian CAS (0: unconditional), then the
// key and the value, each a u32 little-endian length then its bytes.
func cutSharedWrite(b []byte) (cas uint32, key, value, rest []byte, ok bool) {
	if len(b) < 4 {
		return 0, nil, nil, b, false
	}
	cas = binary.LittleEndian.Uint32(b)
	if key, rest, ok = cutLenPrefixed(b[4:]); !ok {
		return 0, nil, nil, b, false
	}
	if value, rest, ok = cutLenPrefixed(rest); !ok {
		return 0, nil, nil, b, false
	}
	return cas, key, value, rest, true
}

// countSharedSetMany checks sluice.shared_data_set_many's arguments: one
// or more writes (cutSharedWrite), at most maxSharedBatch.
func countSharedSetMany(args []byte) (int, bool) {
	return countBatch(args, func(b []byte) ([]byte, bool) {
		_, _, _, rest, ok := cutSharedWrite(b)
		return rest, ok
	})
}

// foreignSharedDataSetMany writes several keys of the plugin's shared
// data in one call, in order, each as proxy_set_shared_data would (the
// plugin's policy for that key applies). The result is one byte per
// write: its status (OK, CAS_MISMATCH, INTERNAL_FAILURE when the store is
// full). Each write is atomic; the batch is not a transaction.
// BAD_ARGUMENT for malformed arguments, and then nothing is written.
func foreignSharedDataSetMany(p *Plugin, args, dst []byte) ([]byte, status) {
	if _, ok := countSharedSetMany(args); !ok {
		return nil, statusBadArgument
	}
	for len(args) > 0 {
		cas, key, value, rest, _ := cutSharedWrite(args)
		args = rest
		dst = append(dst, byte(p.shared.set(key, value, cas, p.sharedRules.policyFor(key))))
	}
	return dst, statusOK
}
