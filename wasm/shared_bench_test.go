package wasm

import (
	"encoding/binary"
	"testing"
	"time"
)

// BenchmarkSharedDataSetFull: writes of new keys to a full store under a
// TTL and evict policy, as the cacheaware plugin makes them (binary keys
// under "ca/", short values): every write evicts the oldest entry. The
// keys cycle over twice the store's size, so each one was evicted before
// it is written again.
func BenchmarkSharedDataSetFull(b *testing.B) {
	d := newSharedData()
	keys, value, pol := fullStoreWrites()
	for _, k := range keys[:maxSharedKeys] {
		if st := d.set(k, value, 0, pol); st != statusOK {
			b.Fatalf("fill: status %d", st)
		}
	}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		if st := d.set(keys[(maxSharedKeys+i)%len(keys)], value, 0, pol); st != statusOK {
			b.Fatalf("set: status %d", st)
		}
	}
}

// fullStoreWrites returns what BenchmarkSharedDataSetFull and
// TestSharedDataSetAllocations write: twice maxSharedKeys distinct keys
// like cacheaware's, a value and a TTL and evict policy.
func fullStoreWrites() (keys [][]byte, value []byte, pol sharedPolicy) {
	keys = make([][]byte, 2*maxSharedKeys)
	for i := range keys {
		keys[i] = binary.LittleEndian.AppendUint64([]byte("ca/pool/p"), uint64(i)*0x9e3779b97f4a7c15)
	}
	return keys, []byte("10.0.0.7:8000"), sharedPolicy{ttl: time.Hour, evict: true}
}
