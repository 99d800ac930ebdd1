package sdk

import (
	"fmt"
	"unsafe"
)

// maxAllocation bounds a single proxy_on_memory_allocate request. Larger
// requests fail (return 0) instead of crashing the instance with an
// out-of-memory fatal error; wasm32 memory is 4 GiB at most anyway.
const maxAllocation = 1 << 30

// allocTable keeps the buffers handed to the host by proxy_on_memory_allocate
// reachable until the SDK has read them back. Go's garbage collector does not
// move heap objects, so keeping a reference is enough to keep the address
// valid while the host writes into it.
//
// Allocations are keyed by address. Each one carries a sequence number so a
// host call wrapper can release every allocation made during that call that
// the host did not hand back (a failed call, or a host that allocated more
// than it returned), which keeps the table from leaking.
//
// Not safe for concurrent use: a Wasm instance runs one callback at a time.
type allocTable struct {
	bufs map[uintptr]allocation
	seq  uint64
}

type allocation struct {
	buf []byte
	seq uint64
}

// alloc returns a new zeroed buffer of size bytes (at least 1, so the address
// is never 0) and its address, or (0, nil) when size exceeds maxAllocation.
func (t *allocTable) alloc(size uint32) (uintptr, []byte) {
	if size > maxAllocation {
		return 0, nil
	}
	buf := make([]byte, max(size, 1))
	addr := uintptr(unsafe.Pointer(unsafe.SliceData(buf)))
	if t.bufs == nil {
		t.bufs = make(map[uintptr]allocation)
	}
	t.seq++
	t.bufs[addr] = allocation{buf: buf, seq: t.seq}
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
	a, ok := t.bufs[addr]
	if !ok {
		return nil, fmt.Errorf("sdk: host returned address %#x, which proxy_on_memory_allocate did not hand out: %w", addr, ErrInvalidMemoryAccess)
	}
	delete(t.bufs, addr)
	if uint64(size) > uint64(len(a.buf)) {
		return nil, fmt.Errorf("sdk: host returned %d bytes in an allocation of %d bytes: %w", size, len(a.buf), ErrInvalidMemoryAccess)
	}
	return a.buf[:size:size], nil
}

// releaseSince drops every allocation made after mark. Called at the end of
// each host call wrapper that can make the host allocate.
func (t *allocTable) releaseSince(mark uint64) {
	if len(t.bufs) == 0 || t.seq == mark {
		return
	}
	for addr, a := range t.bufs {
		if a.seq > mark {
			delete(t.bufs, addr)
		}
	}
}

// outstanding reports how many allocations are held (for tests).
func (t *allocTable) outstanding() int { return len(t.bufs) }

// mem is the instance's allocation table, used by proxy_on_memory_allocate
// and the host call wrappers.
var mem allocTable
