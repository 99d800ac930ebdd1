package main

import (
	"encoding/binary"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"
	"unsafe"

	"github.com/sluice-proxy/sluice/internal/prompthash"
)

// mapStore is a store with the host's bounds in miniature: at most cap
// keys, the oldest write evicted first, and a clock for the TTL.
type mapStore struct {
	m        map[string]entry
	order    []string // write order, oldest first (may hold stale keys)
	cap      int
	ttl      int64
	now      int64
	reads    int
	writes   int
	cas      uint32 // the last token issued
	creating uint32 // the token getCAS gave for a missing key
	releases int
}

type entry struct {
	v       []byte
	written int64
	cas     uint32
}

func newMapStore(capacity int, ttl int64) *mapStore {
	return &mapStore{m: map[string]entry{}, cap: capacity, ttl: ttl}
}

func (s *mapStore) get(key []byte) ([]byte, bool) {
	s.reads++
	e, ok := s.m[string(key)]
	if !ok || (s.ttl > 0 && s.now-e.written >= s.ttl) {
		return nil, false
	}
	return append([]byte{}, e.v...), true
}

// release poisons the value given back, as the SDK's next answer
// overwrites its memory: an index that kept using it reads garbage.
func (s *mapStore) release(v []byte) {
	s.releases++
	for i := range v {
		v[i] = 0xee
	}
}

func (s *mapStore) set(key []byte, value string) {
	s.writes++
	k := string(key)
	if _, ok := s.m[k]; !ok && len(s.m) >= s.cap {
		for len(s.order) > 0 { // evict the oldest live write
			old := s.order[0]
			s.order = s.order[1:]
			if _, ok := s.m[old]; ok {
				delete(s.m, old)
				break
			}
		}
	}
	s.cas++
	s.m[k] = entry{v: []byte(value), written: s.now, cas: s.cas}
	s.order = append(removeKey(s.order, k), k)
}

// getCAS returns the value and its token; for a missing (or expired) key
// a fresh token no entry holds, which creates it.
func (s *mapStore) getCAS(key []byte) ([]byte, uint32, bool) {
	v, ok := s.get(key)
	if !ok {
		s.cas++
		s.creating = s.cas
		return nil, s.cas, false
	}
	return v, s.m[string(key)].cas, true
}

func (s *mapStore) setCAS(key []byte, value string, cas uint32) bool {
	e, ok := s.m[string(key)]
	live := ok && (s.ttl == 0 || s.now-e.written < s.ttl)
	if live && e.cas != cas || !live && cas != s.creating {
		return false
	}
	s.set(key, value)
	return true
}

func removeKey(order []string, k string) []string {
	for i, o := range order {
		if o == k {
			return append(order[:i:i], order[i+1:]...)
		}
	}
	return order
}

func hashesOf(text string) []uint64 {
	return blockHashes(nil, 1, []byte(text), 16, 1<<20)
}

