package wasm

import (
	"bytes"
	"testing"
)

func TestNormalizePropertyPath(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want string
		ok   bool
	}{
		{"request\x00path", "request.path", true},
		{"request.path", "request.path", true},
		{"request\x00path\x00", "request.path", true},
		{"plugin_name", "plugin_name", true},
		{"", "", false},
		{"\x00", "", false},
		{"request\x00\x00path", "", false},
		{"\x00request", "", false},
		{"request.", "", false},
	} {
		got, ok := normalizePropertyPath(nil, []byte(tc.in))
		if ok != tc.ok || (ok && string(got) != tc.want) {
			t.Errorf("normalize(%q) = %q, %v; want %q, %v", tc.in, got, ok, tc.want, tc.ok)
		}
	}
	if lookupProperty([]byte("request.path")) != propRequestPath ||
		lookupProperty([]byte("sluice.upstream")) != propUpstream ||
		lookupProperty([]byte("request")) != propUnknown {
		t.Error("lookupProperty")
	}
}

func TestPropertyLookupDoesNotAllocate(t *testing.T) {
	path := []byte("request\x00url_path")
	buf := make([]byte, 0, 64)
	allocs := testing.AllocsPerRun(100, func() {
		name, _ := normalizePropertyPath(buf[:0], path)
		if lookupProperty(name) != propRequestURLPath {
			t.Fatal("lookup failed")
		}
	})
	if allocs != 0 {
		t.Errorf("%v allocations per lookup", allocs)
	}
}

func FuzzPropertyPath(f *testing.F) {
	for _, s := range []string{"request\x00path", "request.path", "plugin_name", "", "\x00\x00", "a..b", "sluice\x00upstream\x00"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, path []byte) {
		name, ok := normalizePropertyPath(nil, path)
		_ = lookupProperty(name)
		if !ok {
			return
		}
		if bytes.IndexByte(name, 0) >= 0 || name[0] == '.' || name[len(name)-1] == '.' || bytes.Contains(name, []byte("..")) {
			t.Fatalf("normalize(%q) = %q", path, name)
		}
		want := bytes.ReplaceAll(bytes.TrimRight(path, "\x00"), []byte{0}, []byte{'.'})
		if !bytes.Equal(name, want) {
			t.Fatalf("normalize(%q) = %q, want %q", path, name, want)
		}
	})
}
