package wasm

import (
	"container/heap"
	"sync"
	"time"

	"github.com/VictoriaMetrics/metrics"
)

// Limits of one shared-data store (one per VM id).
const (
	maxSharedKeys  = 1 << 14
	maxSharedBytes = 64 << 20
)

// sharedData is the Proxy-Wasm shared key-value store of one VM id: every
// instance of every plugin with that vm_id sees the same values. It is safe
// for concurrent use.
//
// Sluice bounds it (see sharedPolicy and doc.go, "Bounded shared data"):
// an entry may carry a deadline after which it reads as missing, and an
// entry written under an evicting policy may be dropped, oldest write
// first, to make room for a new one. CAS values are issued from one
// counter per store (as Envoy's nextCas), so a removed key's old CAS is
// never reissued to its successor and a CAS set against it fails.
type sharedData struct {
	mu    sync.Mutex
	m     map[string]*sharedValue
	bytes int
	// now is the clock deadlines are measured on, in nanoseconds;
	// injectable for tests. Default: monotonic time since the store was
	// created.
	now func() int64
	// lastCAS is the last CAS issued (to an entry, or as a creation CAS
	// by a get of a missing key); maxRemovedCAS the highest CAS an entry
	// had when it expired, was evicted or deleted (0: none ever was, and
	// the store behaves exactly as Envoy's).
	lastCAS, maxRemovedCAS uint32
	// deadlines holds the entries that have one, soonest first.
	deadlines deadlineHeap
	// oldest and newest end the list of evictable entries in write order.
	oldest, newest *sharedValue
	// expired and evicted count removals (for tests and metrics).
	expired, evicted uint64
	met              *sharedMetrics // nil: not exported
}

// sharedMetrics are a store's series (registerMetrics).
type sharedMetrics struct {
	keys                      *metrics.Gauge
	expired, evicted, refused *metrics.Counter
}

// registerMetrics exports the store's metrics in set, labelled by vm_id:
//
//	sluice_shared_data_keys{vm_id}            (gauge, updated on writes)
//	sluice_shared_data_expired_total{vm_id}
//	sluice_shared_data_evicted_total{vm_id}
//	sluice_shared_data_refused_total{vm_id}   (writes refused: store full)
//
// Call it before the store is shared.
func (d *sharedData) registerMetrics(set *metrics.Set, vmID string) {
	l := `{vm_id="` + escapeLabel(vmID) + `"}`
	d.met = &sharedMetrics{
		keys:    set.GetOrCreateGauge("sluice_shared_data_keys"+l, nil),
		expired: set.GetOrCreateCounter("sluice_shared_data_expired_total" + l),
		evicted: set.GetOrCreateCounter("sluice_shared_data_evicted_total" + l),
		refused: set.GetOrCreateCounter("sluice_shared_data_refused_total" + l),
	}
}

type sharedValue struct {
	key      string
	value    []byte
	cas      uint32
	deadline int64 // 0: none
	heapIdx  int   // index in deadlines, -1 when absent
	// evictable entries are linked in write order.
	evictable  bool
	prev, next *sharedValue
}

// sharedPolicy is how a write bounds its entry. The zero value is
// Envoy's behaviour: kept forever, a full store refuses the write.
type sharedPolicy struct {
	// ttl is the entry's time to live from this write; 0: none.
	ttl time.Duration
	// evict lets this write drop the oldest evictable entries when the
	// store is full, and makes the entry itself evictable.
	evict bool
}

func newSharedData() *sharedData {
	start := time.Now()
	return &sharedData{
		m:   make(map[string]*sharedValue),
		now: func() int64 { return int64(time.Since(start)) + 1 },
	}
}

// set stores a copy of value under key with the policy pol. A non-zero
// cas must match the current value's (CAS_MISMATCH otherwise); against a
// missing key it fails if the store has removed an entry with a CAS at
// least as high (so a CAS read before an expiry, eviction or delete
// fails), and succeeds otherwise, as in Envoy. It fails with
// INTERNAL_FAILURE when the store is full (maxSharedKeys keys or
// maxSharedBytes bytes) and pol cannot evict enough to make room.
func (d *sharedData) set(key, value []byte, cas uint32, pol sharedPolicy) status {
	d.mu.Lock()
	defer d.mu.Unlock()
	now := d.now()
	d.expire(now)
	v := d.m[string(key)]
	switch {
	case v != nil && cas != 0 && v.cas != cas:
		return statusCASMismatch
	case v == nil && cas != 0 && cas <= d.maxRemovedCAS:
		return statusCASMismatch
	}
	old := 0
	if v != nil {
		old = len(key) + len(v.value)
	}
	grow := len(key) + len(value) - old
	for (v == nil && len(d.m) >= maxSharedKeys) || d.bytes+grow > maxSharedBytes {
		victim := d.oldest
		if victim == v && victim != nil {
			victim = victim.next
		}
		if !pol.evict || victim == nil {
			if d.met != nil {
				d.met.refused.Inc()
			}
			return statusInternalFailure
		}
		d.remove(victim)
		d.evicted++
		if d.met != nil {
			d.met.evicted.Inc()
		}
	}
	if v == nil {
		v = &sharedValue{key: string(key), heapIdx: -1}
		d.m[v.key] = v
	}
	v.value = append(v.value[:0], value...)
	v.cas = d.nextCAS()
	d.bytes += grow
	d.setDeadline(v, pol, now)
	d.unlink(v)
	if pol.evict {
		v.evictable = true
		v.prev = d.newest
		if d.newest != nil {
			d.newest.next = v
		} else {
			d.oldest = v
		}
		d.newest = v
	}
	d.gaugeKeys()
	return statusOK
}