func TestIndexLongestMatch(t *testing.T) {
	kv := newMapStore(1<<20, 0)
	x := newIndex(kv)
	sys := strings.Repeat("system prompt! ", 20) // 300 bytes: 18 blocks of 16
	a := hashesOf(sys + strings.Repeat("conversation A. ", 10))
	b := hashesOf(sys + strings.Repeat("conversation B. ", 10))
	if n, ep := x.match("p", a, 1); n != 0 || ep != "" {
		t.Fatalf("empty index matched %d blocks at %q", n, ep)
	}
	x.record("p", a, "e1", 0, 1)
	kv.releases = 0
	if n, ep := x.match("p", a, 1); n != len(a) || ep != "e1" || kv.releases != 1 {
		t.Fatalf("same prompt: %d/%d blocks at %q (%d values given back, want 1)", n, len(a), ep, kv.releases)
	}
	// Among the pool's endpoints the match is their address string
	// itself, not a copy.
	known := []endpoint{{addr: "e0"}, {addr: strings.Clone("e1")}}
	if _, ep := x.matchIn("p", a, 1, known); ep != "e1" || unsafe.StringData(ep) != unsafe.StringData(known[1].addr) {
		t.Fatalf("match among the endpoints: %q, not the endpoint's string", ep)
	}
	// b shares 19 blocks (the system prompt and "conv"): the match
	// covers most of them (checkpoints: within a third) and no more.
	n, ep := x.match("p", b, 1)
	if ep != "e1" || n < 13 || n > 19 {
		t.Fatalf("shared prefix: %d blocks at %q, want 13..19 at e1", n, ep)
	}
	// A longer turn of conversation A matches all of the earlier turn's
	// checkpoints.
	a2 := hashesOf(sys + strings.Repeat("conversation A. ", 10) + strings.Repeat("next turn here. ", 10))
	if n, ep := x.match("p", a2, 1); ep != "e1" || n < len(a)*2/3 {
		t.Fatalf("next turn: %d blocks at %q, want ≥ %d", n, ep, len(a)*2/3)
	}
	// Pools do not share entries; models do not share hashes.
	if n, _ := x.match("other", a, 1); n != 0 {
		t.Fatalf("another pool matched %d blocks", n)
	}
	if n, _ := x.match("p", blockHashes(nil, 2, []byte(sys), 16, 1<<20), 1); n != 0 {
		t.Fatalf("another model matched %d blocks", n)
	}
	// The last writer owns a prefix.
	x.record("p", b, "e2", 0, 1)
	if _, ep := x.match("p", a, 1); ep != "e1" {
		t.Fatalf("a's full prompt moved to %q", ep)
	}
	if _, ep := x.match("p", hashesOf(sys), 1); ep != "e2" {
		t.Fatalf("the system prompt's owner is %q, want the last writer e2", ep)
	}
	// A partial record writes only past the recorded match.
	kv2 := newMapStore(1<<20, 0)
	z := newIndex(kv2)
	z.record("p", a, "e1", 0, 1)
	before := len(kv2.m)
	z.record("p", a2, "e1", len(a), 1)
	if added, want := len(kv2.m)-before, len(prompthash.Checkpoints(nil, len(a2)))-len(prompthash.Checkpoints(nil, len(a)))+1; added > want {
		t.Errorf("partial record wrote %d new keys, want ≤ %d", added, want)
	}
	if n, ep := z.match("p", a2, 1); n != len(a2) || ep != "e1" {
		t.Errorf("after a partial record: %d/%d at %q", n, len(a2), ep)
	}
	// Reads are logarithmic: 8 KiB of prompt, 512 blocks.
	long := hashesOf(strings.Repeat("x", 8192))
	x.record("p", long, "e3", 0, 1)
	kv.reads = 0
	if n, ep := x.match("p", long, 1); n != 512 || ep != "e3" {
		t.Fatalf("long prompt: %d at %q", n, ep)
	}
	if kv.reads > 6 {
		t.Errorf("match read %d keys for 512 blocks", kv.reads)
	}
	if cps := prompthash.Checkpoints(nil, 512); len(cps) > 18 {
		t.Errorf("512 blocks record %d checkpoints: %v", len(cps), cps)
	}
}

func TestIndexExpiryAndEviction(t *testing.T) {
	kv := newMapStore(1<<20, 100)
	x := newIndex(kv)
	a := hashesOf(strings.Repeat("prompt a ", 40))
	x.record("p", a, "e1", 0, 1)
	kv.now = 99
	if n, _ := x.match("p", a, 1); n != len(a) {
		t.Fatalf("before the TTL: %d blocks", n)
	}
	kv.now = 100
	if n, ep := x.match("p", a, 1); n != 0 {
		t.Fatalf("after the TTL: %d blocks at %q", n, ep)
	}
	// A full store forgets the oldest prompt first; the index stays
	// within the bound whatever is recorded.
	small := newMapStore(40, 0)
	y := newIndex(small)
	var prompts [][]uint64
	for i := range 10 {
		h := hashesOf(fmt.Sprintf("%02d", i) + strings.Repeat(" distinct prompt", 8))
		prompts = append(prompts, h)
		y.record("p", h, fmt.Sprint("e", i), 0, 1)
		if len(small.m) > 40 {
			t.Fatalf("store holds %d keys over its bound", len(small.m))
		}
	}
	if n, _ := y.match("p", prompts[0], 1); n != 0 {
		t.Fatalf("oldest prompt still matches %d blocks", n)
	}
	if n, ep := y.match("p", prompts[9], 1); n != len(prompts[9]) || ep != "e9" {
		t.Fatalf("newest prompt: %d at %q", n, ep)
	}
}

