package sdk

import (
	"fmt"
	"unsafe"
)

// maxAllocation bounds a single proxy_on_memory_allocate request. Larger
// requests fail (return 0) instead of crashing the instance with an
// out-of-memory fatal error; wasm32 memory is 4 GiB at most anyway.
const maxAllocation = 1 << 30

// maxRecycled bounds the size of a buffer kept for reuse, and maxFree how
// many are kept: header maps and values are small, bodies are not reused.
const (
	maxRecycled = 16 << 10
	maxFree     = 4
)

// allocTable keeps the buffers handed to the host by proxy_on_memory_allocate
// reachable until the SDK has read them back. Go's garbage collector does not
// move heap objects, so keeping a reference is enough to keep the address
// valid while the host writes into it.
//
// Each allocation carries a sequence number so a host call wrapper can
// release every allocation made during that call that the host did not hand
// back (a failed call, or a host that allocated more than it returned),
// which keeps the table from leaking. Outstanding allocations are few (one
// per host call in flight), so they are kept in a slice, not a map.
//
// Buffers whose content the SDK copied out (header maps, header values) are
// given back with recycle and reused by later allocations, so a plugin that
// reads headers on every request does not make the guest allocate for the
// host's writes each time.
//
// The allocation of the host call in flight is kept in a field of its
// own (last), the others in live: a Go guest pays for every slice
// operation, and most calls have one allocation outstanding at most.
//
// Not safe for concurrent use: a Wasm instance runs one callback at a time.
type allocTable struct {
	last allocation // the latest allocation not taken back (addr 0: none)
	live []allocation
	free [][]byte
	seq  uint64
}

type allocation struct {
	addr uintptr
	buf  []byte
	seq  uint64
}

// alloc returns a zeroed buffer of size bytes (at least 1, so the address is
// never 0) and its address, or (0, nil) when size exceeds maxAllocation. The
// buffer is a recycled one when one is large enough.
func (t *allocTable) alloc(size uint32) (uintptr, []byte) {
	if size > maxAllocation {
		return 0, nil
	}
	n := int(max(size, 1))
	var buf []byte
	// The smallest free buffer that fits and is not much larger: a big
	// one stays for a big answer (ReleaseBytes).
	best := -1
	for i, f := range t.free {
		if c := cap(f); c >= n && c <= 4*n+64 && (best < 0 || c < cap(t.free[best])) {
			best = i
		}
	}
	if best >= 0 {
		buf = t.free[best][:n]
		clear(buf)
		last := len(t.free) - 1
		t.free[best] = t.free[last]
		t.free[last] = nil
		t.free = t.free[:last]
	}
	if buf == nil {
		buf = make([]byte, n)
	}
	addr := uintptr(unsafe.Pointer(unsafe.SliceData(buf)))
	t.seq++
	if t.last.addr != 0 {
		t.live = append(t.live, t.last)
	}
	t.last = allocation{addr: addr, buf: buf, seq: t.seq}
	return addr, buf
}

// mark returns the current sequence number, to be passed to releaseSince
// after a host call.
func (t *allocTable) mark() uint64 { return t.seq }

// take removes the allocation at addr and returns its first size bytes. A
// (0, 0) pair means "no data" and returns an empty slice. An address the
// table does not know, or a size larger than the allocation, is an error
// wrapping ErrInvalidMemoryAccess: the host wrote back something it did not
// get from proxy_on_memory_allocate.
func (t *allocTable) take(addr uintptr, size uint32) ([]byte, error) {
	if addr == 0 {
		if size == 0 {
			return []byte{}, nil
		}
		return nil, fmt.Errorf("sdk: host returned %d bytes at address 0: %w", size, ErrInvalidMemoryAccess)
	}
	var a allocation
	if t.last.addr == addr {
		a, t.last = t.last, allocation{}
	} else {
		i := t.find(addr)
		if i < 0 {
			return nil, fmt.Errorf("sdk: host returned address %#x, which proxy_on_memory_allocate did not hand out: %w", addr, ErrInvalidMemoryAccess)
		}
		a = t.live[i]
		t.remove(i)
	}
	if uint64(size) > uint64(len(a.buf)) {
		return nil, fmt.Errorf("sdk: host returned %d bytes in an allocation of %d bytes: %w", size, len(a.buf), ErrInvalidMemoryAccess)
	}
	return a.buf[:size:size], nil
}