func (d *sharedData) gaugeKeys() {
	if d.met != nil {
		d.met.keys.Set(float64(len(d.m)))
	}
}

// nextCAS issues a CAS value no entry has had since the counter last
// wrapped. At the wrap (after 2^32-1 values; a get of a missing key
// takes one too, so a busy store wraps within hours) the store starts a
// new epoch (renumber).
func (d *sharedData) nextCAS() uint32 {
	d.lastCAS++
	if d.lastCAS == 0 {
		d.renumber()
	}
	return d.lastCAS
}

// renumber starts a new CAS epoch at the wrap: the removal watermark goes
// back to 0 and every live entry gets a new CAS from 1 up, so no entry
// holds a CAS above lastCAS. Otherwise the removal of an entry written
// before the wrap would raise the watermark above every CAS issued after
// it, and no key could be created with a creation CAS for the next 2^32
// values. A guest holding a CAS from before the wrap gets CAS_MISMATCH
// and reads again. O(keys), at most maxSharedKeys, once per 2^32 CAS
// values. d.mu is held.
func (d *sharedData) renumber() {
	d.lastCAS, d.maxRemovedCAS = 0, 0
	for _, v := range d.m {
		d.lastCAS++
		v.cas = d.lastCAS
	}
	d.lastCAS++
}

// get appends the value of key to dst and returns it with its cas, or,
// for a missing key, dst with a creation CAS and false.
//
// The creation CAS is a value issued to no entry. A set of the missing
// key with it succeeds only while the key stays missing: an entry
// created since has another CAS (CAS_MISMATCH), and one created and
// removed since raised maxRemovedCAS above it (CAS_MISMATCH too). So two
// instances that both find a key missing cannot both create it, which a
// set with cas 0 (unconditional, as in Envoy) cannot promise. A removal
// of another key written after the get also fails the creation (the
// watermark is per store): stricter, and the caller retries.
func (d *sharedData) get(dst, key []byte) ([]byte, uint32, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.expire(d.now())
	v := d.m[string(key)]
	if v == nil {
		return dst, d.nextCAS(), false
	}
	return append(dst, v.value...), v.cas, true
}

// del removes key. A non-zero cas must match the current value's
// (CAS_MISMATCH otherwise); a missing key is NOT_FOUND.
func (d *sharedData) del(key []byte, cas uint32) status {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.expire(d.now())
	v := d.m[string(key)]
	switch {
	case v == nil:
		return statusNotFound
	case cas != 0 && v.cas != cas:
		return statusCASMismatch
	}
	d.remove(v)
	d.gaugeKeys()
	return statusOK
}

// len returns the number of live entries (expired ones are dropped first).
func (d *sharedData) len() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.expire(d.now())
	return len(d.m)
}

// expire drops the entries whose deadline is at or before now. Each entry
// is dropped once, so the cost is amortised over the writes that gave
// them deadlines.
func (d *sharedData) expire(now int64) {
	n := 0
	for len(d.deadlines) > 0 && d.deadlines[0].deadline <= now {
		d.remove(d.deadlines[0])
		n++
	}
	if n > 0 {
		d.expired += uint64(n)
		if d.met != nil {
			d.met.expired.Add(n)
			d.gaugeKeys()
		}
	}
}

func (d *sharedData) setDeadline(v *sharedValue, pol sharedPolicy, now int64) {
	if pol.ttl <= 0 {
		if v.heapIdx >= 0 {
			heap.Remove(&d.deadlines, v.heapIdx)
		}
		v.deadline = 0
		return
	}
	v.deadline = now + int64(pol.ttl)
	if v.deadline <= now { // overflow: treat as no deadline reachable
		v.deadline = 1<<63 - 1
	}
	if v.heapIdx >= 0 {
		heap.Fix(&d.deadlines, v.heapIdx)
	} else {
		heap.Push(&d.deadlines, v)
	}
}

// remove drops v from the map, the deadline heap and the eviction list.
func (d *sharedData) remove(v *sharedValue) {
	delete(d.m, v.key)
	d.bytes -= len(v.key) + len(v.value)
	if v.heapIdx >= 0 {
		heap.Remove(&d.deadlines, v.heapIdx)
	}
	d.unlink(v)
	if v.cas > d.maxRemovedCAS {
		d.maxRemovedCAS = v.cas
	}
}

// unlink takes v out of the eviction list, if it is in it.
func (d *sharedData) unlink(v *sharedValue) {
	if !v.evictable {
		return
	}
	if v.prev != nil {
		v.prev.next = v.next
	} else {
		d.oldest = v.next
	}
	if v.next != nil {
		v.next.prev = v.prev
	} else {
		d.newest = v.prev
	}
	v.prev, v.next, v.evictable = nil, nil, false
}

// deadlineHeap is a min-heap of entries by deadline (container/heap).
type deadlineHeap []*sharedValue

func (h deadlineHeap) Len() int           { return len(h) }
func (h deadlineHeap) Less(i, j int) bool { return h[i].deadline < h[j].deadline }
func (h deadlineHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].heapIdx, h[j].heapIdx = i, j
}
func (h *deadlineHeap) Push(x any) {
	v := x.(*sharedValue)
	v.heapIdx = len(*h)
	*h = append(*h, v)
}
func (h *deadlineHeap) Pop() any {
	old := *h
	v := old[len(old)-1]
	old[len(old)-1] = nil
	v.heapIdx = -1
	*h = old[:len(old)-1]
	return v
}