func TestSessionIndex(t *testing.T) {
	x := newIndex(newMapStore(100, 0))
	if _, ok := x.session("p", 7, nil); ok {
		t.Fatal("unknown session found")
	}
	x.recordSession("p", 7, "e2")
	known := []endpoint{{addr: strings.Clone("e2")}}
	if ep, ok := x.session("p", 7, known); !ok || ep != "e2" || unsafe.StringData(ep) != unsafe.StringData(known[0].addr) {
		t.Fatalf("session: %q %v, not the endpoint's own string", ep, ok)
	}
}

// TestIndexThresholdRange: with cache_threshold 0.3 (the default) a new
// 8 KiB prompt (128 blocks of 64 bytes) costs at most 5 writes and 5
// reads, a repeated one 1 read, and matches still decide where they
// could before: the next turn of a conversation, a shorter prompt that
// shares most of a longer earlier one.
func TestIndexThresholdRange(t *testing.T) {
	s, err := parseConfig(nil)
	if err != nil {
		t.Fatal(err)
	}
	kv := newMapStore(1<<20, 0)
	x := newIndex(kv)
	hs := func(text string) []uint64 { return blockHashes(nil, 1, []byte(text), 64, 1<<20) }
	sys := strings.Repeat("You are the assistant of a test. ", 200)[:6400] // 100 blocks
	turn1 := hs(sys + strings.Repeat("first question? ", 112))             // 128 blocks
	if len(turn1) != 128 {
		t.Fatalf("%d blocks", len(turn1))
	}
	min := s.minMatch(len(turn1))
	if min != 39 {
		t.Fatalf("minMatch(128) = %d, want 39 (ceil 0.3×128)", min)
	}
	if n, _ := x.match("p", turn1, min); n != 0 || kv.reads > 5 {
		t.Fatalf("miss: %d blocks in %d reads, want 0 in ≤ 5", n, kv.reads)
	}
	x.record("p", turn1, "e1", 0, min)
	if kv.writes > 5 {
		t.Fatalf("a new prompt wrote %d keys, want ≤ 5", kv.writes)
	}
	kv.reads = 0
	if n, ep := x.match("p", turn1, min); n != 128 || ep != "e1" || kv.reads != 1 {
		t.Fatalf("repeat: %d blocks at %q in %d reads, want 128 at e1 in 1", n, ep, kv.reads)
	}
	// The next turn (160 blocks) matches within a third of the 128.
	turn2 := hs(sys + strings.Repeat("first question? ", 112) + strings.Repeat("the answer then. ", 120))
	if n, ep := x.match("p", turn2, s.minMatch(len(turn2))); ep != "e1" || n < 128*2/3 {
		t.Fatalf("next turn: %d blocks at %q", n, ep)
	}
	// A shorter prompt (110 blocks) sharing the 100-block system prompt
	// with the longer one: checkpoint 94 was recorded (94 ≥ 39).
	short := hs(sys + strings.Repeat("other question. ", 40))
	if n, ep := x.match("p", short, s.minMatch(len(short))); ep != "e1" || n != 94 {
		t.Fatalf("shared system prompt: %d blocks at %q, want 94 at e1", n, ep)
	}
	// Below the threshold nothing is read or matched: 400 blocks share 100.
	long := hs(sys + strings.Repeat("a much longer document. ", 1100))
	if n, ep := x.match("p", long, s.minMatch(len(long))); n != 0 || ep != "" {
		t.Fatalf("a 25%% match was found: %d at %q", n, ep)
	}
}

// TestKeyFor checks the index's keys: "ca/<pool>/<kind>" and the hash's 8
// bytes, rebuilt when the pool or kind changes and otherwise rewritten in
// place, without allocating.
func TestKeyFor(t *testing.T) {
	x := newIndex(newMapStore(1<<20, 0))
	want := func(pool string, kind byte, h uint64) string {
		return keyPrefix + pool + "/" + string(kind) + string(binary.LittleEndian.AppendUint64(nil, h))
	}
	for _, c := range []struct {
		pool string
		kind byte
		h    uint64
	}{{"a", 'b', 1}, {"a", 'b', 2}, {"pool-b", 'b', 2}, {"pool-b", 's', 2}, {"a", 'b', 1 << 63}, {"a", 's', 7}} {
		if got := string(x.keyFor(c.pool, c.kind, c.h)); got != want(c.pool, c.kind, c.h) {
			t.Errorf("keyFor(%q, %c, %#x) = %q, want %q", c.pool, c.kind, c.h, got, want(c.pool, c.kind, c.h))
		}
	}
	if n := testing.AllocsPerRun(100, func() { x.keyFor("a", 's', 9) }); n != 0 {
		t.Errorf("keyFor allocates %v times", n)
	}
}

