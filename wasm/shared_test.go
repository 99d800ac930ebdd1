package wasm

import (
	"encoding/binary"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/sluice-proxy/sluice/proxy"
)

// fakeClock is an injectable clock for a sharedData.
type fakeClock struct{ ns int64 }

func (c *fakeClock) now() int64              { return c.ns }
func (c *fakeClock) advance(d time.Duration) { c.ns += int64(d) }

func newClockedShared() (*sharedData, *fakeClock) {
	d := newSharedData()
	c := &fakeClock{ns: 1}
	d.now = c.now
	return d, c
}

func mustGet(t *testing.T, d *sharedData, key string) ([]byte, uint32) {
	t.Helper()
	v, cas, ok := d.get(nil, []byte(key))
	if !ok {
		t.Fatalf("get %q: NOT_FOUND", key)
	}
	return v, cas
}

// mustMiss checks key is missing and returns the creation CAS the get
// gave.
func mustMiss(t *testing.T, d *sharedData, key string) uint32 {
	t.Helper()
	v, cas, ok := d.get(nil, []byte(key))
	if ok {
		t.Fatalf("get %q = %d bytes, want NOT_FOUND", key, len(v))
	}
	if cas == 0 {
		t.Fatalf("get %q: NOT_FOUND without a creation CAS", key)
	}
	return cas
}

func mustSet(t *testing.T, d *sharedData, key, value string, cas uint32, pol sharedPolicy) {
	t.Helper()
	if st := d.set([]byte(key), []byte(value), cas, pol); st != statusOK {
		t.Fatalf("set %q: status %d", key, st)
	}
}

func TestSharedDataTTL(t *testing.T) {
	d, c := newClockedShared()
	ttl := sharedPolicy{ttl: 10 * time.Second}
	mustSet(t, d, "a", "1", 0, ttl)
	mustSet(t, d, "forever", "x", 0, sharedPolicy{})
	c.advance(9 * time.Second)
	mustGet(t, d, "a")
	// A write restarts the time to live.
	mustSet(t, d, "a", "2", 0, ttl)
	c.advance(9 * time.Second)
	if v, _ := mustGet(t, d, "a"); string(v) != "2" {
		t.Fatalf("a = %q", v)
	}
	c.advance(time.Second)
	mustMiss(t, d, "a")
	mustGet(t, d, "forever")
	if d.expired != 1 || d.len() != 1 || d.bytes != len("forever")+1 {
		t.Fatalf("expired %d, len %d, bytes %d", d.expired, d.len(), d.bytes)
	}
	// A write without a TTL clears the deadline.
	mustSet(t, d, "b", "1", 0, ttl)
	mustSet(t, d, "b", "1", 0, sharedPolicy{})
	c.advance(time.Hour)
	mustGet(t, d, "b")
}

func TestSharedDataEvictOldestWhenFull(t *testing.T) {
	d, _ := newClockedShared()
	evict := sharedPolicy{evict: true}
	// One pinned key (no eviction policy) is never evicted.
	mustSet(t, d, "pinned", "p", 0, sharedPolicy{})
	for i := 1; i < maxSharedKeys; i++ {
		mustSet(t, d, "k"+strconv.Itoa(i), "v", 0, evict)
	}
	// Rewriting k1 makes it the newest: k2 is now the oldest.
	mustSet(t, d, "k1", "v2", 0, evict)
	// Full: a write without eviction is refused, as before.
	if st := d.set([]byte("new"), []byte("v"), 0, sharedPolicy{}); st != statusInternalFailure {
		t.Fatalf("set on a full store without eviction: status %d", st)
	}
	mustSet(t, d, "new1", "v", 0, evict)
	mustMiss(t, d, "k2")
	mustSet(t, d, "new2", "v", 0, evict)
	mustMiss(t, d, "k3")
	mustGet(t, d, "k1")
	mustGet(t, d, "k4")
	mustGet(t, d, "pinned")
	if d.evicted != 2 || d.len() != maxSharedKeys {
		t.Fatalf("evicted %d, len %d", d.evicted, d.len())
	}
}

