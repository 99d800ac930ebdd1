package wasm

import (
	"encoding/binary"
	"fmt"
	"math"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluice-proxy/sluice/internal/prompthash"
	"github.com/sluice-proxy/sluice/proxy"
)

var (
	prefixMatchName  = []byte("sluice.prompt_prefix_match")
	prefixRecordName = []byte("sluice.prompt_prefix_record")
	prefixClaimName  = []byte("sluice.prompt_prefix_claim")
)

// prefixCallers returns callers of sluice.prompt_prefix_match and
// sluice.prompt_prefix_record in one HTTP context of one instance.
func prefixCallers(tb testing.TB) (match, record *promptHashCaller) {
	match = newPromptHashCaller(tb)
	match.name = prefixMatchName
	r := *match
	r.name, r.stack = prefixRecordName, make([]uint64, 6)
	return match, &r
}

func prefixMatchArgs(chunk, max uint32, threshold float64, prefix string) []byte {
	a := promptArgs(chunk, max)
	a = binary.LittleEndian.AppendUint64(a, math.Float64bits(threshold))
	return append(a, prefix...)
}

func prefixRecordArgs(from uint32, value string) []byte {
	return append(binary.LittleEndian.AppendUint32(nil, from), value...)
}

// prefixEntry is one checkpoint sluice.prompt_prefix_match found.
type prefixEntry struct {
	blocks int
	value  string
}

// prefixResult is sluice.prompt_prefix_match's result, decoded.
type prefixResult struct {
	seed    uint64
	n, min  int
	pool    string
	entries []prefixEntry
}

// parsePrefixMatch decodes the function's result; ok is false when it is
// malformed.
func parsePrefixMatch(res []byte) (r prefixResult, ok bool) {
	if len(res) < 20 || len(res)-20 < int(binary.LittleEndian.Uint32(res[16:])) {
		return r, false
	}
	r.seed, r.n, r.min = binary.LittleEndian.Uint64(res), int(binary.LittleEndian.Uint32(res[8:])), int(binary.LittleEndian.Uint32(res[12:]))
	pool := int(binary.LittleEndian.Uint32(res[16:]))
	r.pool = string(res[20 : 20+pool])
	for rest := res[20+pool:]; len(rest) > 0; {
		if len(rest) < 8 {
			return r, false
		}
		size := int(binary.LittleEndian.Uint32(rest[4:]))
		if len(rest)-8 < size {
			return r, false
		}
		r.entries = append(r.entries, prefixEntry{int(binary.LittleEndian.Uint32(rest)), string(rest[8 : 8+size])})
		rest = rest[8+size:]
	}
	return r, true
}

// entriesOf is the entries of a result (nil when malformed).
func entriesOf(res []byte) []prefixEntry {
	r, _ := parsePrefixMatch(res)
	return r.entries
}

// prefixKey is the key a guest writes for the first blocks of the
// prompt with hashes hs under prefix: the cacheaware plugin's layout.
func prefixKey(prefix string, hs []uint64, blocks int) []byte {
	return binary.LittleEndian.AppendUint64([]byte(prefix), hs[blocks-1])
}

// prefixBodies are the prefix tests' two prompts: long extends short.
func prefixBodies() (short, long []byte) {
	return chatBody(strings.Repeat("tell me more ", 60)), chatBody(strings.Repeat("tell me more ", 60) + strings.Repeat("and then ", 40))
}

// minuteTTLStore puts p's shared data on a fake clock, with the policy
// the cacheaware plugin sets for its keys ("ca/", a minute's TTL), and
// returns the clock.
func minuteTTLStore(t *testing.T, p *Plugin) *fakeClock {
	t.Helper()
	clock := &fakeClock{ns: 1}
	p.shared.now = clock.now
	if _, st := foreignSharedDataPolicy(p, append(binary.LittleEndian.AppendUint32(binary.LittleEndian.AppendUint32(nil, 60_000), 0), "ca/"...), nil); st != statusOK {
		t.Fatalf("policy: %d", st)
	}
	return clock
}

