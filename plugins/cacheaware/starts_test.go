package main

import (
	"encoding/binary"
	"testing"
)

// startsSeen loads the starts of e1, e2 and e3 in pool p through x at
// now.
func startsSeen(x *index, now int64) [3]uint32 {
	eps := []endpoint{{addr: "e1"}, {addr: "e2"}, {addr: "e3"}}
	x.loadStarts("p", eps, now)
	return [3]uint32{eps[0].starts, eps[1].starts, eps[2].starts}
}

// TestIndexStarts: the count of prefixes started per endpoint is shared
// by indexes over one store (the plugin's instances), kept per pool:
// each index sees its own starts at once and the others' after a
// refresh, when it writes its own with compare and swap (counting an
// increment another index wrote in between); the list expires with the
// store's TTL.
func TestIndexStarts(t *testing.T) {
	const r = int64(startsRefresh)
	kv := newMapStore(1<<20, 100*r)
	a, b := newIndex(kv), newIndex(kv)
	startsSeen(a, 0)
	startsSeen(b, 0)
	a.addStart("p", endpointID("e1"), 0)
	b.addStart("p", endpointID("e1"), 0)
	a.addStart("p", endpointID("e2"), 0)
	b.addStart("q", endpointID("e1"), 0) // another pool: p's starts written first
	if got := startsSeen(a, 1); got != [3]uint32{1, 1, 0} {
		t.Fatalf("a's own starts before a refresh: %v, want 1 1 0", got)
	}
	if got := startsSeen(a, r); got != [3]uint32{2, 1, 0} {
		t.Fatalf("after a refresh: %v, want 2 1 0 (b's start on e1 counted, q's not)", got)
	}
	// Between the refresh's read and its write another index writes: the
	// swap fails, and the retry counts both.
	c := newIndex(&racingStore{mapStore: kv, other: b})
	startsSeen(c, r)
	c.addStart("p", endpointID("e2"), r)
	startsSeen(c, 2*r)
	if got := startsSeen(a, 2*r); got != [3]uint32{2, 3, 0} {
		t.Fatalf("after a raced write: %v, want 2 3 0 (1 + the other's + ours on e2)", got)
	}
	// Within a refresh period a new prompt's starts cost no host call;
	// at the refresh, one read and one write. Each list read is given
	// back (mapStore.release poisons it: a later use would read garbage).
	kv.reads, kv.writes, kv.releases = 0, 0, 0
	for i := range int64(10) {
		startsSeen(a, 2*r+i)
		a.addStart("p", endpointID("e3"), 2*r+i)
	}
	if kv.reads != 0 || kv.writes != 0 {
		t.Fatalf("10 starts within a refresh period: %d reads, %d writes, want none", kv.reads, kv.writes)
	}
	if got := startsSeen(a, 3*r); got != [3]uint32{2, 3, 10} || kv.reads != 1 || kv.writes != 1 || kv.releases != 1 {
		t.Fatalf("refresh: %v, %d reads, %d writes, %d given back; want 2 3 10, 1, 1, 1", got, kv.reads, kv.writes, kv.releases)
	}
	kv.now += 100 * r // past the TTL
	if got := startsSeen(a, 4*r); got != [3]uint32{} {
		t.Fatalf("expired counts read as %v", got)
	}
	// A clock that goes back refreshes too.
	a.addStart("p", endpointID("e1"), 4*r)
	if got := startsSeen(b, 4*r); got != [3]uint32{} {
		t.Fatalf("b before a's write: %v", got)
	}
	startsSeen(a, 0)
	if got := startsSeen(b, 0); got != [3]uint32{1, 0, 0} {
		t.Fatalf("after a's refresh with its clock back: %v, want 1 0 0", got)
	}
}

// TestFlushStarts: an instance's pending starts reach the shared list at
// a tick, without a request.
func TestFlushStarts(t *testing.T) {
	kv := newMapStore(1<<20, 0)
	a, b := newIndex(kv), newIndex(kv)
	startsSeen(a, 0)
	a.addStart("p", endpointID("e2"), 0)
	a.flushStarts()
	if got := startsSeen(b, 0); got != [3]uint32{0, 1, 0} {
		t.Fatalf("after a's flush: %v, want 0 1 0", got)
	}
	kv.writes = 0
	a.flushStarts()
	if kv.writes != 0 {
		t.Fatal("a flush with nothing pending wrote")
	}
}

// racingStore lets another index write a start on e2 once, between the
// first getCAS and its setCAS.
type racingStore struct {
	*mapStore
	other *index
	raced bool
}

func (s *racingStore) setCAS(key []byte, value string, cas uint32) bool {
	if !s.raced {
		s.raced = true
		k := append([]byte(nil), key...)
		s.other.addStart("p", endpointID("e2"), 0)
		s.other.flushStarts()
		key = k
	}
	return s.mapStore.setCAS(key, value, cas)
}

// TestStartsListBounded: the starts list keeps at most
// maxStartsEndpoints endpoints; a new one replaces the one with the
// fewest starts, and a torn tail is dropped.
func TestStartsListBounded(t *testing.T) {
	var list []byte
	for h := range uint64(maxStartsEndpoints) {
		for range h%3 + 1 {
			list = withStart(nil, list, h)
		}
	}
	if len(list) != maxStartsEndpoints*startsEntry || startsOf(list, 5) != 3 || startsOf(list, 0) != 1 {
		t.Fatalf("list of %d bytes, starts(5) = %d", len(list), startsOf(list, 5))
	}
	list = withStart(nil, list, 1<<40)
	if len(list) != maxStartsEndpoints*startsEntry || startsOf(list, 1<<40) != 1 || startsOf(list, 0) != 0 || startsOf(list, 3) != 1 {
		t.Fatalf("a new endpoint in a full list: %d bytes, new %d, replaced %d, kept %d",
			len(list), startsOf(list, 1<<40), startsOf(list, 0), startsOf(list, 3))
	}
	if got := withStart(nil, list[:20], 9); len(got) != 2*startsEntry || startsOf(got, 9) != 1 || startsOf(got, 0) != 0 {
		t.Fatalf("torn list: %d bytes", len(got))
	}
	// A count reaching maxStarts halves them all: no wrap, the order kept.
	big := binary.LittleEndian.AppendUint32(binary.LittleEndian.AppendUint64(nil, 1), maxStarts-1)
	big = binary.LittleEndian.AppendUint32(binary.LittleEndian.AppendUint64(big, 2), 1000)
	got := withStart(nil, big, 1)
	if startsOf(got, 1) != maxStarts/2 || startsOf(got, 2) != 500 {
		t.Fatalf("after reaching maxStarts: %d and %d, want %d and 500", startsOf(got, 1), startsOf(got, 2), maxStarts/2)
	}
}
