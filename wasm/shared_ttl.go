package wasm

import (
	"container/heap"
	"math"
	"time"
)

// Expiry in O(1). A write under a policy with TTL t gives its entry the
// deadline now+t, and the store's clock does not go backwards, so the
// entries written under one TTL reach their deadlines in write order.
// Each distinct TTL among the live entries therefore has a ttlClass: a
// FIFO of its entries, oldest write (soonest deadline) at the head; a
// rewrite moves the entry to its class's tail, a write under another TTL
// to that class, a write without one out of all of them. The non-empty
// classes sit in a min-heap by their head's deadline, so the store's
// soonest deadline is classes[0].head's: expire costs O(1) when nothing
// is due, and a change of a class's head (an expiry, eviction or delete
// of the head, a rewrite of it) costs O(log classes). Classes are few
// (one per distinct TTL among the writers' policies: the operators'
// prefixes and at most maxGuestSharedRules rules per plugin; more only
// while a guest keeps changing its rules), and a class that empties
// leaves the heap and the index at once, so they never outnumber the
// entries with a deadline. See wasm/RATIONALE.md, "Expiry in O(1)".
//
// With a clock that steps backwards (only a test clock can), an entry
// written after the step may have an earlier deadline than those ahead
// of it in its class: it then expires with them, later than its
// deadline, never earlier.

// ttlClass is the FIFO of the entries with one TTL. It is never empty
// while it is in the heap.
type ttlClass struct {
	ttl  time.Duration
	list fifo // through links[ttlList]
	idx  int  // index in sharedData.classes; -1: not in it
}

// expire drops the entries whose deadline is at or before now. Each entry
// is dropped once, so the cost is amortised over the writes that gave
// them deadlines.
func (d *sharedData) expire(now int64) {
	n := 0
	for len(d.classes) > 0 && d.classes[0].list.head.deadline <= now {
		d.remove(d.classes[0].list.head)
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

// setDeadline gives v the deadline of a write at now under pol: at the
// tail of its TTL's class, or in no class when pol has no TTL. d.mu is
// held.
func (d *sharedData) setDeadline(v *sharedValue, pol sharedPolicy, now int64) {
	if pol.ttl <= 0 {
		d.dequeue(v)
		return
	}
	deadline := now + int64(pol.ttl)
	if deadline <= now { // overflow: a deadline never reached
		deadline = math.MaxInt64
	}
	if c := v.class; c != nil && c.ttl == pol.ttl {
		// A rewrite within its class: to the tail. The class's head
		// changes if v was it (to v's successor, or to v itself with its
		// new deadline when it is alone).
		moved := v == c.list.head
		if v != c.list.tail {
			c.list.cut(v, ttlList)
			c.list.push(v, ttlList)
		}
		v.deadline = deadline
		if moved {
			heap.Fix(&d.classes, c.idx)
		}
		return
	}
	d.dequeue(v)
	c := d.classOf(pol.ttl)
	v.deadline, v.class = deadline, c
	c.list.push(v, ttlList)
	if c.idx < 0 {
		heap.Push(&d.classes, c)
	}
}

// dequeue takes v out of its class, if it has one. An emptied class
// leaves the heap and the index and becomes the spare class. d.mu is
// held.
func (d *sharedData) dequeue(v *sharedValue) {
	c := v.class
	if c == nil {
		return
	}
	wasHead := v == c.list.head
	c.list.cut(v, ttlList)
	v.class, v.deadline = nil, 0
	switch {
	case c.list.head == nil:
		heap.Remove(&d.classes, c.idx)
		delete(d.byTTL, c.ttl)
		d.spareClass = c
	case wasHead:
		heap.Fix(&d.classes, c.idx)
	}
}

// classOf returns the class of ttl: the existing one, else an empty one
// (idx -1; the caller pushes it on the heap with its first entry), made
// of the spare class when there is one.
func (d *sharedData) classOf(ttl time.Duration) *ttlClass {
	if c := d.byTTL[ttl]; c != nil {
		return c
	}
	c := d.spareClass
	if c != nil {
		d.spareClass = nil
	} else {
		c = new(ttlClass)
	}
	*c = ttlClass{ttl: ttl, idx: -1}
	d.byTTL[ttl] = c
	return c
}

// classHeap is a min-heap of non-empty classes by their head's deadline
// (container/heap).
type classHeap []*ttlClass

func (h classHeap) Len() int { return len(h) }
func (h classHeap) Less(i, j int) bool {
	return h[i].list.head.deadline < h[j].list.head.deadline
}
func (h classHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].idx, h[j].idx = i, j
}
func (h *classHeap) Push(x any) {
	c := x.(*ttlClass)
	c.idx = len(*h)
	*h = append(*h, c)
}
func (h *classHeap) Pop() any {
	old := *h
	c := old[len(old)-1]
	old[len(old)-1] = nil
	c.idx = -1
	*h = old[:len(old)-1]
	return c
}
