package main

import (
	"strings"
	"testing"
)

func TestParseRequest(t *testing.T) {
	chat := `{"model":"m","messages":[{"role":"user","content":"hi"}],"user":"u1"}`
	r, ok := parseRequest([]byte(chat))
	if !ok || string(r.text) != `[{"role":"user","content":"hi"}]` || string(r.user) != `"u1"` {
		t.Fatalf("chat: %q %q %v", r.text, r.user, ok)
	}
	for _, u := range []string{`""`, `null`, `7`} {
		if r, _ := parseRequest([]byte(`{"model":"m","prompt":"p","user":` + u + `}`)); r.user != nil {
			t.Errorf("user %s names a session %q", u, r.user)
		}
	}
	comp, ok := parseRequest([]byte(`{"model":"m","prompt":"once upon"}`))
	if !ok || string(comp.text) != `"once upon"` {
		t.Fatalf("completion: %q %v", comp.text, ok)
	}
	other, _ := parseRequest([]byte(`{"model":"n","prompt":"once upon"}`))
	if other.seed == comp.seed {
		t.Error("models share a hash seed")
	}
	for _, body := range []string{``, `[]`, `{"model":"m"}`, `{"messages":`, `not json`} {
		if _, ok := parseRequest([]byte(body)); ok {
			t.Errorf("%q parsed", body)
		}
	}
}

func TestBlockHashes(t *testing.T) {
	a := blockHashes(nil, 1, []byte(strings.Repeat("a", 64)+"b"+strings.Repeat("c", 63)), 64, 1<<20)
	b := blockHashes(nil, 1, []byte(strings.Repeat("a", 64)+"X"+strings.Repeat("c", 63)+"tail"), 64, 1<<20)
	if len(a) != 2 || len(b) != 2 {
		t.Fatalf("blocks: %d %d (a partial chunk is not hashed)", len(a), len(b))
	}
	if a[0] != b[0] || a[1] == b[1] {
		t.Fatalf("chaining: %x %x", a, b)
	}
	// The chain: equal second chunks after different first ones differ.
	c := blockHashes(nil, 1, []byte(strings.Repeat("z", 64)+"b"+strings.Repeat("c", 63)), 64, 1<<20)
	if c[1] == a[1] {
		t.Fatal("a block's hash ignores its parent")
	}
	if n := len(blockHashes(nil, 1, make([]byte, 10000), 64, 1024)); n != 16 {
		t.Fatalf("max_prompt_bytes: %d blocks", n)
	}
}

func FuzzParseRequest(f *testing.F) {
	f.Add([]byte(`{"model":"m","messages":[{"role":"user","content":"hi"}],"user":"u"}`))
	f.Add([]byte(`{"prompt":["a","b"]}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		r, ok := parseRequest(body)
		if !ok {
			return
		}
		hs := blockHashes(nil, r.seed, r.text, 16, 1<<20)
		if len(hs) != len(r.text)/16 {
			t.Fatalf("%d blocks for %d bytes", len(hs), len(r.text))
		}
	})
}
