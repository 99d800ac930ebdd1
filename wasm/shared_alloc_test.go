//go:build !race

package wasm

import "testing"

// TestSharedDataSetAllocations: on a full store under a TTL and evict
// policy, overwriting an existing key allocates nothing, and writing a
// new key, which evicts the oldest entry, allocates only the key string
// (the victim's struct and value buffer are reused).
func TestSharedDataSetAllocations(t *testing.T) {
	d, _ := newClockedShared()
	keys, value, pol := fullStoreWrites()
	next := 0
	write := func() {
		if st := d.set(keys[next%len(keys)], value, 0, pol); st != statusOK {
			t.Fatalf("set: status %d", st)
		}
		next++
	}
	for range maxSharedKeys {
		write()
	}
	if got := testing.AllocsPerRun(1000, write); got != 1 {
		t.Errorf("a new key into a full store: %v allocations, want 1 (the key string)", got)
	}
	if d.evicted != 1001 {
		t.Fatalf("%d evicted, want 1001", d.evicted)
	}
	// The live keys are the last maxSharedKeys written: rewrite them in a
	// scattered order (heads, middles and tails of both lists).
	j := 0
	overwrite := func() {
		k := keys[(next-maxSharedKeys+j*7919%maxSharedKeys)%len(keys)]
		if st := d.set(k, value, 0, pol); st != statusOK {
			t.Fatalf("set: status %d", st)
		}
		j++
	}
	if got := testing.AllocsPerRun(1000, overwrite); got != 0 {
		t.Errorf("an existing key in a full store: %v allocations, want 0", got)
	}
	if d.evicted != 1001 {
		t.Fatalf("%d evicted by overwrites", d.evicted)
	}
}