func TestSharedDataEvictForBytes(t *testing.T) {
	d, _ := newClockedShared()
	evict := sharedPolicy{evict: true}
	big := string(make([]byte, maxSharedBytes/4))
	for i := range 3 {
		mustSet(t, d, fmt.Sprint("b", i), big, 0, evict)
	}
	// The fourth does not fit beside three (keys count too): b0 goes.
	mustSet(t, d, "b3", big, 0, evict)
	mustMiss(t, d, "b0")
	mustGet(t, d, "b1")
	// Growing the oldest entry evicts the next oldest, not itself.
	mustSet(t, d, "b1", big+big, 0, evict)
	mustMiss(t, d, "b2")
	mustGet(t, d, "b1")
	if d.bytes > maxSharedBytes {
		t.Fatalf("bytes %d over the cap", d.bytes)
	}
	// A value bigger than the whole store cannot be made room for.
	if st := d.set([]byte("huge"), make([]byte, maxSharedBytes), 0, evict); st != statusInternalFailure {
		t.Fatalf("oversized set: status %d", st)
	}
}

// TestSharedDataCASAfterRemoval: a CAS read before an eviction, expiry or
// delete must not succeed afterwards, even once the key is written again;
// in a store that never removed anything a CAS set of a missing key
// succeeds, as in Envoy.
func TestSharedDataCASAfterRemoval(t *testing.T) {
	d, c := newClockedShared()
	if st := d.set([]byte("fresh"), []byte("v"), 7, sharedPolicy{}); st != statusOK {
		t.Fatalf("Envoy behaviour: CAS set of a never-written key: status %d", st)
	}
	ttl := sharedPolicy{ttl: time.Second}
	mustSet(t, d, "k", "v1", 0, ttl)
	_, old := mustGet(t, d, "k")
	c.advance(time.Second)
	mustMiss(t, d, "k")
	if st := d.set([]byte("k"), []byte("v2"), old, ttl); st != statusCASMismatch {
		t.Fatalf("CAS set of an expired key: status %d, want CAS_MISMATCH", st)
	}
	// Recreated (cas 0): the old CAS still fails, the new one works.
	mustSet(t, d, "k", "v3", 0, ttl)
	if st := d.set([]byte("k"), []byte("v4"), old, ttl); st != statusCASMismatch {
		t.Fatalf("old CAS on a recreated key: status %d", st)
	}
	_, cur := mustGet(t, d, "k")
	if cur == old {
		t.Fatalf("recreated key reuses CAS %d", cur)
	}
	mustSet(t, d, "k", "v5", cur, ttl)

	// Eviction.
	e, _ := newClockedShared()
	evict := sharedPolicy{evict: true}
	mustSet(t, e, "victim", "v", 0, evict)
	_, vcas := mustGet(t, e, "victim")
	for i := 1; i < maxSharedKeys; i++ {
		mustSet(t, e, "f"+strconv.Itoa(i), "v", 0, evict)
	}
	mustSet(t, e, "one-more", "v", 0, evict)
	mustMiss(t, e, "victim")
	if st := e.set([]byte("victim"), []byte("v"), vcas, evict); st != statusCASMismatch {
		t.Fatalf("CAS set of an evicted key: status %d, want CAS_MISMATCH", st)
	}
}

