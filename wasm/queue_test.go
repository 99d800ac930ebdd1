package wasm

import (
	"strconv"
	"testing"
)

func TestQueueRegistry(t *testing.T) {
	var r queueRegistry
	r.init()
	a, b := &instance{}, &instance{}
	id, st := r.register(a, "vm", "q")
	if st != statusOK || id != 1 {
		t.Fatalf("register: %d %d", id, st)
	}
	if id2, _ := r.register(b, "vm", "q"); id2 != id {
		t.Fatalf("second registration opened queue %d, want %d", id2, id)
	}
	if other, _ := r.register(a, "vm2", "q"); other == id {
		t.Fatal("the same name in another vm_id is the same queue")
	}
	q := r.get(id)
	q.mu.Lock()
	if q.owner() != b {
		t.Error("the most recent registrant does not own the queue")
	}
	b.dead.Store(true)
	if q.owner() != a {
		t.Error("a dead registrant still owns the queue")
	}
	q.mu.Unlock()
	if got, st := r.resolve("vm", "q"); got != id || st != statusOK {
		t.Errorf("resolve: %d %d", got, st)
	}
	if _, st := r.resolve("vm", "nope"); st != statusNotFound {
		t.Errorf("resolve unknown: %d", st)
	}
	for _, bad := range []uint32{0, 3, 1 << 31} {
		if r.get(bad) != nil {
			t.Errorf("get(%d) found a queue", bad)
		}
	}
}

func TestQueueItems(t *testing.T) {
	q := &sharedQueue{id: 1} // no registrant: nobody is notified
	for i := range 3 {
		if st := q.enqueue([]byte(strconv.Itoa(i))); st != statusOK {
			t.Fatal(st)
		}
	}
	first, _ := q.dequeue()
	q.putBack(first)
	for i := range 3 {
		item, ok := q.dequeue()
		if !ok || string(item) != strconv.Itoa(i) {
			t.Fatalf("item %d = %q %v", i, item, ok)
		}
	}
	if _, ok := q.dequeue(); ok || q.bytes != 0 || q.pending != 0 {
		t.Fatalf("empty queue: ok %v, bytes %d, pending %d", ok, q.bytes, q.pending)
	}
	for range maxQueueItems {
		q.enqueue(nil)
	}
	if st := q.enqueue(nil); st != statusInternalFailure {
		t.Errorf("enqueue on a full queue: %d", st)
	}
	big := &sharedQueue{id: 2}
	if st := big.enqueue(make([]byte, maxQueueBytes+1)); st != statusInternalFailure {
		t.Errorf("enqueue over the byte cap: %d", st)
	}
}
