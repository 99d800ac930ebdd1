package wasm

import (
	"math"
	"math/rand/v2"
	"strconv"
	"testing"
	"time"
)

// checkShared checks that every structure of d agrees with its map: the
// caps and the byte count, the eviction list, the TTL classes (each
// non-empty, indexed by its TTL, at its heap index and in heap order, its
// entries linked both ways, with deadlines in write order when the clock
// was monotonic) and the spare entry and class (unlinked, empty). It
// returns the number of evictable entries. d.mu is held, or d is not
// shared.
func checkShared(t *testing.T, d *sharedData, monotonic bool) int {
	t.Helper()
	if len(d.m) > maxSharedKeys || d.bytes > maxSharedBytes {
		t.Fatalf("caps broken: %d keys, %d bytes", len(d.m), d.bytes)
	}
	bytes, evictable, timed := 0, 0, 0
	for k, v := range d.m {
		bytes += len(k) + len(v.value)
		if v.key != k || (v.class != nil) != (v.deadline != 0) {
			t.Fatalf("entry %q: key %q, class %p, deadline %d", k, v.key, v.class, v.deadline)
		}
		if v.evictable {
			evictable++
		}
		if v.class != nil {
			timed++
		}
	}
	if bytes != d.bytes {
		t.Fatalf("bytes %d, counted %d", bytes, d.bytes)
	}
	if n := walkFIFO(t, d, d.evictOrder, evictList, func(v *sharedValue) bool { return v.evictable }); n != evictable {
		t.Fatalf("eviction list holds %d, %d evictable", n, evictable)
	}
	if len(d.byTTL) != len(d.classes) {
		t.Fatalf("%d classes indexed, %d in the heap", len(d.byTTL), len(d.classes))
	}
	inClasses := 0
	for i, c := range d.classes {
		if c.idx != i || d.byTTL[c.ttl] != c || c.list.head == nil {
			t.Fatalf("class %v at %d: idx %d, indexed %p, head %p", c.ttl, i, c.idx, d.byTTL[c.ttl], c.list.head)
		}
		if i > 0 && d.classes.Less(i, (i-1)/2) {
			t.Fatalf("class %v at %d comes before its parent", c.ttl, i)
		}
		last := int64(0)
		inClasses += walkFIFO(t, d, c.list, ttlList, func(v *sharedValue) bool {
			ok := v.class == c && (!monotonic || v.deadline >= last)
			last = v.deadline
			return ok
		})
	}
	if inClasses != timed {
		t.Fatalf("classes hold %d entries, %d have a deadline", inClasses, timed)
	}
	if s := d.spare; s != nil && (s.key != "" || s.class != nil || s.evictable || s.links != [2]listLinks{}) {
		t.Fatalf("spare entry still linked: %+v", s)
	}
	if c := d.spareClass; c != nil && (c.idx != -1 || c.list != (fifo{}) || d.byTTL[c.ttl] == c) {
		t.Fatalf("spare class still in use: %+v", c)
	}
	return evictable
}

// walkFIFO walks l (list kind k) from its head and checks the links both
// ways, that every entry is in the map, and ok for each; it returns the
// length.
func walkFIFO(t *testing.T, d *sharedData, l fifo, k int, ok func(*sharedValue) bool) int {
	t.Helper()
	n := 0
	var prev *sharedValue
	for v := l.head; v != nil; v = v.links[k].next {
		if n++; n > len(d.m) || v.links[k].prev != prev || d.m[v.key] != v || !ok(v) {
			t.Fatalf("list %d: entry %d %q is wrong (prev %p, want %p)", k, n, v.key, v.links[k].prev, prev)
		}
		prev = v
	}
	if l.tail != prev {
		t.Fatalf("list %d: tail %p, walk ended at %p", k, l.tail, prev)
	}
	return n
}

// TestSharedDataTTLModel writes, rewrites (under another TTL, or none)
// and deletes keys under six TTLs at random times, and checks after every
// step that exactly the keys whose deadline has not passed are readable,
// that the expiry count matches, and the structures.
func TestSharedDataTTLModel(t *testing.T) {
	d, c := newClockedShared()
	rng := rand.New(rand.NewPCG(6, 17))
	ttls := []time.Duration{0, time.Second, 2 * time.Second, 3 * time.Second, 5 * time.Second, 750 * time.Millisecond}
	model := map[string]int64{} // key -> deadline, 0: none
	var expired uint64
	for step := range 3000 {
		key := "k" + strconv.Itoa(rng.IntN(48))
		switch op := rng.IntN(10); {
		case op < 3:
			c.advance(time.Duration(rng.IntN(400)) * time.Millisecond)
		case op < 9:
			ttl := ttls[rng.IntN(len(ttls))]
			mustSet(t, d, key, "v", 0, sharedPolicy{ttl: ttl})
			model[key] = 0
			if ttl > 0 {
				model[key] = c.ns + int64(ttl)
			}
		default:
			want := statusNotFound
			if _, ok := model[key]; ok {
				want = statusOK
			}
			if st := d.del([]byte(key), 0); st != want {
				t.Fatalf("step %d: delete %q: status %d, want %d", step, key, st, want)
			}
			delete(model, key)
		}
		for k, dl := range model {
			if dl != 0 && dl <= c.ns {
				delete(model, k)
				expired++
			}
		}
		for i := range 48 {
			k := "k" + strconv.Itoa(i)
			_, _, ok := d.get(nil, []byte(k))
			if _, want := model[k]; ok != want {
				t.Fatalf("step %d at %v: %q present %v, want %v (deadline %v)", step, time.Duration(c.ns), k, ok, want, time.Duration(model[k]))
			}
		}
		checkShared(t, d, true)
		if d.expired != expired {
			t.Fatalf("step %d: %d expired, model %d", step, d.expired, expired)
		}
	}
	if expired < 100 || len(d.byTTL) > len(ttls)-1 {
		t.Fatalf("%d expired, %d classes: the model did not exercise expiry", expired, len(d.byTTL))
	}
}