// TestSharedDataCreationCAS: of two instances that found a key missing,
// only the first set with its creation CAS creates it; a creation CAS
// also fails once the key was created and removed since the get; and the
// CAS counter's wrap does not make creations fail for good.
func TestSharedDataCreationCAS(t *testing.T) {
	d, _ := newClockedShared()
	a, b := mustMiss(t, d, "k"), mustMiss(t, d, "k")
	if a == b {
		t.Fatalf("two gets gave the same creation CAS %d", a)
	}
	mustSet(t, d, "k", "from a", a, sharedPolicy{})
	if st := d.set([]byte("k"), []byte("from b"), b, sharedPolicy{}); st != statusCASMismatch {
		t.Fatalf("second creator: status %d, want CAS_MISMATCH", st)
	}
	v, cas := mustGet(t, d, "k")
	if string(v) != "from a" || cas == a || cas == b {
		t.Fatalf("k = %q cas %d (creation CAS %d, %d)", v, cas, a, b)
	}
	// A creation CAS is nobody's entry CAS: a set with it on the key
	// created since fails, and the key's own CAS still works.
	c := mustMiss(t, d, "other")
	mustSet(t, d, "other", "x", 0, sharedPolicy{})
	if st := d.set([]byte("other"), []byte("y"), c, sharedPolicy{}); st != statusCASMismatch {
		t.Fatalf("creation CAS on a key created since: status %d", st)
	}
	// Created and deleted since the get: still missing, but the creation
	// CAS is stale.
	c = mustMiss(t, d, "gone")
	mustSet(t, d, "gone", "x", 0, sharedPolicy{})
	if st := d.del([]byte("gone"), 0); st != statusOK {
		t.Fatalf("delete: status %d", st)
	}
	if st := d.set([]byte("gone"), []byte("y"), c, sharedPolicy{}); st != statusCASMismatch {
		t.Fatalf("creation CAS of a key created and removed since: status %d", st)
	}
	mustSet(t, d, "gone", "y", mustMiss(t, d, "gone"), sharedPolicy{})

	// The wrap: a removal just below it, then the counter goes round.
	w, _ := newClockedShared()
	w.lastCAS = 1<<32 - 3
	mustSet(t, w, "old", "x", 0, sharedPolicy{})
	if st := w.del([]byte("old"), 0); st != statusOK {
		t.Fatalf("delete: status %d", st)
	}
	mustMiss(t, w, "n") // the last value before the wrap
	mustSet(t, w, "n", "x", mustMiss(t, w, "n"), sharedPolicy{})
	if _, cas := mustGet(t, w, "n"); cas > 3 {
		t.Fatalf("cas %d after the wrap", cas)
	}
}

func TestSharedDataDelete(t *testing.T) {
	d, _ := newClockedShared()
	if st := d.del([]byte("none"), 0); st != statusNotFound {
		t.Fatalf("delete of a missing key: status %d", st)
	}
	mustSet(t, d, "k", "v", 0, sharedPolicy{ttl: time.Minute, evict: true})
	_, cas := mustGet(t, d, "k")
	if st := d.del([]byte("k"), cas+1); st != statusCASMismatch {
		t.Fatalf("delete with a stale CAS: status %d", st)
	}
	if st := d.del([]byte("k"), cas); st != statusOK {
		t.Fatalf("delete: status %d", st)
	}
	mustMiss(t, d, "k")
	if st := d.set([]byte("k"), []byte("v"), cas, sharedPolicy{}); st != statusCASMismatch {
		t.Fatalf("CAS set of a deleted key: status %d", st)
	}
	if d.bytes != 0 || len(d.classes) != 0 || len(d.byTTL) != 0 || d.evictOrder != (fifo{}) {
		t.Fatalf("delete left state: bytes %d, classes %d, list %+v", d.bytes, len(d.classes), d.evictOrder)
	}
	mustSet(t, d, "k", "v", 0, sharedPolicy{})
	if st := d.del([]byte("k"), 0); st != statusOK {
		t.Fatalf("unconditional delete: status %d", st)
	}
}

