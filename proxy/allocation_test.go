//go:build !race

package proxy

import "testing"

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
