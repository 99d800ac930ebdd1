package wasm

import (
	"context"
	"sync"

	"github.com/tetratelabs/wazero/api"
)

// Shared queues. A queue is named by (vm_id, name) and lives as long as
// the Host; its id is Host-wide, so any plugin that resolved it may
// enqueue and dequeue. proxy_on_queue_ready goes to the root context of
// the instance that registered the queue most recently and is still live:
// one callback per enqueued item, on one instance, delivered by one
// goroutine per queue (tracked by the registrant's plugin), skipped once
// the queue is empty again.

// Limits of the shared queues.
const (
	maxQueues         = 1024     // per Host
	maxQueueItems     = 1 << 14  // per queue
	maxQueueBytes     = 16 << 20 // per queue
	maxQueueNameBytes = 1024
)

type queueKey struct{ vmID, name string }

// queueRegistry holds a Host's queues. Safe for concurrent use.
type queueRegistry struct {
	mu     sync.RWMutex
	byName map[queueKey]*sharedQueue
	byID   []*sharedQueue // id-1
}

func (r *queueRegistry) init() { r.byName = make(map[queueKey]*sharedQueue) }

// sharedQueue is one queue. Fields are guarded by mu.
type sharedQueue struct {
	id uint32

	mu         sync.Mutex
	items      [][]byte
	bytes      int
	owners     []*instance // registrants, most recent last
	pending    int         // proxy_on_queue_ready calls owed
	delivering bool        // a delivery goroutine runs
}

// register opens (or creates) the queue name of vmID with in as its most
// recent registrant.
func (r *queueRegistry) register(in *instance, vmID, name string) (uint32, status) {
	r.mu.Lock()
	q := r.byName[queueKey{vmID, name}]
	if q == nil {
		if len(r.byID) >= maxQueues {
			r.mu.Unlock()
			return 0, statusInternalFailure
		}
		q = &sharedQueue{id: uint32(len(r.byID) + 1)}
		r.byID = append(r.byID, q)
		r.byName[queueKey{vmID, name}] = q
	}
	r.mu.Unlock()
	q.mu.Lock()
	kept := q.owners[:0]
	for _, o := range q.owners {
		if o != in && !o.dead.Load() {
			kept = append(kept, o)
		}
	}
	clear(q.owners[len(kept):])
	q.owners = append(kept, in)
	q.mu.Unlock()
	return q.id, statusOK
}

// resolve returns the id of an existing queue.
func (r *queueRegistry) resolve(vmID, name string) (uint32, status) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	if q := r.byName[queueKey{vmID, name}]; q != nil {
		return q.id, statusOK
	}
	return 0, statusNotFound
}

func (r *queueRegistry) get(id uint32) *sharedQueue {
	r.mu.RLock()
	defer r.mu.RUnlock()
	if id == 0 || uint64(id) > uint64(len(r.byID)) {
		return nil
	}
	return r.byID[id-1]
}

// owner returns the most recent live registrant, forgetting dead ones
// (so that the queue does not keep discarded instances reachable). q.mu
// must be held.
func (q *sharedQueue) owner() *instance {
	for n := len(q.owners); n > 0; n-- {
		if o := q.owners[n-1]; !o.dead.Load() {
			return o
		}
		q.owners[n-1] = nil
		q.owners = q.owners[:n-1]
	}
	return nil
}

// enqueue appends a copy of data and schedules a proxy_on_queue_ready.
func (q *sharedQueue) enqueue(data []byte) status {
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.items) >= maxQueueItems || q.bytes+len(data) > maxQueueBytes {
		return statusInternalFailure
	}
	q.items = append(q.items, append([]byte(nil), data...))
	q.bytes += len(data)
	q.pending++
	if !q.delivering {
		q.startDelivery()
	}
	return statusOK
}

// startDelivery starts the goroutine that calls proxy_on_queue_ready, on
// the plugin of the current owner (so that its Close waits for it). q.mu
// must be held.
func (q *sharedQueue) startDelivery() {
	o := q.owner()
	if o == nil {
		q.pending = 0 // nobody to tell; the items wait for a dequeue
		return
	}
	p := o.p
	if p.goTracked(func() { q.deliver(p) }) {
		q.delivering = true
	}
}

