package prompthash

import (
	"bytes"
	"encoding/json"
	"io"
	"strings"
	"testing"
)

// TestQuickDuplicateKeys: a member an engine does not read (one a later
// member of the same name overrides: the engine reads the last) is not
// hashed. A later top-level "messages", "prompt" or "model" sends the
// body to the caller's validating scanner (which takes the last); a
// duplicate inside the prompt ends the text where the decoy begins.
func TestQuickDuplicateKeys(t *testing.T) {
	const m = `{"role":"user","content":"hi"}`
	const long = `a long value past the first bytes, \"quoted\": \\\"and\\\" ending in a backslash\\`
	for _, c := range []struct {
		name, body string
		text       string // "" with ok false: left to the validating scanner
	}{
		{"no duplicate", `{"model":"m","messages":[` + m + `],"max_tokens":5}`, `[` + m + `],"max_tokens":5}`},
		{"messages twice", `{"model":"m","messages":[{"role":"user","content":"DECOY"}],"messages":[` + m + `]}`, ""},
		{"prompt twice", `{"model":"m","prompt":"DECOY","prompt":"real"}`, ""},
		{"prompt then messages", `{"model":"m","prompt":"DECOY","messages":[` + m + `]}`, ""},
		{"messages then prompt", `{"model":"m","messages":[` + m + `],"prompt":"DECOY"}`, ""},
		{"model after the prompt", `{"model":"DECOY","messages":[` + m + `],"model":"m"}`, ""},
		{"escaped key after the prompt", `{"model":"m","prompt":"DECOY","mess\u0061ges":[` + m + `]}`, ""},
		{"content twice", `{"model":"m","messages":[{"role":"user","content":"DECOY","content":"hi"}]}`, `[{"role":"user",`},
		{"content twice, second message", `{"model":"m","messages":[` + m + `,{"role":"user", "content":"DECOY", "content":"hi"}]}`, `[` + m + `,{"role":"user", `},
		{"content part twice", `{"model":"m","messages":[{"role":"user","content":[{"type":"text","text":"DECOY","text":"hi"}]}]}`, `[{"role":"user","content":[{"type":"text",`},
		{"outer key repeated after a nested object", `{"model":"m","messages":[{"content":"DECOY","tool_calls":[{"id":"x"}],"content":"hi"}]}`, `[{`},
		{"same key in sibling objects", `{"model":"m","messages":[` + m + `,` + m + `]}`, `[` + m + `,` + m + `]}`},
		{"escaped key in a message", `{"model":"m","messages":[` + m + `,{"role":"user","c\u006fntent":"hi"}]}`, `[` + m + `,`},
		{"duplicate after the prompt", `{"model":"m","messages":[` + m + `],"n":1,"n":2}`, `[` + m + `],`},
		{"escaped quote before a colon in a value", `{"model":"m","prompt":"a\":b\\","n":1}`, `"a\":b\\","n":1}`},
		{"escaped quotes in a long value", `{"model":"m","prompt":"` + long + `","n":1,"n":2}`, `"` + long + `",`},
	} {
		text, model, ok := Quick([]byte(c.body))
		if ok != (c.text != "") || ok && (string(text) != c.text || string(model) != `"m"`) {
			t.Errorf("%s: Quick gives %q, model %s, ok %v; want %q", c.name, text, model, ok, c.text)
		}
		if ok && bytes.Contains(text, []byte("DECOY")) {
			t.Errorf("%s: the decoy is hashed: %q", c.name, text)
		}
	}
}

// TestCutBounds: past cutDepth levels or cutKeys open keys the text ends
// where cut stops vouching; a well-formed prompt within them is whole.
func TestCutBounds(t *testing.T) {
	deep := strings.Repeat("[", cutDepth+2) + strings.Repeat("]", cutDepth+2) + "}"
	if n, _ := cut([]byte(deep)); n != cutDepth-1 {
		t.Errorf("nesting: cut at %d, want %d", n, cutDepth-1)
	}
	ok := strings.Repeat("[", cutDepth-1) + strings.Repeat("]", cutDepth-1) + "}"
	if n, _ := cut([]byte(ok)); n != len(ok) {
		t.Errorf("nesting within the bound: cut at %d of %d", n, len(ok))
	}
	var b strings.Builder
	b.WriteString("[{")
	for i := range cutKeys + 1 {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(`"k` + string(rune('A'+i/26)) + string(rune('a'+i%26)) + `":0`)
	}
	b.WriteString("}]}")
	many := b.String()
	want := strings.Index(many, `"k`+string(rune('A'+cutKeys/26))+string(rune('a'+cutKeys%26)))
	if n, _ := cut([]byte(many)); n != want {
		t.Errorf("keys: cut at %d, want %d", n, want)
	}
}

