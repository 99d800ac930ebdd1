//go:build !race

package proxy

import (
	"testing"
)

func TestAllocsAcquireRelease(t *testing.T) {
	r := NewRouter(NewConfig().WithMaxConcurrentRequests(4))
	var g Guard
	if n := testing.AllocsPerRun(1000, func() {
		if err := r.acquireInto(&g); err != nil {
			t.Fatal(err)
		}
		g.Complete()
	}); n != 0 {
		t.Fatalf("acquireInto+Complete: %v allocs, want 0", n)
	}
	// The public TryAcquire allocates exactly its Guard (see its doc).
	if n := testing.AllocsPerRun(1000, func() {
		g, err := r.TryAcquire()
		if err != nil {
			t.Fatal(err)
		}
		g.Release()
	}); n > 1 {
		t.Fatalf("TryAcquire+Release: %v allocs, want <= 1", n)
	}
	// Rejection at capacity allocates nothing either.
	var held [4]Guard
	for i := range held {
		if err := r.acquireInto(&held[i]); err != nil {
			t.Fatal(err)
		}
	}
	if n := testing.AllocsPerRun(1000, func() {
		if _, err := r.TryAcquire(); err == nil {
			t.Fatal("acquired past capacity")
		}
	}); n != 0 {
		t.Fatalf("rejected TryAcquire: %v allocs", n)
	}
}

// TestAllocsProxyHotPath asserts that a proxied request without plugins
// allocates nothing in Sluice's code once the pools are warm. fasthttp's
// streamed client response allocates a few small objects per request (its
// body-stream closures), and the harness's RequestCtx.Init one; the test
// measures those in a baseline that does the same fasthttp work without
// Sluice, and requires Sluice to add nothing.
func TestAllocsProxyHotPath(t *testing.T) {
	h := newHotPath(t)
	for i := 0; i < 10; i++ {
		h.do(t)
	}
	got := testing.AllocsPerRun(500, func() { h.do(t) })

	base := h.baselineAllocs(t, nil)
	if got > base {
		t.Fatalf("proxied request: %v allocs/op, fasthttp alone %v: Sluice adds %v", got, base, got-base)
	}
	t.Logf("proxied request: %v allocs/op, all of them fasthttp's (baseline %v)", got, base)
}

func TestAllocsHeadersCopy(t *testing.T) {
	var h Headers
	k, v := []byte("Content-Type"), []byte("application/json")
	h.Add(k, v)
	h.Reset()
	if n := testing.AllocsPerRun(100, func() {
		h.Reset()
		h.Add(k, v)
		h.Set(k, v)
		h.Del(k)
	}); n != 0 {
		t.Fatalf("Headers: %v allocs/op", n)
	}
}
