package wasm

import (
	"encoding/binary"
	"fmt"
	"testing"
	"time"

	"github.com/sluice-proxy/sluice/proxy"
)

// getManyArgs and setManyArgs encode the batch functions' arguments.
func getManyArgs(keys ...string) []byte {
	var b []byte
	for _, k := range keys {
		b = binary.LittleEndian.AppendUint32(b, uint32(len(k)))
		b = append(b, k...)
	}
	return b
}

type sharedWrite struct {
	key, value string
	cas        uint32
}

func setManyArgs(ws ...sharedWrite) []byte {
	var b []byte
	for _, w := range ws {
		b = binary.LittleEndian.AppendUint32(b, w.cas)
		b = append(b, getManyArgs(w.key, w.value)...) // the same framing
	}
	return b
}

// sharedRead is one key of a get_many result.
type sharedRead struct {
	value string
	cas   uint32
	found bool
}

// decodeGetMany splits a get_many result, failing t on a malformed one.
func decodeGetMany(t testing.TB, res []byte) []sharedRead {
	t.Helper()
	var out []sharedRead
	for len(res) > 0 {
		if len(res) < 8 {
			t.Fatalf("get_many result: %d bytes left", len(res))
		}
		r := sharedRead{cas: binary.LittleEndian.Uint32(res)}
		n := binary.LittleEndian.Uint32(res[4:])
		res = res[8:]
		if n != sharedMissing {
			if uint64(n) > uint64(len(res)) {
				t.Fatalf("get_many result: value of %d bytes, %d left", n, len(res))
			}
			r.value, r.found, res = string(res[:n]), true, res[n:]
		}
		out = append(out, r)
	}
	return out
}

func newBatchPlugin(c proxy.PluginSharedData) (*Plugin, *fakeClock) {
	d, clock := newClockedShared()
	return &Plugin{shared: d, sharedRules: newSharedRules(c)}, clock
}

// TestSharedDataGetSetMany: a batch of writes applies each as
// proxy_set_shared_data would (its CAS checked, its key's policy
// applied) and reports each status; a batch of reads returns each value
// and CAS as proxy_get_shared_data would, and a missing key's creation
// CAS.
func TestSharedDataGetSetMany(t *testing.T) {
	p, clock := newBatchPlugin(proxy.PluginSharedData{Prefixes: []proxy.PluginSharedDataPrefix{{Prefix: "tmp/", TTL: proxy.Duration(time.Second)}}})
	mustSet(t, p.shared, "old", "v0", 0, sharedPolicy{})
	_, oldCAS := mustGet(t, p.shared, "old")
	res, st := foreignSharedDataSetMany(p, setManyArgs(
		sharedWrite{key: "a", value: "1"},
		sharedWrite{key: "old", value: "stale", cas: oldCAS + 1000}, // wrong CAS
		sharedWrite{key: "tmp/x", value: "short-lived"},
		sharedWrite{key: "", value: ""}, // the empty key is a key
	), nil)
	if st != statusOK || string(res) != string([]byte{byte(statusOK), byte(statusCASMismatch), byte(statusOK), byte(statusOK)}) {
		t.Fatalf("set_many: status %d, result %v", st, res)
	}
	res, st = foreignSharedDataGetMany(p, getManyArgs("a", "old", "missing", "tmp/x", ""), nil)
	if st != statusOK {
		t.Fatalf("get_many: status %d", st)
	}
	got := decodeGetMany(t, res)
	want := []string{"1", "v0", "", "short-lived", ""}
	if len(got) != len(want) {
		t.Fatalf("get_many: %d results, want %d", len(got), len(want))
	}
	for i, k := range []string{"a", "old", "missing", "tmp/x", ""} {
		if k == "missing" {
			if got[i].found {
				t.Errorf("missing key found: %+v", got[i])
			}
			continue
		}
		v, cas := mustGet(t, p.shared, k)
		if !got[i].found || got[i].value != want[i] || string(v) != want[i] || got[i].cas != cas {
			t.Errorf("key %q: %+v, want %q with CAS %d", k, got[i], want[i], cas)
		}
	}
	// The missing key's creation CAS creates it once.
	create := setManyArgs(sharedWrite{key: "missing", value: "mine", cas: got[2].cas})
	if res, st := foreignSharedDataSetMany(p, create, nil); st != statusOK || res[0] != byte(statusOK) {
		t.Fatalf("create with the creation CAS: %d %v", st, res)
	}
	if res, _ := foreignSharedDataSetMany(p, create, nil); res[0] != byte(statusCASMismatch) {
		t.Fatalf("second create with the same CAS: %v, want CAS_MISMATCH", res)
	}
	// The operator's TTL for tmp/ applied to the batch's write.
	clock.advance(2 * time.Second)
	if got := decodeGetMany(t, must(foreignSharedDataGetMany(p, getManyArgs("tmp/x", "a"), nil))); got[0].found || !got[1].found {
		t.Fatalf("after the TTL: %+v, want tmp/x expired and a kept", got)
	}
}

