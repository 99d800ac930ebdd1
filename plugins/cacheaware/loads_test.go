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
	s.picked("a")
	s.picked("a")
	got := c.get("", t0.Add(statsRefresh-1))
	if got == nil || got.name != "llm" || got.eps[0].load != 2 || got.eps[1].load != 0 {
		t.Fatalf("fresh snapshot: %+v", got)
	}
	if c.get("", t0.Add(statsRefresh)) != nil || c.get("", t0.Add(-time.Second)) != nil {
		t.Fatal("stale snapshot served")
	}
	if c.get("other", t0) != nil {
		t.Fatal("another pool's snapshot served")
	}
	for i := range maxCachedPools + 5 {
		c.put(string(rune('A'+i)), "x", nil, t0)
	}
	if len(c.pools) > maxCachedPools {
		t.Fatalf("%d snapshots kept", len(c.pools))
	}
}