// TestIndexStarts: the count of prefixes started per endpoint is shared
// by indexes over one store (the plugin's instances), kept per pool,
// increments even when another index wrote in between (compare and
// swap), and expires with the store's TTL.
func TestIndexStarts(t *testing.T) {
	kv := newMapStore(1<<20, 100)
	a, b := newIndex(kv), newIndex(kv)
	a.addStart("p", endpointID("e1"))
	b.addStart("p", endpointID("e1"))
	a.addStart("p", endpointID("e2"))
	b.addStart("q", endpointID("e1"))
	got := []endpoint{{addr: "e1"}, {addr: "e2"}, {addr: "e3"}}
	a.loadStarts("p", got)
	if got[0].starts != 2 || got[1].starts != 1 || got[2].starts != 0 {
		t.Fatalf("starts %v %v %v, want 2 1 0", got[0].starts, got[1].starts, got[2].starts)
	}
	// A write between the read and the write makes the first swap fail;
	// the retry counts both.
	racy := &racingStore{mapStore: kv, other: b}
	c := newIndex(racy)
	c.addStart("p", endpointID("e2"))
	a.loadStarts("p", got)
	if got[1].starts != 3 {
		t.Fatalf("after a raced increment e2 has %v starts, want 3 (1 + the other's + ours)", got[1].starts)
	}
	// A new prompt's starts cost one read (loadStarts) and one write
	// (addStart against the list read).
	// Each list read is given back: the one held since the last
	// loadStarts when the next reads, this one once written
	// (mapStore.release poisons them: a later use would read garbage).
	kv.reads, kv.writes, kv.releases = 0, 0, 0
	a.loadStarts("p", got)
	a.addStart("p", endpointID("e3"))
	if kv.reads != 1 || kv.writes != 1 || kv.releases != 2 {
		t.Fatalf("loadStarts and addStart: %d reads, %d writes, %d lists given back, want 1, 1 and 2", kv.reads, kv.writes, kv.releases)
	}
	kv.now += 100 // past the TTL
	a.loadStarts("p", got)
	if got[0].starts != 0 || got[1].starts != 0 {
		t.Fatalf("expired counts read as %v %v", got[0].starts, got[1].starts)
	}
}

// addStart adds one start for the endpoint whose id is h, as commitStart
// does for a decided request, without deciding again.
func (x *index) addStart(pool string, h uint64) {
	for try := 0; !x.tryStart(pool, h, testNow, 0) && try < maxStartsTries-1; try++ {
	}
	x.releaseStarts()
}

// testNow is the time of the tests' starts: one moment, so no count
// decays.
const testNow = int64(1)

// TestCommitStartDecidesAgain: two instances that start prefixes at the
// same moment read the same list and both pick the endpoint with the
// fewest starts; the second to write finds the list changed and goes to
// the next one instead.
func TestCommitStartDecidesAgain(t *testing.T) {
	kv := newMapStore(1<<20, 0)
	s, err := parseConfig(nil)
	if err != nil {
		t.Fatal(err)
	}
	a, b := newIndex(kv), newIndex(kv)
	eps := func() []endpoint { return []endpoint{{addr: "e1"}, {addr: "e2"}, {addr: "e3"}} }
	ea, eb := eps(), eps()
	a.addStart("p", endpointID("e1")) // e1 has a start: e2 and e3 have the fewest
	a.addStart("p", endpointID("e3"))
	a.loadStarts("p", ea)
	b.loadStarts("p", eb)
	c := choice{total: 10, rnd: 1}
	if s.decide(ea, c) != reasonLeastLoad || s.decide(eb, c) != reasonLeastLoad || ea[0].addr != "e2" || eb[0].addr != "e2" {
		t.Fatalf("both decided %s and %s, want e2 (the fewest starts)", ea[0].addr, eb[0].addr)
	}
	if why, counted := a.commitStart(s, "p", ea, c, testNow); why != reasonLeastLoad || ea[0].addr != "e2" || !counted {
		t.Fatalf("first commit: %v to %s, want least_load to e2", why, ea[0].addr)
	}
	kv.writes = 0
	if why, counted := b.commitStart(s, "p", eb, c, testNow); why != reasonLeastLoad || eb[0].addr == "e2" || !counted {
		t.Fatalf("second commit: %v to %s, want least_load elsewhere than e2, whose start the first counted", why, eb[0].addr)
	}
	if kv.writes != 1 {
		t.Fatalf("second commit wrote %d times, want once (after the failed swap)", kv.writes)
	}
	got := []endpoint{{addr: "e1"}, {addr: "e2"}, {addr: "e3"}}
	a.loadStarts("p", got)
	if got[0].starts+got[1].starts+got[2].starts != 4 || got[1].starts != 1 {
		t.Fatalf("starts %v %v %v, want 4 in all, 1 on e2", got[0].starts, got[1].starts, got[2].starts)
	}
}

