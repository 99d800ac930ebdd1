package sdk

// streamTable maps open HTTP context IDs to their stream records: an
// open-addressing hash table with linear probing and backward-shift
// deletion. It replaces a Go map because the dispatcher looks a stream up
// in every callback, and a map's generic code cost a Go guest about 2 µs
// per request in lookups, inserts and deletes (BenchmarkPluginHot8KiB).
// The zero value is an empty table. Not safe for concurrent use.
type streamTable struct {
	slots []streamSlot // len is 0 or a power of two; s == nil: empty
	n     int          // occupied slots
}

type streamSlot struct {
	id uint32
	s  *stream
}

// minStreamSlots is the table's first size; it doubles when more than
// three quarters of the slots are used.
const minStreamSlots = 16

// slot returns the home slot of id: a multiplicative (Fibonacci) hash of
// the ID, whose high bits are folded into the low ones the mask keeps.
func (t *streamTable) slot(id uint32) int {
	h := id * 2654435769
	return int((h ^ h>>16) & uint32(len(t.slots)-1))
}

// get returns the stream of id, or nil.
func (t *streamTable) get(id uint32) *stream {
	if len(t.slots) == 0 {
		return nil
	}
	mask := len(t.slots) - 1
	for i := t.slot(id); ; i = (i + 1) & mask {
		switch sl := &t.slots[i]; {
		case sl.s == nil:
			return nil
		case sl.id == id:
			return sl.s
		}
	}
}

// put sets id's stream (s non-nil), replacing any.
func (t *streamTable) put(id uint32, s *stream) {
	if (t.n+1)*4 > len(t.slots)*3 {
		t.grow()
	}
	mask := len(t.slots) - 1
	for i := t.slot(id); ; i = (i + 1) & mask {
		sl := &t.slots[i]
		if sl.s == nil {
			*sl = streamSlot{id, s}
			t.n++
			return
		}
		if sl.id == id {
			sl.s = s
			return
		}
	}
}

// del removes id and returns its stream, or nil when id is absent. The
// slots after it that probed past its slot move back, so no lookup stops
// early at the hole.
func (t *streamTable) del(id uint32) *stream {
	if len(t.slots) == 0 {
		return nil
	}
	mask := len(t.slots) - 1
	i := t.slot(id)
	for ; t.slots[i].id != id || t.slots[i].s == nil; i = (i + 1) & mask {
		if t.slots[i].s == nil {
			return nil
		}
	}
	s := t.slots[i].s
	for j := (i + 1) & mask; t.slots[j].s != nil; j = (j + 1) & mask {
		// The entry at j may fill the hole at i unless its home slot
		// lies cyclically in (i, j].
		if home := t.slot(t.slots[j].id); (j-home)&mask >= (j-i)&mask {
			t.slots[i] = t.slots[j]
			i = j
		}
	}
	t.slots[i] = streamSlot{}
	t.n--
	return s
}

// len returns the number of streams in the table.
func (t *streamTable) len() int { return t.n }

func (t *streamTable) grow() {
	old := t.slots
	t.slots = make([]streamSlot, max(minStreamSlots, 2*len(old)))
	t.n = 0
	for _, sl := range old {
		if sl.s != nil {
			t.put(sl.id, sl.s)
		}
	}
}
