package sdk

import (
	"encoding/binary"
	"errors"
)

// MaxSharedDataBatch is the most keys a SharedDataReads or
// SharedDataWrites batch holds (the host's limit).
const MaxSharedDataBatch = 64

// SharedValue is one key's result in a SharedDataReads batch.
type SharedValue struct {
	// Value is the key's value (nil when missing). It stays valid: the
	// batch does not reuse the buffer it points into.
	Value []byte
	// CAS is the value's compare-and-swap token or, for a missing key
	// on Sluice, a token that creates it (a SetSharedData with it
	// succeeds only while the key stays missing).
	CAS   uint32
	Found bool
}

// SharedDataReads reads several shared-data keys in one host call
// (Sluice's sluice.shared_data_get_many); each key is read as
// GetSharedData would, atomically, but the batch is not a snapshot. On a
// host without the function (Envoy) Get reads the keys one by one.
// Reset and reuse a batch: its buffers are kept. The zero value is an
// empty batch. Not safe for concurrent use.
type SharedDataReads struct {
	args []byte // the encoded keys
	offs []int  // where each key starts in args
	res  []SharedValue
}

// Reset empties the batch.
func (b *SharedDataReads) Reset() { b.args, b.offs = b.args[:0], b.offs[:0] }

// Add appends a read of key (copied) and reports false when the batch
// already holds MaxSharedDataBatch keys.
func (b *SharedDataReads) Add(key []byte) bool {
	if len(b.offs) == MaxSharedDataBatch {
		return false
	}
	b.offs = append(b.offs, len(b.args)+4)
	b.args = binary.LittleEndian.AppendUint32(b.args, uint32(len(key)))
	b.args = append(b.args, key...)
	return true
}

// Len returns the number of keys in the batch.
func (b *SharedDataReads) Len() int { return len(b.offs) }

// Key returns the batch's i-th key, valid until the next Reset or Add.
func (b *SharedDataReads) Key(i int) []byte {
	at := b.offs[i]
	return b.args[at : at+int(binary.LittleEndian.Uint32(b.args[at-4:]))]
}

// errBatchAnswer is the error of a host answer that is not n results.
var errBatchAnswer = errors.New("sdk: sluice.shared_data_get_many answered a malformed result")

// decodeSharedValues appends the n results of a get_many answer to dst:
// per key a u32 little-endian CAS, a u32 little-endian length
// (0xFFFFFFFF: missing), then the value. Values are views into res.
func decodeSharedValues(dst []SharedValue, res []byte, n int) ([]SharedValue, error) {
	for range n {
		if len(res) < 8 {
			return dst, errBatchAnswer
		}
		v := SharedValue{CAS: binary.LittleEndian.Uint32(res)}
		size := binary.LittleEndian.Uint32(res[4:])
		res = res[8:]
		if size != 0xFFFFFFFF {
			if uint64(size) > uint64(len(res)) {
				return dst, errBatchAnswer
			}
			v.Value, v.Found, res = res[:size:size], true, res[size:]
		}
		dst = append(dst, v)
	}
	if len(res) != 0 {
		return dst, errBatchAnswer
	}
	return dst, nil
}

// SharedDataWrites writes several shared-data keys in one host call
// (Sluice's sluice.shared_data_set_many), in order, each as SetSharedData
// would (atomic, with its own CAS), but not as a transaction. On a host
// without the function (Envoy) Set writes them one by one. Reset and
// reuse a batch. The zero value is an empty batch. Not safe for
// concurrent use.
type SharedDataWrites struct {
	args []byte
	ws   []sharedWrite
	errs []error
}

// sharedWrite locates one write's key and value in args.
type sharedWrite struct {
	cas        uint32
	key, value int // offsets of their bytes in args
}

// Reset empties the batch.
func (b *SharedDataWrites) Reset() { b.args, b.ws = b.args[:0], b.ws[:0] }

// Add appends a write of value under key (both copied), conditional on
// cas unless it is 0, and reports false when the batch already holds
// MaxSharedDataBatch writes.
func (b *SharedDataWrites) Add(key, value []byte, cas uint32) bool {
	if len(b.ws) == MaxSharedDataBatch {
		return false
	}
	w := sharedWrite{cas: cas}
	b.args = binary.LittleEndian.AppendUint32(b.args, cas)
	b.args = binary.LittleEndian.AppendUint32(b.args, uint32(len(key)))
	w.key = len(b.args)
	b.args = append(b.args, key...)
	b.args = binary.LittleEndian.AppendUint32(b.args, uint32(len(value)))
	w.value = len(b.args)
	b.args = append(b.args, value...)
	b.ws = append(b.ws, w)
	return true
}

// Len returns the number of writes in the batch.
func (b *SharedDataWrites) Len() int { return len(b.ws) }

// Write returns the batch's i-th write, valid until the next Reset or Add.
func (b *SharedDataWrites) Write(i int) (key, value []byte, cas uint32) {
	w := b.ws[i]
	return b.args[w.key : w.key+int(binary.LittleEndian.Uint32(b.args[w.key-4:]))],
		b.args[w.value : w.value+int(binary.LittleEndian.Uint32(b.args[w.value-4:]))], w.cas
}