// TestUndoStart: a start taken back leaves the others' counts, decays the
// list like a start would, never goes under 0, leaves an endpoint not in
// the list out of it, and retries a swap another instance raced.
func TestUndoStart(t *testing.T) {
	kv := newMapStore(1<<20, 0)
	a, b := newIndex(kv), newIndex(kv)
	for range 3 {
		a.addStart("p", endpointID("e1"))
	}
	a.addStart("p", endpointID("e2"))
	a.undoStart("p", endpointID("e1"), testNow)
	a.undoStart("p", endpointID("e3"), testNow) // not in the list
	got := []endpoint{{addr: "e1"}, {addr: "e2"}, {addr: "e3"}}
	b.loadStarts("p", got)
	if got[0].starts != 2 || got[1].starts != 1 || got[2].starts != 0 {
		t.Fatalf("after undoing one of e1's starts: %v %v %v, want 2 1 0", got[0].starts, got[1].starts, got[2].starts)
	}
	b.releaseStarts()
	for range 3 {
		a.undoStart("p", endpointID("e2"), testNow)
	}
	b.loadStarts("p", got)
	if got[1].starts != 0 || got[0].starts != 2 {
		t.Fatalf("e2 undone three times from 1: %v (e1 %v), want 0 and e1 untouched", got[1].starts, got[0].starts)
	}
	b.releaseStarts()
	// Another instance adds a start between the read and the swap: the
	// undo reads again and both count.
	racy := &racingStore{mapStore: kv, other: b}
	newIndex(racy).undoStart("p", endpointID("e1"), testNow)
	b.loadStarts("p", got)
	if got[0].starts != 1 || got[1].starts != 1 {
		t.Fatalf("an undo raced by a start on e2: e1 %v e2 %v, want 1 and 1", got[0].starts, got[1].starts)
	}
	b.releaseStarts()
	// Decay: a half life later the list is as of then, halved, one less.
	list := withStart(nil, withStart(nil, withStart(nil, nil, 1, 10, 0), 1, 10, 0), 2, 10, 0)
	later := withoutStart(nil, list, 1, 10+int64(startsHalfLife))
	if c := startsOf(later, 1); c != 0 {
		t.Fatalf("2 starts halved, less one: %v, want 0 (dropped)", c)
	}
	if c := startsOf(later, 2); c < 0.49 || c > 0.51 || int64(binary.LittleEndian.Uint64(later)) != 10+int64(startsHalfLife) {
		t.Fatalf("the other count a half life later: %v as of %d", c, binary.LittleEndian.Uint64(later))
	}
	if len(later) != startsHeader+startsEntry {
		t.Fatalf("a count undone to 0 is still listed: %d bytes", len(later))
	}
	if got := withoutStart(nil, list[:startsHeader+startsEntry+3], 2, 10); len(got) != startsHeader+startsEntry || startsOf(got, 1) != 2 {
		t.Fatalf("torn list: %d bytes", len(got))
	}
}

// racingStore lets another index increment the same count once, between
// the first getCAS and its setCAS.
type racingStore struct {
	*mapStore
	other *index
	raced bool
}

