package main

import (
	"testing"
	"time"
)

func TestLoadCache(t *testing.T) {
	var c loadCache
	t0 := time.Unix(100, 0).UnixNano()
	if c.get("", t0) != nil {
		t.Fatal("empty cache hit")
	}
	s := c.put("", "llm", eps(0, 0), t0)
	s.picked("a")
	s.picked("a")
	got := c.get("", t0+int64(statsRefresh-1))
	if got == nil || got.name != "llm" || got.eps[0].load != 2 || got.eps[1].load != 0 {
		t.Fatalf("fresh snapshot: %+v", got)
	}
	if c.get("", t0+int64(statsRefresh)) != nil || c.get("", t0-int64(time.Second)) != nil {
		t.Fatal("stale snapshot served")
	}
	if c.get("other", t0) != nil {
		t.Fatal("another pool's snapshot served")
	}
	if got := c.get("", t0); got != s {
		t.Fatal("the pool's snapshot lost after asking for another")
	}
	// Each endpoint has its id, computed once per address.
	for _, e := range s.eps {
		if e.id != endpointID(e.addr) || e.id == 0 {
			t.Fatalf("endpoint %q: id %#x, want %#x", e.addr, e.id, endpointID(e.addr))
		}
	}
	// Picks outlive a new snapshot, whatever the endpoints' order, and
	// are halved at maxPicks.
	s = c.put("", "llm", []endpoint{{addr: "c"}, {addr: "b", id: 7}, {addr: "a"}}, t0+int64(statsRefresh))
	if s.eps[2].addr != "a" || s.eps[2].picks != 2 || s.eps[2].load != 0 || s.eps[0].picks != 0 {
		t.Fatalf("new snapshot: %+v", s.eps)
	}
	for _, e := range s.eps {
		if e.id != endpointID(e.addr) {
			t.Fatalf("new snapshot: endpoint %q has id %#x, want %#x", e.addr, e.id, endpointID(e.addr))
		}
	}
	for range maxPicks - 2 {
		s.picked("a")
	}
	if s.eps[2].picks != maxPicks/2 {
		t.Fatalf("picks not halved at %d: %+v", maxPicks, s.eps)
	}
	if allocs := testing.AllocsPerRun(50, func() { c.put("", "llm", []endpoint{{addr: "a"}, {addr: "b"}}, t0) }); allocs > 1 {
		t.Errorf("put allocates %v times", allocs)
	}
	for i := range maxCachedPools + 5 {
		c.put(string(rune('A'+i)), "x", nil, t0)
	}
	if len(c.pools) > maxCachedPools {
		t.Fatalf("%d snapshots kept", len(c.pools))
	}
}