// TestSharedDataTTLClassesInterleaved: entries of three TTL classes
// written at interleaved times expire one by one in deadline order
// across the classes.
func TestSharedDataTTLClassesInterleaved(t *testing.T) {
	d, c := newClockedShared()
	writes := []struct {
		at  time.Duration // since the start
		key string
		ttl time.Duration
	}{
		{0, "a", 3 * time.Second},                      // deadline 3s
		{0, "b", time.Second},                          // 1s
		{300 * time.Millisecond, "c", 2 * time.Second}, // 2.3s
		{600 * time.Millisecond, "d", time.Second},     // 1.6s
		{800 * time.Millisecond, "e", 3 * time.Second}, // 3.8s
		{900 * time.Millisecond, "f", 2 * time.Second}, // 2.9s
	}
	start := c.ns
	for _, w := range writes {
		c.ns = start + int64(w.at)
		mustSet(t, d, w.key, "v", 0, sharedPolicy{ttl: w.ttl})
	}
	checkShared(t, d, true)
	for i, exp := range []struct {
		at  time.Duration
		key string
	}{{time.Second, "b"}, {1600 * time.Millisecond, "d"}, {2300 * time.Millisecond, "c"}, {2900 * time.Millisecond, "f"}, {3 * time.Second, "a"}, {3800 * time.Millisecond, "e"}} {
		c.ns = start + int64(exp.at) - 1
		if n := d.len(); n != len(writes)-i {
			t.Fatalf("just before %v: %d keys, want %d", exp.at, n, len(writes)-i)
		}
		mustGet(t, d, exp.key)
		c.ns++
		mustMiss(t, d, exp.key)
		if d.expired != uint64(i+1) {
			t.Fatalf("at %v: %d expired, want %d", exp.at, d.expired, i+1)
		}
		checkShared(t, d, true)
	}
	if len(d.classes) != 0 || len(d.byTTL) != 0 {
		t.Fatalf("%d classes left", len(d.classes))
	}
}

// TestSharedDataTTLClassMoves: a rewrite under another TTL moves the
// entry to that class (the old one, emptied, goes), a rewrite without a
// TTL takes it out of all of them, and a TTL again puts it back.
func TestSharedDataTTLClassMoves(t *testing.T) {
	d, c := newClockedShared()
	sec := sharedPolicy{ttl: time.Second}
	mustSet(t, d, "k", "v", 0, sec)
	mustSet(t, d, "other", "v", 0, sec)
	mustSet(t, d, "k", "v", 0, sharedPolicy{ttl: 5 * time.Second})
	if len(d.classes) != 2 || d.byTTL[time.Second].list.head.key != "other" {
		t.Fatalf("after the move: %d classes", len(d.classes))
	}
	checkShared(t, d, true)
	c.advance(time.Second)
	mustMiss(t, d, "other")
	mustGet(t, d, "k")
	if len(d.classes) != 1 || d.byTTL[time.Second] != nil {
		t.Fatalf("the emptied 1s class stayed: %d classes", len(d.classes))
	}
	mustSet(t, d, "k", "v", 0, sharedPolicy{})
	if len(d.classes) != 0 || d.m["k"].class != nil {
		t.Fatalf("a write without a TTL left the entry in a class")
	}
	checkShared(t, d, true)
	c.advance(time.Hour)
	mustGet(t, d, "k")
	mustSet(t, d, "k", "v", 0, sec)
	c.advance(time.Second - 1)
	mustGet(t, d, "k")
	c.advance(1)
	mustMiss(t, d, "k")
	checkShared(t, d, true)
}

