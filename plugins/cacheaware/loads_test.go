package main

import (
	"testing"
	"time"
)

func TestLoadCache(t *testing.T) {
	var c loadCache
	t0 := time.Unix(100, 0)
	if c.get("", t0) != nil {
		t.Fatal("empty cache hit")
	}
	s := c.put("", "llm", eps(0, 0), t0)
	turn := s.turn
	s.picked("a", true)
	s.picked("a", false)
	got := c.get("", t0.Add(statsRefresh-1))
	if got == nil || got.name != "llm" || got.eps[0].load != 2 || got.eps[1].load != 0 || got.turn != turn+1 {
		t.Fatalf("fresh snapshot: %+v", got)
	}
	if c.get("", t0.Add(statsRefresh)) != nil || c.get("", t0.Add(-time.Second)) != nil {
		t.Fatal("stale snapshot served")
	}
	if c.get("other", t0) != nil {
		t.Fatal("another pool's snapshot served")
	}
	// The rotating offset outlives a new snapshot; the picks' load does not.
	s = c.put("", "llm", []endpoint{{addr: "c"}, {addr: "b"}, {addr: "a"}}, t0.Add(statsRefresh))
	if s.eps[2].addr != "a" || s.eps[2].load != 0 || s.turn != turn+1 {
		t.Fatalf("new snapshot: %+v", s)
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
