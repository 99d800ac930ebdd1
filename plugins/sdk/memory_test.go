package sdk

import (
	"errors"
	"testing"
)

func TestAllocTable(t *testing.T) {
	var tab allocTable
	mark := tab.mark()
	addr, buf := tab.alloc(5)
	if addr == 0 || len(buf) != 5 {
		t.Fatalf("alloc(5) = %#x, %d bytes", addr, len(buf))
	}
	copy(buf, "hello")
	got, err := tab.take(addr, 5)
	if err != nil || string(got) != "hello" {
		t.Fatalf("take = %q, %v", got, err)
	}
	if cap(got) != 5 {
		t.Errorf("take returned cap %d, want it clipped to 5", cap(got))
	}
	if _, err := tab.take(addr, 5); !errors.Is(err, ErrInvalidMemoryAccess) {
		t.Errorf("second take of the same address: %v, want ErrInvalidMemoryAccess", err)
	}
	tab.releaseSince(mark)
	if n := tab.outstanding(); n != 0 {
		t.Errorf("%d allocations outstanding, want 0", n)
	}

	// A shorter size than allocated is fine; a longer one is refused.
	a2, _ := tab.alloc(8)
	if got, err := tab.take(a2, 3); err != nil || len(got) != 3 {
		t.Errorf("take(8-byte allocation, 3) = %d bytes, %v", len(got), err)
	}
	a3, _ := tab.alloc(2)
	if _, err := tab.take(a3, 3); !errors.Is(err, ErrInvalidMemoryAccess) {
		t.Errorf("take(2-byte allocation, 3): %v, want ErrInvalidMemoryAccess", err)
	}

	// Zero-size allocations still get a distinct non-zero address.
	z1, _ := tab.alloc(0)
	z2, _ := tab.alloc(0)
	if z1 == 0 || z1 == z2 {
		t.Errorf("alloc(0) addresses %#x and %#x, want distinct non-zero", z1, z2)
	}
	if got, err := tab.take(z1, 0); err != nil || len(got) != 0 {
		t.Errorf("take(zero allocation, 0) = %q, %v", got, err)
	}

	// (0, 0) means no data; (0, n) is a host bug.
	if got, err := tab.take(0, 0); err != nil || got == nil || len(got) != 0 {
		t.Errorf("take(0, 0) = %#v, %v; want an empty non-nil slice", got, err)
	}
	if _, err := tab.take(0, 4); !errors.Is(err, ErrInvalidMemoryAccess) {
		t.Errorf("take(0, 4): %v, want ErrInvalidMemoryAccess", err)
	}
	if _, err := tab.take(12345, 1); !errors.Is(err, ErrInvalidMemoryAccess) {
		t.Errorf("take(unknown address): %v, want ErrInvalidMemoryAccess", err)
	}

	if addr, buf := tab.alloc(maxAllocation + 1); addr != 0 || buf != nil {
		t.Errorf("alloc above the limit = %#x, %d bytes; want failure", addr, len(buf))
	}
}

func TestAllocTableReleaseSince(t *testing.T) {
	var tab allocTable
	kept, _ := tab.alloc(1) // made before the call: must survive
	mark := tab.mark()
	returned, _ := tab.alloc(4)
	tab.alloc(16) // allocated by the host but never handed back
	tab.alloc(32)
	if _, err := tab.take(returned, 4); err != nil {
		t.Fatal(err)
	}
	tab.releaseSince(mark)
	if n := tab.outstanding(); n != 1 {
		t.Fatalf("%d allocations outstanding after releaseSince, want 1", n)
	}
	if _, err := tab.take(kept, 1); err != nil {
		t.Errorf("allocation made before the mark was released: %v", err)
	}
}