// TestSharedDataTTLClassRefill: a class emptied by a delete or an expiry
// leaves the heap and the index, its struct is reused for the next new
// class, and a class refilled after it emptied expires its new entries
// on time.
func TestSharedDataTTLClassRefill(t *testing.T) {
	d, c := newClockedShared()
	mustSet(t, d, "a", "v", 0, sharedPolicy{ttl: time.Second})
	first := d.byTTL[time.Second]
	if st := d.del([]byte("a"), 0); st != statusOK {
		t.Fatalf("delete: status %d", st)
	}
	if len(d.classes) != 0 || len(d.byTTL) != 0 || d.spareClass != first {
		t.Fatalf("emptied class: %d in the heap, %d indexed, spare %p (want %p)", len(d.classes), len(d.byTTL), d.spareClass, first)
	}
	mustSet(t, d, "b", "v", 0, sharedPolicy{ttl: 2 * time.Second})
	if d.byTTL[2*time.Second] != first || d.spareClass != nil {
		t.Fatal("the spare class was not reused")
	}
	for range 3 { // the 1s class refilled three times over, once expired
		mustSet(t, d, "a", "v", 0, sharedPolicy{ttl: time.Second})
		checkShared(t, d, true)
		c.advance(time.Second - 1)
		mustGet(t, d, "a")
		c.advance(1)
		mustMiss(t, d, "a")
		checkShared(t, d, true)
		if d.byTTL[time.Second] != nil {
			t.Fatal("the expired class stayed indexed")
		}
	}
	mustMiss(t, d, "b")
	if d.expired != 4 || len(d.classes) != 0 {
		t.Fatalf("%d expired, %d classes", d.expired, len(d.classes))
	}
}

// TestSharedDataEvictAndExpireSameEntry: an entry that is both the
// oldest evictable and the head of its TTL class is removed once, by
// whichever comes first: evicted, it does not expire later; due, it
// expires before a full store's write would evict anything.
func TestSharedDataEvictAndExpireSameEntry(t *testing.T) {
	d, c := newClockedShared()
	pol := sharedPolicy{ttl: time.Second, evict: true}
	for i := range maxSharedKeys / 2 {
		mustSet(t, d, "a"+strconv.Itoa(i), "v", 0, pol)
	}
	c.advance(500 * time.Millisecond)
	for i := range maxSharedKeys / 2 {
		mustSet(t, d, "b"+strconv.Itoa(i), "v", 0, pol)
	}
	mustSet(t, d, "new", "v", 0, pol) // full: a0 goes, evicted
	mustMiss(t, d, "a0")
	if d.evicted != 1 || d.expired != 0 || d.byTTL[time.Second].list.head.key != "a1" {
		t.Fatalf("evicted %d, expired %d", d.evicted, d.expired)
	}
	checkShared(t, d, true)
	c.advance(500 * time.Millisecond) // a1… are due; a0 is gone already
	mustSet(t, d, "after", "v", 0, pol)
	if d.evicted != 1 || d.expired != maxSharedKeys/2-1 || d.len() != maxSharedKeys/2+2 {
		t.Fatalf("evicted %d, expired %d, len %d", d.evicted, d.expired, d.len())
	}
	checkShared(t, d, true)
	c.advance(time.Second)
	if d.len() != 0 || d.expired != maxSharedKeys+1 || d.bytes != 0 || d.evictOrder != (fifo{}) {
		t.Fatalf("len %d, expired %d, bytes %d", d.len(), d.expired, d.bytes)
	}
}

// TestSharedDataClockBackwards: with a clock that steps back, an entry
// written after the step waits behind the older entries of its class:
// its expiry is delayed, never early; another class is unaffected.
func TestSharedDataClockBackwards(t *testing.T) {
	d, c := newClockedShared()
	sec := sharedPolicy{ttl: time.Second}
	c.ns = int64(10 * time.Second)
	mustSet(t, d, "before", "v", 0, sec) // deadline 11s
	c.ns = int64(5 * time.Second)        // the clock steps back
	mustSet(t, d, "after", "v", 0, sec)  // deadline 6s, behind "before"
	mustSet(t, d, "other", "v", 0, sharedPolicy{ttl: 2 * time.Second})
	checkShared(t, d, false)
	c.ns = int64(6*time.Second) - 1
	mustGet(t, d, "after") // not early
	c.ns = int64(7 * time.Second)
	mustMiss(t, d, "other")
	mustGet(t, d, "after") // delayed: "before" is not due
	mustGet(t, d, "before")
	c.ns = int64(11 * time.Second)
	mustMiss(t, d, "before")
	mustMiss(t, d, "after")
	checkShared(t, d, true)
}

// TestSharedDataTTLOverflow: a deadline beyond int64 is one never
// reached, in a class of its own that keeps FIFO order, beside a class
// that expires.
func TestSharedDataTTLOverflow(t *testing.T) {
	d, c := newClockedShared()
	c.ns = math.MaxInt64 - int64(time.Minute)
	long := sharedPolicy{ttl: time.Hour}
	mustSet(t, d, "x", "v", 0, long)
	mustSet(t, d, "y", "v", 0, long)
	mustSet(t, d, "short", "v", 0, sharedPolicy{ttl: time.Second})
	if v := d.m["x"]; v.deadline != math.MaxInt64 {
		t.Fatalf("deadline %d", v.deadline)
	}
	c.advance(time.Second)
	mustMiss(t, d, "short")
	c.advance(time.Minute - time.Second - 1)
	mustGet(t, d, "x")
	mustSet(t, d, "x", "w", 0, long) // to the tail, same deadline
	mustGet(t, d, "y")
	checkShared(t, d, true)
}