func TestSharedRulesPolicyFor(t *testing.T) {
	r := newSharedRules(proxy.PluginSharedData{
		TTL:      proxy.Duration(time.Minute),
		Prefixes: []proxy.PluginSharedDataPrefix{{Prefix: "op/", TTL: proxy.Duration(time.Second), EvictOldest: true}},
	})
	if st := r.setGuest("op/x", sharedPolicy{ttl: time.Hour}); st != statusOK {
		t.Fatal(st)
	}
	if st := r.setGuest("g/", sharedPolicy{ttl: 2 * time.Second, evict: true}); st != statusOK {
		t.Fatal(st)
	}
	if st := r.setGuest("g/", sharedPolicy{ttl: 3 * time.Second}); st != statusOK { // replaces
		t.Fatal(st)
	}
	for key, want := range map[string]sharedPolicy{
		"op/x1": {ttl: time.Second, evict: true}, // the operator wins
		"g/1":   {ttl: 3 * time.Second},
		"other": {ttl: time.Minute},
		"g":     {ttl: time.Minute},
	} {
		if got := r.policyFor([]byte(key)); got != want {
			t.Errorf("policyFor(%q) = %+v, want %+v", key, got, want)
		}
	}
	for i := 2; i < maxGuestSharedRules; i++ {
		if st := r.setGuest(fmt.Sprint("p", i), sharedPolicy{}); st != statusOK {
			t.Fatalf("rule %d: %d", i, st)
		}
	}
	if st := r.setGuest("one-too-many", sharedPolicy{}); st != statusBadArgument {
		t.Fatalf("rule 17: status %d", st)
	}
}

func TestParseSharedArgs(t *testing.T) {
	le := func(a, b uint32, rest string) []byte {
		out := binary.LittleEndian.AppendUint32(nil, a)
		out = binary.LittleEndian.AppendUint32(out, b)
		return append(out, rest...)
	}
	if _, _, ok := parseSharedDeleteArgs([]byte{1, 2, 3}); ok {
		t.Error("3-byte delete args accepted")
	}
	if cas, key, ok := parseSharedDeleteArgs(le(9, 0, "")[:4]); !ok || cas != 9 || len(key) != 0 {
		t.Errorf("delete args: %d %q %v", cas, key, ok)
	}
	if p, pol, ok := parseSharedPolicyArgs(le(1500, 1, "ca/")); !ok || string(p) != "ca/" || pol != (sharedPolicy{ttl: 1500 * time.Millisecond, evict: true}) {
		t.Errorf("policy args: %q %+v %v", p, pol, ok)
	}
	for name, args := range map[string][]byte{
		"short": le(1, 0, "")[:7],
		"flags": le(1, 2, "x"),
		"ttl":   le(maxPolicyTTLMillis+1, 0, ""),
		"long":  le(1, 0, string(make([]byte, maxSharedPrefixBytes+1))),
	} {
		if _, _, ok := parseSharedPolicyArgs(args); ok {
			t.Errorf("%s: accepted", name)
		}
	}
}

func FuzzParseSharedArgs(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte{1, 0, 0, 0, 1, 0, 0, 0, 'c', 'a'})
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, args []byte) {
		if cas, key, ok := parseSharedDeleteArgs(args); ok {
			if len(key) != len(args)-4 || cas != binary.LittleEndian.Uint32(args) {
				t.Fatalf("delete: %d %q from %x", cas, key, args)
			}
		} else if len(args) >= 4 {
			t.Fatalf("delete refused %x", args)
		}
		if p, pol, ok := parseSharedPolicyArgs(args); ok {
			if len(p) > maxSharedPrefixBytes || pol.ttl < 0 || pol.ttl > maxPolicyTTLMillis*time.Millisecond {
				t.Fatalf("policy: %q %+v from %x", p, pol, args)
			}
		}
		// Run the result against a store and a rule set: no panic.
		d, _ := newClockedShared()
		r := newSharedRules(proxy.PluginSharedData{})
		p := &Plugin{shared: d, sharedRules: r}
		if _, st := foreignSharedDataPolicy(p, args, nil); st == statusOK {
			mustSet(t, d, string(args), "v", 0, r.policyFor(args))
		}
		_, _ = foreignSharedDataDelete(p, args, nil)
	})
}

