package wasm

import "sync"

// Limits of one shared-data store (one per VM id).
const (
	maxSharedKeys  = 1 << 14
	maxSharedBytes = 64 << 20
)

// sharedData is the Proxy-Wasm shared key-value store of one VM id: every
// instance of every plugin with that vm_id sees the same values. It is safe
// for concurrent use.
type sharedData struct {
	mu    sync.Mutex
	m     map[string]*sharedValue
	bytes int
}

type sharedValue struct {
	value []byte
	cas   uint32
}

func newSharedData() *sharedData { return &sharedData{m: make(map[string]*sharedValue)} }

// set stores a copy of value under key. A non-zero cas must match the
// current value's (CAS_MISMATCH otherwise). It fails with
// INTERNAL_FAILURE when the store is full (maxSharedKeys keys or
// maxSharedBytes bytes).
func (d *sharedData) set(key, value []byte, cas uint32) status {
	d.mu.Lock()
	defer d.mu.Unlock()
	v := d.m[string(key)]
	if v != nil && cas != 0 && v.cas != cas {
		return statusCASMismatch
	}
	old := 0
	if v != nil {
		old = len(key) + len(v.value)
	}
	grow := len(key) + len(value) - old
	if (v == nil && len(d.m) >= maxSharedKeys) || d.bytes+grow > maxSharedBytes {
		return statusInternalFailure
	}
	if v == nil {
		v = &sharedValue{}
		d.m[string(key)] = v
	}
	v.value = append(v.value[:0], value...)
	v.cas++
	if v.cas == 0 {
		v.cas = 1
	}
	d.bytes += grow
	return statusOK
}

// get appends the value of key to dst and returns it with its cas.
func (d *sharedData) get(dst, key []byte) ([]byte, uint32, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	v := d.m[string(key)]
	if v == nil {
		return dst, 0, false
	}
	return append(dst, v.value...), v.cas, true
}