// dequeue removes the first item; ok is false when the queue is empty.
func (q *sharedQueue) dequeue() (item []byte, ok bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.items) == 0 {
		return nil, false
	}
	item = q.items[0]
	q.items[0] = nil
	q.items = q.items[1:]
	if len(q.items) == 0 {
		q.items = q.items[:0:0] // drop the drained backing array
	}
	q.bytes -= len(item)
	return item, true
}

// putBack returns an item taken by dequeue to the front of the queue.
func (q *sharedQueue) putBack(item []byte) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.items = append(q.items, nil)
	copy(q.items[1:], q.items)
	q.items[0] = item
	q.bytes += len(item)
}

// deliver calls proxy_on_queue_ready once per enqueued item while items
// remain, on the current owner, as long as the owner belongs to p and p is
// open; otherwise it hands over to the owner's plugin or stops.
func (q *sharedQueue) deliver(p *Plugin) {
	for {
		q.mu.Lock()
		o := q.owner()
		switch {
		case q.pending == 0 || len(q.items) == 0 || o == nil:
			q.pending, q.delivering = 0, false
			q.mu.Unlock()
			return
		case o.p != p || p.closing():
			q.delivering = false
			if o.p != p {
				q.startDelivery() // the queue changed hands
			}
			q.mu.Unlock()
			return
		}
		q.pending--
		q.mu.Unlock()
		o.mu.Lock()
		if !o.dead.Load() {
			if _, err := o.call(cbQueueReady, nil, rootContextID, uint64(q.id), 0, p.callTimeout); err != nil {
				p.log.Warn("wasm: proxy_on_queue_ready failed", "error", err)
			}
		}
		o.mu.Unlock()
	}
}

func hostRegisterSharedQueue(ctx context.Context, mod api.Module, stack []uint64) {
	a := argsOf(ctx, mod, stack)
	name, retID := a.bytes(0), a.retU32(2)
	if a.refused() {
		return
	}
	if len(name) > maxQueueNameBytes {
		stack[0] = uint64(statusBadArgument)
		return
	}
	id, st := a.in.p.host.queues.register(a.in, string(a.in.p.vmIDBytes), string(name))
	stack[0] = uint64(thenWriteU32(st, a.mem, retID, id))
}

func hostResolveSharedQueue(ctx context.Context, mod api.Module, stack []uint64) {
	a := argsOf(ctx, mod, stack)
	vmID, name, retID := a.bytes(0), a.bytes(2), a.retU32(4)
	if a.refused() {
		return
	}
	if len(vmID) == 0 {
		vmID = a.in.p.vmIDBytes // "" is the caller's own VM
	}
	id, st := a.in.p.host.queues.resolve(string(vmID), string(name))
	stack[0] = uint64(thenWriteU32(st, a.mem, retID, id))
}

// queueOf returns the queue whose id is in stack[0], or nil after writing
// NOT_FOUND to stack[0].
func queueOf(in *instance, stack []uint64) *sharedQueue {
	q := in.p.host.queues.get(u32(stack[0]))
	if q == nil {
		stack[0] = uint64(statusNotFound)
	}
	return q
}

func hostEnqueueSharedQueue(ctx context.Context, mod api.Module, stack []uint64) {
	a := argsOf(ctx, mod, stack)
	data := a.bytes(1)
	if a.refused() {
		return
	}
	q := queueOf(a.in, stack)
	if q == nil {
		return
	}
	stack[0] = uint64(q.enqueue(data))
}

func hostDequeueSharedQueue(ctx context.Context, mod api.Module, stack []uint64) {
	a := argsOf(ctx, mod, stack)
	retPtr, retSize := a.retPair(1)
	if a.refused() {
		return
	}
	in := a.in
	q := queueOf(in, stack)
	if q == nil {
		return
	}
	item, ok := q.dequeue()
	if !ok {
		stack[0] = uint64(statusEmpty)
		return
	}
	st := in.returnBytes(ctx, mod, item, retPtr, retSize)
	if st != statusOK {
		q.putBack(item) // the guest could not take it: keep it first
	}
	stack[0] = uint64(st)
}