func (s *racingStore) setCAS(key []byte, value string, cas uint32) bool {
	if !s.raced {
		s.raced = true
		k := append([]byte(nil), key...)
		s.other.addStart("p", endpointID("e2"))
		key = k
	}
	return s.mapStore.setCAS(key, value, cas)
}

// TestStartsListBounded: the starts list keeps at most
// maxStartsEndpoints endpoints; a new one replaces the one with the
// fewest starts, and a torn tail is dropped.
func TestStartsListBounded(t *testing.T) {
	var list []byte
	for h := range uint64(maxStartsEndpoints) {
		for range h%3 + 1 {
			list = withStart(nil, list, h, testNow, 0)
		}
	}
	full := startsHeader + maxStartsEndpoints*startsEntry
	if len(list) != full || startsOf(list, 5) != 3 || startsOf(list, 0) != 1 {
		t.Fatalf("list of %d bytes, starts(5) = %v", len(list), startsOf(list, 5))
	}
	list = withStart(nil, list, 1<<40, testNow, 0)
	if len(list) != full || startsOf(list, 1<<40) != 1 || startsOf(list, 0) != 0 || startsOf(list, 3) != 1 {
		t.Fatalf("a new endpoint in a full list: %d bytes, new %v, replaced %v, kept %v",
			len(list), startsOf(list, 1<<40), startsOf(list, 0), startsOf(list, 3))
	}
	if got := withStart(nil, list[:startsHeader+20], 9, testNow, 0); len(got) != startsHeader+2*startsEntry || startsOf(got, 9) != 1 || startsOf(got, 0) != 0 {
		t.Fatalf("torn list: %d bytes", len(got))
	}
	if startsOf(list[:5], 1<<40) != 0 || startsOf(nil, 1) != 0 {
		t.Fatal("a list without its time has counts")
	}
}

// TestStartsDecay: every write scales the counts by 2^(−elapsed/half
// life); a count that decays to nothing leaves the list; a clock that
// goes back decays nothing and keeps the list's time; an endpoint new to
// the list joins at the floor it is given (at least 1).
func TestStartsDecay(t *testing.T) {
	t0 := int64(1_000_000_000_000)
	list := withStart(nil, nil, 1, t0, 0)
	for range 99 {
		list = withStart(nil, list, 1, t0, 0)
	}
	for range 10 {
		list = withStart(nil, list, 2, t0, 0)
	}
	if startsOf(list, 1) != 100 || startsOf(list, 2) != 10 {
		t.Fatalf("counts %v and %v, want 100 and 10", startsOf(list, 1), startsOf(list, 2))
	}
	later := withStart(nil, list, 1, t0+int64(startsHalfLife), 0)
	if c := startsOf(later, 1); c < 50.99 || c > 51.01 {
		t.Errorf("a half life later, with one more start: %v, want 51", c)
	}
	if c := startsOf(later, 2); c < 4.99 || c > 5.01 {
		t.Errorf("a half life later: %v, want 5", c)
	}
	gone := withStart(nil, list, 1, t0+20*int64(startsHalfLife), 0)
	if len(gone) != startsHeader+startsEntry || startsOf(gone, 2) != 0 {
		t.Errorf("twenty half lives later the 10 starts are still listed (%d bytes)", len(gone))
	}
	back := withStart(nil, list, 2, t0-int64(time.Hour), 0)
	if startsOf(back, 1) != 100 || startsOf(back, 2) != 11 || int64(binary.LittleEndian.Uint64(back)) != t0 {
		t.Errorf("a clock gone back: %v and %v as of %d", startsOf(back, 1), startsOf(back, 2), binary.LittleEndian.Uint64(back))
	}
	if c := startsOf(withStart(nil, list, 3, t0, 42), 3); c != 42 {
		t.Errorf("a new endpoint joined at %v, want the floor 42", c)
	}
	if c := startsOf(withStart(nil, list, 3, t0, 0), 3); c != 1 {
		t.Errorf("a new endpoint joined at %v, want 1", c)
	}
	// Counts another plugin of the vm_id could have written read as 0.
	odd := binary.LittleEndian.AppendUint64(nil, uint64(t0))
	for i, c := range []float32{float32(math.NaN()), float32(math.Inf(1)), -5, 7} {
		odd = binary.LittleEndian.AppendUint32(binary.LittleEndian.AppendUint64(odd, uint64(i)), math.Float32bits(c))
	}
	if startsOf(odd, 0) != 0 || startsOf(odd, 1) != 0 || startsOf(odd, 2) != 0 || startsOf(odd, 3) != 7 {
		t.Errorf("odd counts read as %v %v %v %v", startsOf(odd, 0), startsOf(odd, 1), startsOf(odd, 2), startsOf(odd, 3))
	}
	if fixed := withStart(nil, odd, 0, t0, float32(math.NaN())); startsOf(fixed, 0) != 1 || startsOf(fixed, 1) != 0 || startsOf(fixed, 3) != 7 {
		t.Errorf("odd counts written back: %v %v %v", startsOf(fixed, 0), startsOf(fixed, 1), startsOf(fixed, 3))
	}
	if got := fewestOthers([]endpoint{{starts: 0}, {starts: 7}, {starts: 3}}); got != 3 {
		t.Errorf("fewestOthers = %v, want 3", got)
	}
}