func must(res []byte, st status) []byte {
	if st != statusOK {
		panic(fmt.Sprintf("status %d", st))
	}
	return res
}

// TestSharedDataManyBadArguments: malformed batches are BAD_ARGUMENT and
// change nothing.
func TestSharedDataManyBadArguments(t *testing.T) {
	p, _ := newBatchPlugin(proxy.PluginSharedData{})
	var tooMany []string
	var tooManyWrites []sharedWrite
	for i := range maxSharedBatch + 1 {
		tooMany = append(tooMany, fmt.Sprint(i))
		tooManyWrites = append(tooManyWrites, sharedWrite{key: fmt.Sprint(i), value: "v"})
	}
	good := setManyArgs(sharedWrite{key: "k", value: "v"})
	for name, args := range map[string][]byte{
		"empty":           nil,
		"short length":    {1, 0},
		"length too long": getManyArgs("abc")[:5],
		"trailing byte":   append(getManyArgs("k"), 0),
		"too many":        getManyArgs(tooMany...),
	} {
		if _, st := foreignSharedDataGetMany(p, args, nil); st != statusBadArgument {
			t.Errorf("get_many %s: status %d, want BAD_ARGUMENT", name, st)
		}
	}
	for name, args := range map[string][]byte{
		"empty":             nil,
		"no value":          good[:len(good)-5],
		"value too long":    good[:len(good)-1],
		"good then garbage": append(append([]byte(nil), good...), 7, 0, 0),
		"too many":          setManyArgs(tooManyWrites...),
	} {
		if _, st := foreignSharedDataSetMany(p, args, nil); st != statusBadArgument {
			t.Errorf("set_many %s: status %d, want BAD_ARGUMENT", name, st)
		}
	}
	if n := p.shared.len(); n != 0 {
		t.Fatalf("malformed batches wrote %d keys", n)
	}
	// maxSharedBatch is accepted.
	if _, st := foreignSharedDataSetMany(p, setManyArgs(tooManyWrites[:maxSharedBatch]...), nil); st != statusOK {
		t.Fatalf("set_many of %d: status %d", maxSharedBatch, st)
	}
	if _, st := foreignSharedDataGetMany(p, getManyArgs(tooMany[:maxSharedBatch]...), nil); st != statusOK {
		t.Fatalf("get_many of %d: status %d", maxSharedBatch, st)
	}
}

// FuzzSharedDataMany runs arbitrary arguments through both batch
// functions against one store: no panic, and an accepted batch gets one
// result per key or write.
func FuzzSharedDataMany(f *testing.F) {
	f.Add(getManyArgs("a", "", "ca/x"))
	f.Add(setManyArgs(sharedWrite{key: "a", value: "1"}, sharedWrite{key: "b", value: "", cas: 3}))
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 1, 0, 0, 0})
	f.Fuzz(func(t *testing.T, args []byte) {
		p, _ := newBatchPlugin(proxy.PluginSharedData{})
		if n, ok := countSharedSetMany(args); ok {
			res, st := foreignSharedDataSetMany(p, args, nil)
			if st != statusOK || len(res) != n {
				t.Fatalf("set_many of %d writes: status %d, %d results", n, st, len(res))
			}
		} else if _, st := foreignSharedDataSetMany(p, args, nil); st != statusBadArgument {
			t.Fatalf("set_many refused by the count but status %d", st)
		}
		if n, ok := countSharedGetMany(args); ok {
			res, st := foreignSharedDataGetMany(p, args, nil)
			if st != statusOK || len(decodeGetMany(t, res)) != n {
				t.Fatalf("get_many of %d keys: status %d", n, st)
			}
		} else if _, st := foreignSharedDataGetMany(p, args, nil); st != statusBadArgument {
			t.Fatalf("get_many refused by the count but status %d", st)
		}
	})
}
