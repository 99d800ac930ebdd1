package main

import (
	"encoding/binary"
	"unsafe"
)

// The starts list of a pool counts the prefixes started on each endpoint
// (fewestStarts sends a request that starts a prefix where the fewest
// live), shared by the plugin's instances in one key per pool. Each
// instance reads it at most every startsRefresh and adds the starts it
// made since with one compare-and-swap write; in between it counts its
// own starts on top of the list it read. A new prompt that read and
// wrote the list itself cost a Go guest ~6 µs, a quarter of its CPU
// (BenchmarkPluginHot8KiB/cacheaware-misses); a per-endpoint key, ~17 µs.
// Another instance's starts are seen up to startsRefresh late, as its
// picks are in the loads (statsRefresh).

// startsRefresh is how long an instance uses the starts list it read:
// the loads' refresh period.
const startsRefresh = statsRefresh

// startsCache is an instance's view of one pool's starts list. Not safe
// for concurrent use (one per index).
type startsCache struct {
	pool    string
	list    []byte // the shared list as last read or written
	at      int64  // when, Unix nanoseconds
	pending []byte // this instance's starts not written yet, in the list's format
	scratch []byte
}

// startsKey is the key of the pool's starts list. The list holds, per
// endpoint, the 8 bytes of its id (endpointID) then a u32 count, all
// little-endian; at most maxStartsEndpoints of them.
func (x *index) startsKey(pool string) []byte { return x.keyFor(pool, 'n', 0) }

// startsEntry is the size of one endpoint's entry in the starts list.
const startsEntry = 12

// maxStartsEndpoints bounds the starts list: an endpoint new to a full
// list replaces the one with the fewest starts.
const maxStartsEndpoints = 256

// loadStarts sets each endpoint's starts to the pool's shared count of
// prefixes started on it (0 when none was recorded or the list expired)
// plus this instance's starts not written yet, reading the list again
// (and writing those starts) when it is startsRefresh old at now (Unix
// nanoseconds) or of another pool.
func (x *index) loadStarts(pool string, eps []endpoint, now int64) {
	c := &x.starts
	if c.pool != pool || now-c.at >= int64(startsRefresh) || now < c.at {
		x.syncStarts(pool, now)
	}
	for i := range eps {
		id := eps[i].key()
		eps[i].starts = startsOf(c.list, id) + startsOf(c.pending, id)
	}
}

// addStart counts one start for the endpoint whose id is h (endpointID)
// in pool; it is written to the shared list at the next refresh.
func (x *index) addStart(pool string, h uint64, now int64) {
	c := &x.starts
	if c.pool != pool {
		x.syncStarts(pool, now)
	}
	c.scratch = withStart(c.scratch[:0], c.pending, h)
	c.pending, c.scratch = c.scratch, c.pending
}

// flushStarts writes this instance's pending starts into the shared
// list (at a tick: an instance that gets no request still shares its
// starts within metricsFlushPeriod).
func (x *index) flushStarts() {
	if c := &x.starts; len(c.pending) > 0 {
		x.mergeStarts(c.pool)
	}
}

// maxStartsTries bounds the compare-and-swap attempts of a refresh:
// starts not written stay pending for the next.
const maxStartsTries = 3

// syncStarts writes this instance's pending starts into the pool's
// shared list (those of another pool it held go to that pool's list
// first, or are dropped: a lost start only blurs the balance), and
// keeps the list as read or written, at now.
func (x *index) syncStarts(pool string, now int64) {
	c := &x.starts
	if c.pool != pool {
		if len(c.pending) > 0 {
			x.mergeStarts(c.pool)
			c.pending = c.pending[:0]
		}
		c.pool = pool
	}
	x.mergeStarts(pool)
	c.at = now
}

// mergeStarts reads the pool's shared list and, when starts are pending,
// writes it back with them added, with compare-and-swap against the list
// read (up to maxStartsTries reads). The list expires block_ttl after its
// last write.
func (x *index) mergeStarts(pool string) {
	c := &x.starts
	for range maxStartsTries {
		v, cas, _ := x.kv.getCAS(x.startsKey(pool))
		if len(c.pending) == 0 {
			c.list = append(c.list[:0], v...)
			x.kv.release(v)
			return
		}
		c.scratch = append(c.scratch[:0], v[:len(v)/startsEntry*startsEntry]...)
		x.kv.release(v)
		for e := c.pending; len(e) >= startsEntry; e = e[startsEntry:] {
			c.scratch = addStarts(c.scratch, binary.LittleEndian.Uint64(e), binary.LittleEndian.Uint32(e[8:]))
		}
		if x.kv.setCAS(x.startsKey(pool), unsafe.String(unsafe.SliceData(c.scratch), len(c.scratch)), cas) {
			c.list, c.scratch = c.scratch, c.list
			c.pending = c.pending[:0]
			return
		}
	}
}

// startsOf returns the count of the endpoint whose hash is h in list.
func startsOf(list []byte, h uint64) uint32 {
	for ; len(list) >= startsEntry; list = list[startsEntry:] {
		if binary.LittleEndian.Uint64(list) == h {
			return binary.LittleEndian.Uint32(list[8:])
		}
	}
	return 0
}

// maxStarts bounds a count in the starts list: when one reaches it,
// every count is halved, so the counts never wrap and their differences
// follow the recent starts (the list lives as long as prefixes start:
// each write restarts its TTL).
const maxStarts = 1 << 20

// withStart appends to dst the list with one more start for the endpoint
// whose hash is h (a torn tail, not a whole entry, is dropped).
func withStart(dst, list []byte, h uint64) []byte {
	return addStarts(append(dst, list[:len(list)/startsEntry*startsEntry]...), h, 1)
}

// addStarts adds n starts for the endpoint whose hash is h to list (whole
// entries only) in place, or appends its entry, or, in a full list,
// replaces the entry with the fewest starts; it returns the list.
func addStarts(list []byte, h uint64, n uint32) []byte {
	for e := list; len(e) >= startsEntry; e = e[startsEntry:] {
		if binary.LittleEndian.Uint64(e) == h {
			n += binary.LittleEndian.Uint32(e[8:])
			binary.LittleEndian.PutUint32(e[8:], min(n, maxStarts))
			if n >= maxStarts {
				for i := 8; i < len(list); i += startsEntry {
					binary.LittleEndian.PutUint32(list[i:], binary.LittleEndian.Uint32(list[i:])/2)
				}
			}
			return list
		}
	}
	n = min(n, maxStarts)
	if len(list) < maxStartsEndpoints*startsEntry {
		list = binary.LittleEndian.AppendUint64(list, h)
		return binary.LittleEndian.AppendUint32(list, n)
	}
	fewest := 0
	for i := 0; i < len(list); i += startsEntry {
		if binary.LittleEndian.Uint32(list[i+8:]) < binary.LittleEndian.Uint32(list[fewest+8:]) {
			fewest = i
		}
	}
	binary.LittleEndian.PutUint64(list[fewest:], h)
	binary.LittleEndian.PutUint32(list[fewest+8:], n)
	return list
}
