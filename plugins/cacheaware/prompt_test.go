package main

import (
	"bytes"
	"testing"
)

func TestParseRequest(t *testing.T) {
	chat := `{"model":"m","messages":[{"role":"user","content":"hi"}],"user":"u1"}`
	r, ok := parseRequest([]byte(chat), true)
	if !ok || string(r.text) != `[{"role":"user","content":"hi"}],"user":"u1"}` || string(r.user) != `"u1"` {
		t.Fatalf("chat: %q %q %v", r.text, r.user, ok)
	}
	for _, u := range []string{`""`, `null`, `7`} {
		if r, _ := parseRequest([]byte(`{"model":"m","prompt":"p","user":`+u+`}`), true); r.user != nil {
			t.Errorf("user %s names a session %q", u, r.user)
		}
	}
	comp, ok := parseRequest([]byte(`{"model":"m","prompt":"once upon"}`), false)
	if !ok || string(comp.text) != `"once upon"}` {
		t.Fatalf("completion: %q %v", comp.text, ok)
	}
	other, _ := parseRequest([]byte(`{"model":"n","prompt":"once upon"}`), false)
	if other.seed == comp.seed {
		t.Error("models share a hash seed")
	}
	for _, body := range []string{``, `[]`, `{"model":"m"}`, `{"messages":`, `not json`} {
		if _, ok := parseRequest([]byte(body), false); ok {
			t.Errorf("%q parsed", body)
		}
	}
}

// TestQuickPrompt: the usual body start is read without validating the
// rest, with the same text and seed as the validating scanner; other
// starts are left to the scanner.
func TestQuickPrompt(t *testing.T) {
	for _, body := range []string{
		`{"model":"m","messages":[{"role":"user","content":"hi"}],"max_tokens":5}`,
		"{ \"model\" : \"m\\\"x\" , \"stream\": true, \"n\": 1 ,\n \"messages\": [{\"role\": \"user\", \"content\": \"hi\"}] }\n",
		`{"temperature":0.5,"model":"m","prompt":"once upon a time"}`,
	} {
		quick, ok := quickPrompt([]byte(body))
		slow, err := validatedRequest([]byte(body))
		if !ok || err != nil || string(quick.text) != string(slow.text) || quick.seed != slow.seed {
			t.Errorf("%s: quick %q %x %v, validated %q %x %v", body, quick.text, quick.seed, ok, slow.text, slow.seed, err)
		}
	}
	for _, body := range []string{
		`{"messages":[],"model":"m"}`,                                  // model after the prompt
		`{"model":"m","tools":[{"a":1}],"messages":[]}`,                // a nested value first
		`{"model":"m","mess\u0061ges":[]}`,                             // an escaped key
		`{"model":7,"messages":[]}`,                                    // model not a string
		`{"model":"m","prompt":"p","messages":[{"role":"user"}]}`,      // messages win
		`{"model":"m","model":"n","messages":[]}`,                      // model twice
		`{"model":"m","messages":[]`, `{"model":"m","messages":`, `[]`, // cut short, not an object
	} {
		if r, ok := quickPrompt([]byte(body)); ok {
			t.Errorf("%s: quick path took it: %q", body, r.text)
		}
	}
	// A hostile body past the prompt's start is not read: routed, and the
	// engine rejects it.
	if r, ok := parseRequest([]byte(`{"model":"m","messages":[{{{ not json }`), false); !ok || string(r.text) != `[{{{ not json }` {
		t.Errorf("quick path: %q %v", r.text, ok)
	}
}

func FuzzParseRequest(f *testing.F) {
	f.Add([]byte(`{"model":"m","messages":[{"role":"user","content":"hi"}],"user":"u"}`))
	f.Add([]byte(`{"prompt":["a","b"]}`))
	f.Add([]byte(`{"model":"m","n":1,"messages":[{"role":"user","content":"hi"}]}`))
	f.Add([]byte(` { "model" : "a\"b" , "prompt" : "x" } `))
	for _, c := range duplicateBodies {
		f.Add([]byte(c.body))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		r, ok := parseRequest(body, false)
		if !ok {
			return
		}
		// What the quick path reads, the validating scanner reads the
		// same way when the body is valid JSON, duplicate members or not
		// (both read what the engine reads: the last).
		if slow, err := validatedRequest(body); err == nil &&
			(string(slow.text) != string(r.text) || slow.seed != r.seed) {
			t.Fatalf("quick %q %x, validated %q %x", r.text, r.seed, slow.text, slow.seed)
		}
		hs := blockHashes(nil, r.seed, r.text, 16, 1<<20)
		if len(hs) != len(r.text)/16 {
			t.Fatalf("%d blocks for %d bytes", len(hs), len(r.text))
		}
	})
}

// duplicateBodies repeat a member the plugin reads, with a decoy first;
// clean is the body the engine reads (the last of each).
var duplicateBodies = []struct{ name, body, clean string }{
	{"messages twice",
		`{"model":"m","messages":[{"role":"user","content":"DECOY"}],"messages":[{"role":"user","content":"hi"}],"user":"u"}`,
		`{"model":"m","messages":[{"role":"user","content":"hi"}],"user":"u"}`},
	{"prompt twice", `{"model":"m","prompt":"DECOY","prompt":"once upon"}`, `{"model":"m","prompt":"once upon"}`},
	{"prompt then messages", `{"model":"m","prompt":"DECOY","messages":[{"role":"user","content":"hi"}]}`, `{"model":"m","messages":[{"role":"user","content":"hi"}]}`},
	{"model twice", `{"model":"DECOY","messages":[{"role":"user","content":"hi"}],"model":"m"}`, `{"messages":[{"role":"user","content":"hi"}],"model":"m"}`},
	{"user twice", `{"model":"m","user":"DECOY","messages":[{"role":"user","content":"hi"}],"user":"u"}`, `{"model":"m","messages":[{"role":"user","content":"hi"}],"user":"u"}`},
	{"content twice",
		`{"model":"m","messages":[{"role":"system","content":"be brief"},{"role":"user","content":"DECOY","content":"hi"}]}`,
		`{"model":"m","messages":[{"role":"system","content":"be brief"},{"role":"user","content":"hi"}]}`},
	{"content twice, after an object member",
		`{"model":"m","metadata":{"a":1},"messages":[{"role":"user","content":"DECOY","content":"hi"}]}`,
		`{"model":"m","metadata":{"a":1},"messages":[{"role":"user","content":"hi"}]}`},
}

// TestParseRequestDuplicateKeys: with a member repeated, both paths (the
// quick one and the validating scanner, which the user field forces) read
// what the engine reads: the same model, the last user, and a prompt text
// that is the clean body's, or the start of it, never the decoy.
func TestParseRequestDuplicateKeys(t *testing.T) {
	for _, c := range duplicateBodies {
		clean, ok := parseRequest([]byte(c.clean), true)
		if !ok {
			t.Fatalf("%s: the clean body does not parse", c.name)
		}
		for _, wantUser := range []bool{false, true} {
			r, ok := parseRequest([]byte(c.body), wantUser)
			if !ok || r.seed != clean.seed || !bytes.HasPrefix(clean.text, r.text) || bytes.Contains(r.text, []byte("DECOY")) ||
				wantUser && string(r.user) != string(clean.user) {
				t.Errorf("%s (user %v): text %q, user %s, seed %x; the engine reads text %q, user %s, seed %x",
					c.name, wantUser, r.text, r.user, r.seed, clean.text, clean.user, clean.seed)
			}
		}
	}
}