// TestHammerSharedDataBounded races writers with TTLs and eviction,
// readers, deleters and a moving clock on one full store: no panic or
// race, the caps hold, and every structure agrees with the map.
func TestHammerSharedDataBounded(t *testing.T) {
	d := newSharedData()
	var mu sync.Mutex
	var clock int64 = 1
	d.now = func() int64 { mu.Lock(); defer mu.Unlock(); clock += int64(time.Millisecond); return clock }
	pols := []sharedPolicy{{}, {evict: true}, {ttl: 50 * time.Millisecond, evict: true}, {ttl: time.Second}}
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var buf []byte
			for i := range 4000 {
				key := []byte("k" + strconv.Itoa((g*7919+i*31)%(maxSharedKeys+maxSharedKeys/2)))
				switch i % 5 {
				case 0, 1:
					d.set(key, key, 0, pols[(g+i)%len(pols)])
				case 2:
					if _, cas, ok := d.get(buf[:0], key); ok {
						d.set(key, []byte("x"), cas, pols[i%len(pols)])
					}
				case 3:
					d.del(key, 0)
				case 4:
					buf, _, _ = d.get(buf[:0], key)
				}
			}
		}()
	}
	wg.Wait()
	d.mu.Lock()
	defer d.mu.Unlock()
	inList := checkShared(t, d, true)
	t.Logf("%d keys, %d evictable, %d classes, %d expired, %d evicted", len(d.m), inList, len(d.classes), d.expired, d.evicted)
}

func TestSharedDataMetrics(t *testing.T) {
	d, c := newClockedShared()
	set := metrics.NewSet()
	d.registerMetrics(set, `v"1`)
	for i := range maxSharedKeys {
		mustSet(t, d, "k"+strconv.Itoa(i), "v", 0, sharedPolicy{evict: true, ttl: time.Duration(1+i%2) * time.Second})
	}
	mustSet(t, d, "one-more", "v", 0, sharedPolicy{evict: true})
	if st := d.set([]byte("refused"), []byte("v"), 0, sharedPolicy{}); st != statusInternalFailure {
		t.Fatalf("status %d", st)
	}
	c.advance(time.Second)
	d.len()
	var b strings.Builder
	set.WritePrometheus(&b)
	for _, want := range []string{
		`sluice_shared_data_evicted_total{vm_id="v\"1"} 1`,
		`sluice_shared_data_refused_total{vm_id="v\"1"} 1`,
		`sluice_shared_data_expired_total{vm_id="v\"1"} 8191`, // even i: 1s; k0 was evicted
		`sluice_shared_data_keys{vm_id="v\"1"} 8193`,
	} {
		if !strings.Contains(b.String(), want+"\n") {
			t.Errorf("missing %s in\n%s", want, b.String())
		}
	}
}

// TestSharedDataWrapThenRemoveOld: an entry written before the CAS
// counter wraps and removed after it (a rate-limit window expiring) must
// not make every later creation CAS read as stale. A get of a missing
// key issues a CAS, so a busy store wraps in hours, not years.
func TestSharedDataWrapThenRemoveOld(t *testing.T) {
	d, c := newClockedShared()
	d.lastCAS = 1<<32 - 3
	mustSet(t, d, "window", "1", 0, sharedPolicy{ttl: time.Second}) // cas 2^32-2
	mustSet(t, d, "keep", "1", 0, sharedPolicy{})                   // cas 2^32-1
	_, keepCAS := mustGet(t, d, "keep")
	mustMiss(t, d, "a") // the counter wraps here
	c.advance(time.Second)
	mustMiss(t, d, "window") // expired after the wrap
	for _, k := range []string{"x", "y", "z"} {
		cas := mustMiss(t, d, k)
		if st := d.set([]byte(k), []byte("v"), cas, sharedPolicy{}); st != statusOK {
			t.Fatalf("creation CAS %d of %q after the wrap: status %d, want OK", cas, k, st)
		}
	}
	// The wrap renumbers live entries: a CAS read before it no longer
	// matches (the guest reads again), the new one does.
	if st := d.set([]byte("keep"), []byte("2"), keepCAS, sharedPolicy{}); st != statusCASMismatch {
		t.Fatalf("pre-wrap CAS of a live key: status %d, want CAS_MISMATCH", st)
	}
	_, cas := mustGet(t, d, "keep")
	mustSet(t, d, "keep", "2", cas, sharedPolicy{})
}
