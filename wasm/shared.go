package wasm

import (
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
	// created. It must not go backwards: expiry relies on the entries of
	// one TTL being written in deadline order (shared_ttl.go); a clock
	// that steps back delays the expiry of what is written after the
	// step, never makes anything expire early.
	now func() int64
	// lastCAS is the last CAS issued (to an entry, or as a creation CAS
	// by a get of a missing key); maxRemovedCAS the highest CAS an entry
	// had when it expired, was evicted or deleted (0: none ever was, and
	// the store behaves exactly as Envoy's).
	lastCAS, maxRemovedCAS uint32
	// classes and byTTL hold the entries that have a deadline, one FIFO
	// per distinct TTL (shared_ttl.go); spareClass is an emptied class
	// kept for the next new one.
	classes    classHeap
	byTTL      map[time.Duration]*ttlClass
	spareClass *ttlClass
	// evictOrder lists the evictable entries in write order, oldest first.
	evictOrder fifo
	// spare is the last removed entry, unlinked from everything, kept for
	// the next new key (nil: none).
	spare *sharedValue
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
	deadline int64     // 0: none
	class    *ttlClass // the FIFO of its TTL; nil: no deadline
	// evictable entries are in evictOrder.
	evictable bool
	links     [2]listLinks // in evictOrder and in class, by list kind
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
		m:     make(map[string]*sharedValue),
		byTTL: make(map[time.Duration]*ttlClass),
		now:   func() int64 { return int64(time.Since(start)) + 1 },
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
	return d.setLocked(key, value, cas, pol, now)
}

// setLocked is set once d.mu is held and expired entries are dropped
// as of now.
func (d *sharedData) setLocked(key, value []byte, cas uint32, pol sharedPolicy, now int64) status {
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
		victim := d.evictOrder.head
		if victim == v && victim != nil {
			victim = victim.links[evictList].next
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
		v = d.newValue(key)
	}
	v.value = append(reuseBuffer(v.value, len(value)), value...)
	v.cas = d.nextCAS()
	d.bytes += grow
	d.setDeadline(v, pol, now)
	d.unlink(v)
	if pol.evict {
		v.evictable = true
		d.evictOrder.push(v, evictList)
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

// peek appends the value of key to dst and reports whether it is there:
// get without a CAS (a missing key takes none from the counter).
func (d *sharedData) peek(dst, key []byte) ([]byte, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.expire(d.now())
	v := d.m[string(key)]
	if v == nil {
		return dst, false
	}
	return append(dst, v.value...), true
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

// newValue adds an entry for key to the map: the spare one, if a removal
// left one, else a new one. d.mu is held.
func (d *sharedData) newValue(key []byte) *sharedValue {
	v := d.spare
	if v != nil {
		d.spare = nil
	} else {
		v = new(sharedValue)
	}
	v.key = string(key)
	d.m[v.key] = v
	return v
}

// Bounds on the value buffers kept for reuse: an entry keeps its buffer
// for a new value while it is at most twice the value's size plus
// bufferSlack (so the memory a store holds stays within about twice
// what it counts against maxSharedBytes), and the spare entry keeps
// its buffer only up to maxSpareBuffer bytes.
const (
	bufferSlack    = 64
	maxSpareBuffer = 64 << 10
)

// reuseBuffer returns buf emptied, to hold a value of n bytes, or nil
// when buf is more than twice too big for it.
func reuseBuffer(buf []byte, n int) []byte {
	if cap(buf) > 2*n+bufferSlack {
		return nil
	}
	return buf[:0]
}

// remove drops v from the map, its TTL class and the eviction list, and
// keeps it, unlinked from everything, as the spare for the next new key.
func (d *sharedData) remove(v *sharedValue) {
	delete(d.m, v.key)
	d.bytes -= len(v.key) + len(v.value)
	d.dequeue(v)
	d.unlink(v)
	if v.cas > d.maxRemovedCAS {
		d.maxRemovedCAS = v.cas
	}
	v.key, v.cas = "", 0
	v.value = v.value[:0]
	if cap(v.value) > maxSpareBuffer {
		v.value = nil
	}
	d.spare = v
}

// unlink takes v out of the eviction list, if it is in it.
func (d *sharedData) unlink(v *sharedValue) {
	if v.evictable {
		d.evictOrder.cut(v, evictList)
		v.evictable = false
	}
}

// Lists an entry can be in: the index of its links for each.
const (
	evictList = iota // sharedData.evictOrder
	ttlList          // its ttlClass
)

// listLinks are an entry's neighbours in one list.
type listLinks struct{ prev, next *sharedValue }

// fifo is a doubly linked list of entries in write order, oldest (head)
// first, linked through their links[k] for one list kind k.
type fifo struct{ head, tail *sharedValue }

// push appends v, which is in no list of kind k, at the tail.
func (l *fifo) push(v *sharedValue, k int) {
	v.links[k] = listLinks{prev: l.tail}
	if l.tail != nil {
		l.tail.links[k].next = v
	} else {
		l.head = v
	}
	l.tail = v
}

// cut takes v, which is in l, out of it.
func (l *fifo) cut(v *sharedValue, k int) {
	p, n := v.links[k].prev, v.links[k].next
	if p != nil {
		p.links[k].next = n
	} else {
		l.head = n
	}
	if n != nil {
		n.links[k].prev = p
	} else {
		l.tail = p
	}
	v.links[k] = listLinks{}
}