// FuzzCut checks cut against encoding/json's tokens on valid JSON: it
// never vouches for a byte past the first overridden member, reports
// every later "model"/"messages"/"prompt", and without escaped keys and
// within its bounds finds exactly those.
func FuzzCut(f *testing.F) {
	for _, s := range []string{
		`[{"role":"user","content":"hi"}],"max_tokens":5}`,
		`[{"role":"user","content":"a","content":"b"}]}`,
		`[{"content":[{"type":"text","text":"a","text":"b"}]}],"n":1,"n":2}`,
		`"once","messages":[],"model":"m"}`,
		`[{"c\u006fntent":"a","content":"b"}],"pr\u006fmpt":1}`,
		`"a\"b\\",  "x" : {"y":1,"y":[2]}}`,
		`"a long value past the first bytes, \": \\\"x\\",  "x" : {"y":1,"y":[2]}}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, text []byte) {
		text = bytes.TrimRight(text, " \t\r\n") // as PromptText cuts it
		doc := append([]byte(`{"p":`), text...)
		if !json.Valid(doc) {
			return
		}
		want, wantLater, depth, escKey := oracleCut(t, doc, 5)
		n, later := cut(text)
		if n > want || wantLater && !later {
			t.Fatalf("cut %d later %v; the tokens say %d later %v", n, later, want, wantLater)
		}
		if exact := !escKey && depth < cutDepth && len(text) < 4*cutKeys; exact && (n != want || later != wantLater) {
			t.Fatalf("cut %d later %v; the tokens say %d later %v", n, later, want, wantLater)
		}
	})
}

// oracleCut is cut by encoding/json's tokens for doc, a valid object
// whose first member's value starts at from: the offset (from from) of
// the first key that a later one of its object overrides, whether a
// top-level "model", "messages" or "prompt" follows the first member, and
// the deepest nesting under the top-level object, and whether a key after
// from is escaped.
func oracleCut(t *testing.T, doc []byte, from int) (n int, later bool, depth int, escKey bool) {
	dec := json.NewDecoder(bytes.NewReader(doc))
	type level struct {
		obj, wantKey bool
		seen         map[string]int
	}
	var stack []*level
	n = len(bytes.TrimRight(doc, " \t\r\n")) - from
	for {
		off := int(dec.InputOffset())
		tok, err := dec.Token()
		if err == io.EOF {
			return n, later, depth, escKey
		} else if err != nil {
			t.Fatalf("%s: %v", doc, err)
		}
		var top *level
		if len(stack) > 0 {
			top = stack[len(stack)-1]
		}
		if k, isStr := tok.(string); isStr && top != nil && top.obj && top.wantKey {
			top.wantKey = false
			at := off + bytes.IndexByte(doc[off:], '"') - from
			escKey = escKey || at >= 0 && bytes.IndexByte(doc[from+at:dec.InputOffset()], '\\') >= 0
			switch {
			case at < 0: // the first member, before the text
			case len(stack) == 1 && (k == "model" || k == "messages" || k == "prompt"):
				later = true
			default:
				if first, dup := top.seen[k]; dup {
					n = min(n, first)
				} else {
					top.seen[k] = at
				}
			}
			continue
		}
		switch tok {
		case json.Delim('{'), json.Delim('['):
			stack = append(stack, &level{obj: tok == json.Delim('{'), wantKey: true, seen: map[string]int{}})
			depth = max(depth, len(stack)-1)
			continue
		case json.Delim('}'), json.Delim(']'):
			stack = stack[:len(stack)-1]
		}
		if len(stack) > 0 { // a value ended: a key comes next in an object
			stack[len(stack)-1].wantKey = true
		}
	}
}