func chatBody(content string) []byte {
	return []byte(`{"model":"m","messages":[{"role":"user","content":"` + content + `"}]}`)
}

// TestForeignPromptPrefix: the answer names the request's pool; a prompt
// recorded under a prefix is found by
// the same prompt (every block) and by a longer one that extends it (its
// longest recorded checkpoint); the keys are those a guest writes with
// proxy_set_shared_data (the cacheaware plugin's fallback reads them);
// a second endpoint's value is listed after a longer match's; short
// checkpoints under min are neither written nor read; the store's policy
// bounds the keys.
func TestForeignPromptPrefix(t *testing.T) {
	match, record := prefixCallers(t)
	srv, err := proxy.NewServer(proxy.NewConfig().WithUpstream("llm", "http://127.0.0.1:1"), proxy.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	ex := srv.NewExchange()
	if err := ex.SetUpstream("llm"); err != nil {
		t.Fatal(err)
	}
	match.s.ex = ex // the record caller shares the stream
	p := match.p
	clock := minuteTTLStore(t, p)
	const prefix, chunk, threshold = "ca/pool/b", 64, 0.3
	args := prefixMatchArgs(chunk, 1<<20, threshold, prefix)
	short, long := prefixBodies()
	hashes := func(body []byte) (uint64, []uint64) {
		text, model, _ := prompthash.Quick(body)
		seed := prompthash.Seed(model)
		return seed, prompthash.AppendBlocks(nil, seed, text, chunk, 1<<20)
	}
	seed, hs := hashes(short)
	_, hl := hashes(long)

	st, res := match.call(t, short, args, false, 512)
	r, ok := parsePrefixMatch(res)
	min := prompthash.MinMatch(len(hs), threshold)
	if st != statusOK || !ok || r.seed != seed || r.n != len(hs) || r.min != min || r.pool != "llm" || len(r.entries) != 0 {
		t.Fatalf("empty store: status %d, %+v (want seed %x n %d min %d pool llm, no entries)", st, r, seed, len(hs), min)
	}
	if st, _ := record.call(t, nil, prefixRecordArgs(0, "10.0.0.1:8000"), false, 512); st != statusOK {
		t.Fatalf("record: status %d", st)
	}
	for _, cp := range prompthash.Checkpoints(nil, len(hs)) {
		v, found := p.shared.peek(nil, prefixKey(prefix, hs, cp))
		if want := cp >= min; found != want || (found && string(v) != "10.0.0.1:8000") {
			t.Fatalf("checkpoint %d (min %d): found %v %q", cp, min, found, v)
		}
	}

	// The same prompt: every block, one entry (shorter checkpoints hold
	// the same value).
	st, res = match.call(t, short, args, false, 512)
	if entries := entriesOf(res); st != statusOK || len(entries) != 1 || entries[0] != (prefixEntry{len(hs), "10.0.0.1:8000"}) {
		t.Fatalf("repeat: status %d, entries %v", st, entries)
	}
	// A longer prompt: its longest checkpoint the short one recorded.
	// Recorded for another endpoint from there, it then lists both.
	want := 0 // the long prompt's longest checkpoint whose key the short one wrote
	for _, cp := range prompthash.Checkpoints(nil, len(hl)) {
		if _, found := p.shared.peek(nil, prefixKey(prefix, hl, cp)); found && cp >= prompthash.MinMatch(len(hl), threshold) {
			want = cp
		}
	}
	st, res = match.call(t, long, args, false, 512)
	if entries := entriesOf(res); st != statusOK || want == 0 || want >= len(hl) || len(entries) != 1 || entries[0] != (prefixEntry{want, "10.0.0.1:8000"}) {
		t.Fatalf("longer prompt: status %d, entries %v, want [{%d 10.0.0.1:8000}]", st, entries, want)
	}
	if st, _ := record.call(t, nil, prefixRecordArgs(uint32(want), "10.0.0.2:8000"), false, 512); st != statusOK {
		t.Fatalf("record: status %d", st)
	}
	if _, found := p.shared.peek(nil, prefixKey(prefix, hl, want)); !found {
		t.Fatal("record from a match rewrote the matched checkpoint's key away")
	} else if v, _ := p.shared.peek(nil, prefixKey(prefix, hl, want)); string(v) != "10.0.0.1:8000" {
		t.Fatalf("record with from %d rewrote checkpoint %d: %q", want, want, v)
	}
	st, res = match.call(t, long, args, false, 512)
	if entries := entriesOf(res); st != statusOK || len(entries) != 2 || entries[0] != (prefixEntry{len(hl), "10.0.0.2:8000"}) || entries[1] != (prefixEntry{want, "10.0.0.1:8000"}) {
		t.Fatalf("after the longer prompt's record: status %d, entries %v", st, entries)
	}

	// The plugin's policy bounds the keys: a minute later they are gone.
	clock.advance(time.Minute + time.Millisecond)
	st, res = match.call(t, long, args, false, 512)
	if entries := entriesOf(res); st != statusOK || len(entries) != 0 {
		t.Fatalf("past the keys' TTL: status %d, entries %v", st, entries)
	}
}

// TestForeignPromptPrefixErrors: malformed arguments, the root context, a
// record with no match of its own context on record, and a full store
// get a clear status and write nothing.
func TestForeignPromptPrefixErrors(t *testing.T) {
	match, record := prefixCallers(t)
	body := chatBody(strings.Repeat("tell me more ", 60))
	good := prefixMatchArgs(64, 1<<20, 0.3, "ca/p/b")
	for name, tc := range map[string]struct {
		body, args []byte
		root       bool
		want       status
	}{
		"no args":             {body, nil, false, statusBadArgument},
		"no prefix":           {body, good[:16], false, statusBadArgument},
		"prefix too long":     {body, prefixMatchArgs(64, 1<<20, 0.3, strings.Repeat("k", maxPrefixKeyPrefix+1)), false, statusBadArgument},
		"chunk 15":            {body, prefixMatchArgs(15, 1<<20, 0.3, "k"), false, statusBadArgument},
		"threshold NaN":       {body, prefixMatchArgs(64, 1<<20, math.NaN(), "k"), false, statusBadArgument},
		"threshold 1.5":       {body, prefixMatchArgs(64, 1<<20, 1.5, "k"), false, statusBadArgument},
		"threshold negative":  {body, prefixMatchArgs(64, 1<<20, -0.1, "k"), false, statusBadArgument},
		"root context":        {body, good, true, statusBadArgument},
		"unusual body":        {[]byte(`{"messages":[],"model":"m"}`), good, false, statusParseFailure},
		"longest prefix fine": {body, prefixMatchArgs(64, 1<<20, 1, strings.Repeat("k", maxPrefixKeyPrefix)), false, statusOK},
	} {
		if st, _ := match.call(t, tc.body, tc.args, tc.root, 512); st != tc.want {
			t.Errorf("match, %s: status %d, want %d", name, st, tc.want)
		}
	}
	// The last match failed (the map's order): none is on record after a
	// parse failure either.
	if st, _ := match.call(t, []byte(`not json`), good, false, 512); st != statusParseFailure {
		t.Fatalf("not json: status %d", st)
	}
	if st, _ := record.call(t, nil, prefixRecordArgs(0, "e1"), false, 512); st != statusBadArgument {
		t.Fatalf("record after a failed match: status %d, want BAD_ARGUMENT", st)
	}
	if st, _ := match.call(t, body, good, false, 512); st != statusOK {
		t.Fatalf("match: status %d", st)
	}
	other := *record
	other.s = &stream{p: record.p, inst: record.in, ex: newExchange("/v1/chat/completions"), id: 3}
	for name, tc := range map[string]struct {
		c    *promptHashCaller
		args []byte
		root bool
	}{
		"another context": {&other, prefixRecordArgs(0, "e1"), false},
		"root context":    {record, prefixRecordArgs(0, "e1"), true},
		"no value":        {record, prefixRecordArgs(0, ""), false},
		"short args":      {record, []byte{0, 0, 0}, false},
		"value too long":  {record, prefixRecordArgs(0, strings.Repeat("v", maxPrefixValue+1)), false},
	} {
		if st, _ := tc.c.call(t, nil, tc.args, tc.root, 512); st != statusBadArgument {
			t.Errorf("record, %s: status %d, want BAD_ARGUMENT", name, st)
		}
	}
	if n := match.p.shared.len(); n != 0 {
		t.Fatalf("%d keys written by failed calls", n)
	}
	// A full store without eviction: INTERNAL_FAILURE.
	p := match.p
	for i := 0; p.shared.len() < maxSharedKeys; i++ {
		if st := p.shared.set(binary.LittleEndian.AppendUint64([]byte("fill/"), uint64(i)), []byte("x"), 0, sharedPolicy{}); st != statusOK {
			t.Fatalf("filling the store: status %d", st)
		}
	}
	if st, _ := record.call(t, nil, prefixRecordArgs(0, "e1"), false, 512); st != statusInternalFailure {
		t.Fatalf("record into a full store: status %d, want INTERNAL_FAILURE", st)
	}
}

// FuzzPromptPrefix drives the three functions through the host call a
// guest makes, with arbitrary arguments, body and result pointer: no
// panic, a known status, a well-formed match whose seed and block count
// are prompthash's, and a claim that wrote its value or names another
// at a checkpoint the match could list.
func FuzzPromptPrefix(f *testing.F) {
	match, record := prefixCallers(f)
	claim := *record
	claim.name = prefixClaimName
	f.Add(chatBody(strings.Repeat("0123456789abcdef", 20)), prefixMatchArgs(16, 1<<20, 0.3, "ca/p/b"), prefixRecordArgs(0, "e1"), uint32(512))
	f.Add(chatBody(strings.Repeat("0123456789abcdef", 20)), prefixMatchArgs(64, 64, 0, "k"), prefixRecordArgs(3, "e2"), uint32(65530))
	f.Add([]byte(`{"model":"m","prompt":"x"}`), []byte{1, 2, 3}, []byte{}, uint32(0xfffffffc))
	f.Fuzz(func(t *testing.T, body, margs, rargs []byte, retPtr uint32) {
		if len(body) > 16<<10 || len(margs) > 1200 || len(rargs) > 1200 {
			return
		}
		st, res := match.call(t, body, margs, false, retPtr)
		if !knownStatus(st) {
			t.Fatalf("match: status %d", st)
		}
		if st == statusOK {
			chunk, max, threshold, _, _ := parsePrefixMatchArgs(margs)
			r, ok := parsePrefixMatch(res)
			want, _ := wantPromptHashes(body, chunk, max)
			if !ok || binary.LittleEndian.Uint64(want) != r.seed || r.n != len(want)/8-1 || r.min != prompthash.MinMatch(r.n, threshold) {
				t.Fatalf("match: %x (%+v), want seed and %d blocks", res, r, len(want)/8-1)
			}
			for i, e := range r.entries {
				if e.blocks < r.min || e.blocks > r.n || (i > 0 && e.blocks >= r.entries[i-1].blocks) {
					t.Fatalf("entries out of order or bounds: %+v", r)
				}
			}
		}
		if st := func() status { st, _ := record.call(t, nil, rargs, false, retPtr); return st }(); !knownStatus(st) {
			t.Fatalf("record: status %d", st)
		}
		// The claim's argument is the record's value.
		cargs := rargs[min(4, len(rargs)):]
		st, res = claim.call(t, nil, cargs, false, retPtr)
		if !knownStatus(st) {
			t.Fatalf("claim: status %d", st)
		}
		if st == statusOK && len(res) != 0 && (len(res) < 5 || string(res[4:]) == string(cargs)) {
			t.Fatalf("claim lost to %x: malformed, or to its own value", res)
		}
	})
}

// TestForeignPromptPrefixClaim: a claim writes its value at the
// checkpoints a match looks up unless one holds another value, then
// names the longest such and writes nothing; its own value, a short
// checkpoint under min and an expired key do not stop it.
func TestForeignPromptPrefixClaim(t *testing.T) {
	match, record := prefixCallers(t)
	claim := *record
	claim.name = prefixClaimName
	p := match.p
	clock := minuteTTLStore(t, p)
	const prefix, chunk, threshold = "ca/pool/b", 64, 0.3
	args := prefixMatchArgs(chunk, 1<<20, threshold, prefix)
	short, long := prefixBodies()
	hashesOf := func(body []byte) []uint64 {
		text, model, _ := prompthash.Quick(body)
		return prompthash.AppendBlocks(nil, prompthash.Seed(model), text, chunk, 1<<20)
	}
	hs, hl := hashesOf(short), hashesOf(long)
	minS, minL := prompthash.MinMatch(len(hs), threshold), prompthash.MinMatch(len(hl), threshold)
	valueAt := func(h []uint64, cp int) (string, bool) {
		v, found := p.shared.peek(nil, prefixKey(prefix, h, cp))
		return string(v), found
	}
	doClaim := func(body []byte, value string) (status, []byte) {
		t.Helper()
		if st, _ := match.call(t, body, args, false, 512); st != statusOK {
			t.Fatalf("match: status %d", st)
		}
		return claim.call(t, nil, []byte(value), false, 512)
	}

	// A checkpoint under min holding another value does not count.
	under := prompthash.Checkpoints(nil, len(hs))[0]
	if under >= minS {
		t.Fatalf("test needs a checkpoint under min %d", minS)
	}
	p.shared.set(prefixKey(prefix, hs, under), []byte("zz"), 0, sharedPolicy{})
	if st, res := doClaim(short, "e1"); st != statusOK || len(res) != 0 {
		t.Fatalf("first claim: status %d, result %q; want it made", st, res)
	}
	for _, cp := range prompthash.Checkpoints(nil, len(hs)) {
		v, found := valueAt(hs, cp)
		switch {
		case cp == under && v != "zz", cp < minS && cp != under && found, cp >= minS && v != "e1":
			t.Fatalf("checkpoint %d (min %d): %q %v", cp, minS, v, found)
		}
	}
	// The same value again: made (it restarts the keys' time to live).
	if st, res := doClaim(short, "e1"); st != statusOK || len(res) != 0 {
		t.Fatalf("claim of its own value: status %d, result %q", st, res)
	}
	// A longer prompt with the same prefix, for another endpoint: lost to
	// e1 at the long prompt's longest checkpoint the short one wrote, and
	// nothing written.
	want := 0
	for _, cp := range prompthash.Checkpoints(nil, len(hl)) {
		if v, found := valueAt(hl, cp); found && v == "e1" && cp >= minL {
			want = cp
		}
	}
	st, res := doClaim(long, "e2")
	if st != statusOK || want == 0 || len(res) < 4 || int(binary.LittleEndian.Uint32(res)) != want || string(res[4:]) != "e1" {
		t.Fatalf("claim against another value: status %d, result %q, want checkpoint %d and e1", st, res, want)
	}
	for _, cp := range prompthash.Checkpoints(nil, len(hl)) {
		if v, _ := valueAt(hl, cp); v == "e2" {
			t.Fatalf("a lost claim wrote checkpoint %d", cp)
		}
	}
	// Once e1's keys have expired the claim is made.
	clock.advance(time.Minute + time.Millisecond)
	if st, res := doClaim(long, "e2"); st != statusOK || len(res) != 0 {
		t.Fatalf("claim after the keys expired: status %d, result %q", st, res)
	}
	if v, found := valueAt(hl, len(hl)); !found || v != "e2" {
		t.Fatalf("longest checkpoint after the claim: %q %v", v, found)
	}

	// Errors: no match of this context on record, the root context, no
	// value, a value too long, a full store.
	if st, _ := match.call(t, []byte(`not json`), args, false, 512); st != statusParseFailure {
		t.Fatalf("not json: status %d", st)
	}
	if st, _ := claim.call(t, nil, []byte("e1"), false, 512); st != statusBadArgument {
		t.Fatalf("claim after a failed match: status %d", st)
	}
	if st, _ := match.call(t, short, args, false, 512); st != statusOK {
		t.Fatalf("match: status %d", st)
	}
	for name, tc := range map[string]struct {
		args []byte
		root bool
	}{
		"root context":   {[]byte("e1"), true},
		"no value":       {nil, false},
		"value too long": {[]byte(strings.Repeat("v", maxPrefixValue+1)), false},
	} {
		if st, _ := claim.call(t, nil, tc.args, tc.root, 512); st != statusBadArgument {
			t.Errorf("claim, %s: status %d, want BAD_ARGUMENT", name, st)
		}
	}
	clock.advance(time.Minute + time.Millisecond) // everything expires
	for i := 0; p.shared.len() < maxSharedKeys; i++ {
		if st := p.shared.set(binary.LittleEndian.AppendUint64([]byte("fill/"), uint64(i)), []byte("x"), 0, sharedPolicy{}); st != statusOK {
			t.Fatalf("filling the store: status %d", st)
		}
	}
	if st, _ := doClaim(short, "e3"); st != statusInternalFailure {
		t.Fatalf("claim into a full store: status %d, want INTERNAL_FAILURE", st)
	}
}

// Instances claiming one new prompt at once, each for its own endpoint,
// after each matched it and found nothing: exactly one claim is made,
// every other learns its value, and the keys hold it. With record instead the last write would win and the prompt
// would be split over endpoints.
func TestPromptPrefixClaimHammer(t *testing.T) {
	const instances, rounds = 4, 60
	h := newTestHost(t)
	pc := fixtureConfig(t, "ok")
	pc.Instances = instances
	p := h.mustLoad(t, pc)
	args := prefixMatchArgs(64, 1<<20, 0.3, "ca/h/b")
	callers := make([][2]*promptHashCaller, instances)
	for i := range callers {
		in := p.slots[i].inst.Load()
		s := &stream{p: p, inst: in, ex: newExchange("/v1/chat/completions"), id: 2}
		callers[i] = [2]*promptHashCaller{
			{p: p, in: in, s: s, name: prefixMatchName, stack: make([]uint64, 6)},
			{p: p, in: in, s: s, name: prefixClaimName, stack: make([]uint64, 6)},
		}
	}
	for r := 0; r < rounds; r++ {
		body := chatBody(fmt.Sprintf("conversation %d: ", r) + strings.Repeat("tell me more ", 40))
		results := make([][]byte, instances)
		var matched, wg sync.WaitGroup
		matched.Add(instances)
		for i := range callers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				st, _ := callers[i][0].call(t, body, args, false, 512)
				matched.Done()
				if st != statusOK {
					t.Errorf("match: status %d", st)
					return
				}
				// Every instance has matched (found nothing) before any
				// claims: the claims race each other.
				matched.Wait()
				st, res := callers[i][1].call(t, nil, []byte(fmt.Sprintf("e%d", i)), false, 512)
				if st != statusOK {
					t.Errorf("claim: status %d", st)
				}
				results[i] = res
			}()
		}
		wg.Wait()
		winner := -1
		for i, res := range results {
			if len(res) == 0 {
				if winner >= 0 {
					t.Fatalf("round %d: instances %d and %d both made their claim", r, winner, i)
				}
				winner = i
			}
		}
		if winner < 0 {
			t.Fatalf("round %d: no claim made: %q", r, results)
		}
		for i, res := range results {
			if i != winner && (len(res) < 4 || string(res[4:]) != fmt.Sprintf("e%d", winner)) {
				t.Fatalf("round %d: instance %d got %q, want e%d", r, i, res, winner)
			}
		}
		text, model, _ := prompthash.Quick(body)
		hs := prompthash.AppendBlocks(nil, prompthash.Seed(model), text, 64, 1<<20)
		if v, _ := p.shared.peek(nil, prefixKey("ca/h/b", hs, len(hs))); string(v) != fmt.Sprintf("e%d", winner) {
			t.Fatalf("round %d: the prompt's key holds %q, want e%d", r, v, winner)
		}
	}
}
