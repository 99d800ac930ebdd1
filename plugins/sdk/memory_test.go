package sdk

import (
	"errors"
	"math/rand/v2"
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

// TestAllocTableModel runs random host calls against the table: each
// allocates one to four buffers, hands back one of them or none, and the
// wrapper releases the rest. Whatever the order, the buffer handed back
// is the one allocated at that address with its contents, and nothing
// stays outstanding but the allocation made before all calls.
func TestAllocTableModel(t *testing.T) {
	rnd := rand.New(rand.NewPCG(1, 2))
	var tab allocTable
	before, _ := tab.alloc(8)
	for call := range 2000 {
		mark := tab.mark()
		type made struct {
			addr uintptr
			size uint32
		}
		var ms []made
		for range 1 + rnd.IntN(4) {
			size := uint32(2 + rnd.IntN(200))
			addr, buf := tab.alloc(size)
			buf[0], buf[size-1] = byte(call), byte(size)
			ms = append(ms, made{addr, size})
		}
		if i := rnd.IntN(len(ms) + 1); i < len(ms) {
			b, err := tab.take(ms[i].addr, ms[i].size)
			if err != nil || len(b) != int(ms[i].size) || b[0] != byte(call) || b[len(b)-1] != byte(ms[i].size) {
				t.Fatalf("call %d: take %d of %d: %v, %d bytes", call, i, len(ms), err, len(b))
			}
			if _, err := tab.take(ms[i].addr, ms[i].size); err == nil {
				t.Fatalf("call %d: an allocation taken twice", call)
			}
			tab.recycle(b)
		}
		tab.releaseSince(mark)
		if n := tab.outstanding(); n != 1 {
			t.Fatalf("call %d: %d allocations outstanding, want 1", call, n)
		}
	}
	if _, err := tab.take(before, 8); err != nil {
		t.Fatalf("the allocation made before the calls: %v", err)
	}
}

func TestAllocTableRecycles(t *testing.T) {
	var tab allocTable
	addr, buf := tab.alloc(64)
	copy(buf, "secret")
	got, err := tab.take(addr, 64)
	if err != nil {
		t.Fatal(err)
	}
	tab.recycle(got)

	// The next allocation that fits reuses the buffer, zeroed.
	addr2, buf2 := tab.alloc(10)
	if addr2 != addr {
		t.Errorf("alloc after recycle got %#x, want the recycled buffer %#x", addr2, addr)
	}
	for i, c := range buf2 {
		if c != 0 {
			t.Fatalf("recycled buffer byte %d = %#x, want zeroed", i, c)
		}
	}
	if len(buf2) != 10 {
		t.Errorf("recycled buffer has %d bytes, want 10", len(buf2))
	}
	// A recycled buffer is handed out once: the next allocation is new.
	addr3, _ := tab.alloc(10)
	if addr3 == addr2 {
		t.Error("a recycled buffer was handed out twice")
	}
	// Too small a free buffer is not used.
	b4, _ := tab.take(addr3, 10)
	tab.recycle(b4)
	addr5, _ := tab.alloc(100)
	if addr5 == addr3 {
		t.Error("alloc(100) reused a 10-byte buffer")
	}

	// Allocations the host never handed back are recycled by releaseSince.
	var tab2 allocTable
	mark := tab2.mark()
	lost, _ := tab2.alloc(32)
	tab2.releaseSince(mark)
	if again, _ := tab2.alloc(32); again != lost {
		t.Errorf("releaseSince did not keep the dropped buffer for reuse")
	}

	// Large buffers and more than maxFree are left to the GC.
	var tab3 allocTable
	big, _ := tab3.alloc(maxRecycled + 1)
	bb, _ := tab3.take(big, maxRecycled+1)
	tab3.recycle(bb)
	if len(tab3.free) != 0 {
		t.Errorf("a %d-byte buffer was kept for reuse", maxRecycled+1)
	}
	for range maxFree + 2 {
		a, _ := tab3.alloc(8)
		b, _ := tab3.take(a, 8)
		defer tab3.recycle(b) // recycle all after allocating all
	}
	t.Cleanup(func() {
		if len(tab3.free) > maxFree {
			t.Errorf("%d free buffers kept, want at most %d", len(tab3.free), maxFree)
		}
	})
}

func TestDeserializeMapSharesOneCopy(t *testing.T) {
	in := [][2]string{{":path", "/a"}, {"user-agent", "x"}, {"k", ""}}
	data := SerializeMap(in)
	got, err := DeserializeMap(data)
	if err != nil {
		t.Fatal(err)
	}
	clear(data) // the result must not alias the input
	for i := range in {
		if got[i] != in[i] {
			t.Errorf("pair %d = %q, want %q", i, got[i], in[i])
		}
	}
	allocs := testing.AllocsPerRun(100, func() {
		if _, err := DeserializeMap(SerializeMap(in)); err != nil {
			t.Fatal(err)
		}
	})
	// SerializeMap: 1; DeserializeMap: the pair slice and one string.
	if allocs > 3 {
		t.Errorf("DeserializeMap of %d pairs made %v allocations with SerializeMap, want 3", len(in), allocs)
	}
}

// TestReleaseBytesBestFit: a buffer given back with ReleaseBytes serves
// the next host answer of about its size, the smallest that fits first,
// and is not spent on a much smaller answer.
func TestReleaseBytesBestFit(t *testing.T) {
	saved := mem
	t.Cleanup(func() { mem = saved })
	mem = allocTable{}
	take := func(size uint32) []byte { return hostAnswer(t, size) }
	hashes, mid := take(1032), take(100)
	ReleaseBytes(hashes)
	ReleaseBytes(mid)
	if b := take(3); &b[0] == &mid[0] || &b[0] == &hashes[0] {
		t.Error("a 3-byte answer took a released buffer over 4× its size and 64 bytes")
	}
	if b := take(30); &b[0] != &mid[0] {
		t.Error("a 30-byte answer did not take the released 100-byte buffer (the smallest that fits)")
	}
	if b := take(1032); &b[0] != &hashes[0] {
		t.Error("the next 1032-byte answer did not reuse the released buffer")
	}
}

// TestReleaseBytesKeepsTheLargest: with maxFree small buffers kept, a
// released kilobyte answer replaces the smallest (whose reallocation is
// cheap) and the next kilobyte answer reuses it; a smaller one than all
// kept is dropped.
func TestReleaseBytesKeepsTheLargest(t *testing.T) {
	saved := mem
	t.Cleanup(func() { mem = saved })
	mem = allocTable{}
	take := func(size uint32) []byte { return hostAnswer(t, size) }
	var small [maxFree][]byte
	for i := range small {
		small[i] = take(uint32(16 + i))
	}
	hashes, tiny := take(1032), take(8)
	for _, b := range small {
		ReleaseBytes(b)
	}
	ReleaseBytes(hashes)
	ReleaseBytes(tiny)
	if len(mem.free) != maxFree {
		t.Fatalf("%d free buffers, want %d", len(mem.free), maxFree)
	}
	for _, f := range mem.free {
		if &f[:1][0] == &small[0][0] || &f[:1][0] == &tiny[0] {
			t.Errorf("the smallest buffer (%d bytes) is still kept over the kilobyte one", cap(f))
		}
	}
	if b := take(1032); &b[0] != &hashes[0] {
		t.Error("the next 1032-byte answer did not reuse the released buffer")
	}
}

// hostAnswer allocates size bytes in mem as the host does for an answer
// and takes them back as a host call wrapper does.
func hostAnswer(t *testing.T, size uint32) []byte {
	t.Helper()
	addr, _ := mem.alloc(size)
	b, err := mem.take(addr, size)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestReleaseBytesTwice: a buffer given back twice, or given back with a
// slice of it, is free once, so two host answers never share memory.
func TestReleaseBytesTwice(t *testing.T) {
	saved := mem
	t.Cleanup(func() { mem = saved })
	mem = allocTable{}
	addr, _ := mem.alloc(100)
	b, _ := mem.take(addr, 100)
	ReleaseBytes(b)
	ReleaseBytes(b)
	ReleaseBytes(b[10:50])
	if len(mem.free) != 1 {
		t.Fatalf("%d free buffers after giving one back three times", len(mem.free))
	}
	a1, _ := mem.alloc(90)
	a2, _ := mem.alloc(90)
	if a1 == a2 {
		t.Fatal("two answers got the same buffer")
	}
}
