package wasm

import (
	"bytes"
	"testing"

	"github.com/sluice-proxy/sluice/proxy"
)

func TestPairsSpecExample(t *testing.T) {
	// The spec's example: {"a": "1"}, {"b": "22"}.
	want := []byte{2, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0,
		'a', 0, '1', 0, 'b', 0, '2', '2', 0}
	var h proxy.Headers
	h.AddString("a", "1")
	h.AddString("b", "22")
	if got := appendPairs(nil, &h); !bytes.Equal(got, want) {
		t.Fatalf("encode = %v, want %v", got, want)
	}
	var back proxy.Headers
	if !decodePairsInto(&back, want, false) || back.Len() != 2 {
		t.Fatalf("decode failed: %d fields", back.Len())
	}
	if v, _ := back.GetString("b"); string(v) != "22" {
		t.Errorf("b = %q", v)
	}
}

func TestDecodePairs(t *testing.T) {
	f := func(name string, data []byte, ok bool, want ...string) {
		t.Helper()
		var h proxy.Headers
		h.AddString("keep", "me")
		if got := decodePairsInto(&h, data, false); got != ok {
			t.Fatalf("%s: decode ok = %v, want %v", name, got, ok)
		}
		if !ok {
			if h.Len() != 1 {
				t.Errorf("%s: a failed decode changed the map", name)
			}
			return
		}
		var got []string
		for i := 0; i < h.Len(); i++ {
			k, v := h.At(i)
			got = append(got, string(k)+"="+string(v))
		}
		if len(got) != len(want) {
			t.Fatalf("%s: got %q, want %q", name, got, want)
		}
		for i := range got {
			if got[i] != want[i] {
				t.Errorf("%s: field %d = %q, want %q", name, i, got[i], want[i])
			}
		}
	}
	f("empty", nil, true)
	f("single NUL", []byte{0}, true)
	f("zero count", []byte{0, 0, 0, 0}, true)
	f("short", []byte{1, 0}, false)
	f("count too big", []byte{0, 0, 0, 0x40, 0, 0, 0, 0}, false)
	f("length wraps", []byte{1, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 1, 0, 0, 0, 'a', 0, 'b', 0}, false)
	f("value past end", []byte{1, 0, 0, 0, 1, 0, 0, 0, 5, 0, 0, 0, 'a', 0, 'b', 0}, false)
	var h proxy.Headers
	h.AddString("x-a", "1")
	h.AddString(":path", "/p")
	h.AddString("X-B", "")
	f("pseudo first, lower-cased", appendPairs(nil, &h), true, ":path=/p", "x-a=1", "x-b=")
}

func FuzzPairs(f *testing.F) {
	var h proxy.Headers
	h.AddString(":method", "GET")
	h.AddString("a", "1")
	f.Add(appendPairs(nil, &h))
	f.Add([]byte{})
	f.Add([]byte{0})
	f.Add([]byte{1, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 1, 0, 0, 0, 'a', 0, 'b', 0})
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 1, 2, 3})
	f.Fuzz(func(t *testing.T, data []byte) {
		var r pairsReader
		if !r.validate(data) {
			return
		}
		allValid := true
		for k, v, ok := r.next(); ok; k, v, ok = r.next() {
			allValid = allValid && validField(k, v)
		}
		var h1 proxy.Headers
		if got := decodePairsInto(&h1, data, false); got != allValid {
			t.Fatalf("decode = %v for a well-formed map whose fields are valid: %v", got, allValid)
		}
		if !allValid {
			return
		}
		// Re-encoding and decoding again is stable.
		enc := appendPairs(nil, &h1)
		var h2 proxy.Headers
		if !decodePairsInto(&h2, enc, false) {
			t.Fatalf("re-encoded map does not decode: %v", enc)
		}
		if h1.Len() != h2.Len() {
			t.Fatalf("round trip changed the field count: %d -> %d", h1.Len(), h2.Len())
		}
		size, ok := pairsSize(&h1)
		if !ok || int(size) != len(enc) {
			t.Fatalf("pairsSize = %d, encoded %d", size, len(enc))
		}
		for i := 0; i < h1.Len(); i++ {
			k1, v1 := h1.At(i)
			k2, v2 := h2.At(i)
			if !bytes.Equal(k1, k2) || !bytes.Equal(v1, v2) {
				t.Fatalf("field %d: %q=%q became %q=%q", i, k1, v1, k2, v2)
			}
		}
	})
}