// TestStartsNewcomerTakesItsShare: an endpoint added to a pool whose
// endpoints have started 100 prefixes each takes about its share of the
// new ones, not every one until its count catches up (which it did
// before it joined at the others' floor).
func TestStartsNewcomerTakesItsShare(t *testing.T) {
	kv := newMapStore(1<<20, 0)
	s, err := parseConfig(nil)
	if err != nil {
		t.Fatal(err)
	}
	x := newIndex(kv)
	for _, e := range []string{"e1", "e2", "e3", "e4"} {
		for range 100 {
			x.addStart("p", endpointID(e))
		}
	}
	got := map[string]int{}
	for i := range 50 {
		eps := []endpoint{{addr: "e1"}, {addr: "e2"}, {addr: "e3"}, {addr: "e4"}, {addr: "e5"}}
		x.loadStarts("p", eps)
		c := choice{total: 10, rnd: uint64(i)}
		if why := s.decide(eps, c); why == reasonLeastLoad {
			why, _ = x.commitStart(s, "p", eps, c, testNow)
		}
		got[eps[0].addr]++
	}
	if got["e5"] > 15 || got["e1"] < 5 {
		t.Fatalf("50 new prefixes went %v; want e5 about a fifth", got)
	}
}

// FuzzStartsList: any bytes in the starts list's key (every plugin of the
// vm_id can write it) read without panicking, and a start written over
// them gives a well-formed list: its time, whole entries of sane counts,
// at most maxStartsEndpoints, the endpoint's at least 1; a start taken
// back gives one no longer than the list, with counts kept only when
// they are worth keeping.
func FuzzStartsList(f *testing.F) {
	f.Add(withStart(nil, withStart(nil, nil, 1, 10, 0), 2, 20, 0), uint64(1), int64(30), float32(0))
	f.Add([]byte("\x00\x01\x02"), uint64(7), int64(-1), float32(3))
	f.Fuzz(func(t *testing.T, list []byte, h uint64, now int64, floor float32) {
		_ = startsOf(list, h)
		got := withStart(nil, list, h, now, floor)
		if len(got) < startsHeader || (len(got)-startsHeader)%startsEntry != 0 || len(got) > startsHeader+maxStartsEndpoints*startsEntry {
			t.Fatalf("list of %d bytes", len(got))
		}
		for e := got[startsHeader:]; len(e) > 0; e = e[startsEntry:] {
			if c := math.Float32frombits(binary.LittleEndian.Uint32(e[8:])); !(c >= 0 && c <= maxStartsCount+1) {
				t.Fatalf("count %v written", c)
			}
		}
		if c := startsOf(got, h); c < 1 {
			t.Fatalf("the started endpoint's count is %v", c)
		}
		back := withoutStart(nil, list, h, now)
		if len(back) < startsHeader || (len(back)-startsHeader)%startsEntry != 0 || len(back) > max(len(list), startsHeader) {
			t.Fatalf("undone list of %d bytes from %d", len(back), len(list))
		}
		for e := back[startsHeader:]; len(e) > 0; e = e[startsEntry:] {
			if c := math.Float32frombits(binary.LittleEndian.Uint32(e[8:])); !(c >= minStartsKept && c <= maxStartsCount) {
				t.Fatalf("count %v written by an undo", c)
			}
		}
	})
}