// recycle gives back a buffer returned by take once its content has been
// copied out; the caller must not use b afterwards. Large buffers, and
// small ones when maxFree larger ones are kept, are left to the garbage
// collector.
// A buffer that overlaps one already free (given back twice, or a slice
// of one given back) is ignored: two answers must never share memory.
//
// When maxFree buffers are kept already, b replaces the smallest if it is
// larger: a plugin that gives back a kilobyte answer and a few small ones
// per request must keep the big one, whose new allocation is the slow one
// (a new span every few requests), while a small one costs little.
func (t *allocTable) recycle(b []byte) {
	if cap(b) == 0 || cap(b) > maxRecycled {
		return
	}
	start := uintptr(unsafe.Pointer(unsafe.SliceData(b)))
	smallest := -1
	for i, f := range t.free {
		if fs := uintptr(unsafe.Pointer(unsafe.SliceData(f))); start < fs+uintptr(cap(f)) && fs < start+uintptr(cap(b)) {
			return
		}
		if smallest < 0 || cap(f) < cap(t.free[smallest]) {
			smallest = i
		}
	}
	switch {
	case len(t.free) < maxFree:
		t.free = append(t.free, b[:0:cap(b)])
	case cap(b) > cap(t.free[smallest]):
		t.free[smallest] = b[:0:cap(b)]
	}
}

// ReleaseBytes gives back b, a slice a host call returned
// (CallForeignFunction, GetProperty, GetSharedData, GetHttpRequestBody…),
// once the plugin uses neither it nor anything sliced from it any more:
// the SDK writes a later host answer of about its size into it instead of
// allocating. An answer of a kilobyte or more per request otherwise costs
// a Go guest a slow allocation (a new span) every few requests: ~8 µs per
// request on average for cacheaware's 1 KiB of prompt hashes. Optional:
// a buffer not given back is garbage collected. At most maxFree buffers
// of up to 16 KiB are kept; others are dropped. Call it from a callback
// (an instance runs one at a time).
func ReleaseBytes(b []byte) { mem.recycle(b) }

// releaseSince drops every allocation made after mark (the host allocated
// them but did not hand them back) and keeps them for reuse. Called at the
// end of each host call wrapper that can make the host allocate.
func (t *allocTable) releaseSince(mark uint64) {
	if t.seq == mark {
		return
	}
	if a := t.last; a.addr != 0 && a.seq > mark {
		t.last = allocation{}
		t.recycle(a.buf)
	}
	for i := len(t.live) - 1; i >= 0; i-- {
		if a := t.live[i]; a.seq > mark {
			t.remove(i)
			t.recycle(a.buf)
		}
	}
}

func (t *allocTable) find(addr uintptr) int {
	for i := len(t.live) - 1; i >= 0; i-- {
		if t.live[i].addr == addr {
			return i
		}
	}
	return -1
}

// remove deletes live[i], keeping the order of the others.
func (t *allocTable) remove(i int) {
	copy(t.live[i:], t.live[i+1:])
	t.live[len(t.live)-1] = allocation{}
	t.live = t.live[:len(t.live)-1]
}

// outstanding reports how many allocations are held (for tests).
func (t *allocTable) outstanding() int {
	if t.last.addr != 0 {
		return len(t.live) + 1
	}
	return len(t.live)
}

// mem is the instance's allocation table, used by proxy_on_memory_allocate
// and the host call wrappers.
var mem allocTable
