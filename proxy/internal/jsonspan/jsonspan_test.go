package jsonspan

import (
	"bytes"
	"encoding/json"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/valyala/fastjson"
)

// scanModel is StringMember for "model", as package proxy calls it.
func scanModel(dec *fastjson.Parser, body []byte) (start, end int, ok bool) {
	return StringMember(dec, body, "model")
}

// modelOf runs scanModel and decodes the result as proxy's findModel does.
func modelOf(dec *fastjson.Parser, body []byte) (string, bool) {
	start, end, ok := scanModel(dec, body)
	if !ok {
		return "", false
	}
	name, ok := DecodeString(dec, body[start:end])
	return string(name), ok
}

func TestScanModel(t *testing.T) {
	tests := []struct {
		body string
		want string
		ok   bool
	}{
		{`{"model":"llama","messages":[]}`, "llama", true},
		{` { "messages" : [{"role":"user","content":"say \"model\": \"x\""}] , "model" : "m-1" } `, "m-1", true},
		{`{"a":{"model":"inner"},"b":["model","x"],"model":"outer"}`, "outer", true},
		{`{"model":"first","model":"last"}`, "last", true},
		{`{"model":"first","model":7}`, "", false},
		{`{"mod\u0065l":"esc\u00e9\"d\\\/\b\f\n\r\t"}`, "escé\"d\\/\b\f\n\r\t", true},
		{`{"model":"x","mod\"el":"y","mode":"z"}`, "x", true},
		{`{"model":"\ud83d\ude00"}`, "😀", true},
		// fastjson keeps an escaped lone surrogate as written (encoding/json: U+FFFD).
		{`{"model":"\ud83d\ude00 \ud800x"}`, `😀 \ud800x`, true},
		{`{"model":""}`, "", true},
		{`{"model":null}`, "", false},
		{`{"stream":true}`, "", false},
		{`{}`, "", false},
		{`[{"model":"x"}]`, "", false},
		{`"model"`, "", false},
		{`{"model":"x"`, "", false},
		{`{"model":"x",}`, "", false},
		{`{"model" "x"}`, "", false},
		{`{"model":"x"}{`, "x", true}, // what follows the object is not read
		{`{"n":1.5e3,"t":true,"z":null,"model":"ok"}`, "ok", true},
		{`{"deep":` + strings.Repeat("[", 100_000) + strings.Repeat("]", 100_000) + `,"model":"d"}`, "d", true},
		{``, "", false},
	}
	var dec fastjson.Parser
	for _, tc := range tests {
		got, ok := modelOf(&dec, []byte(tc.body))
		if ok != tc.ok || got != tc.want {
			t.Errorf("scanModel(%.80s) = %q, %v; want %q, %v", tc.body, got, ok, tc.want, tc.ok)
		}
	}
}

func TestAppendJSONString(t *testing.T) {
	for _, s := range []string{"", "plain", `q"uo\te`, "ctl\x00\x1f\n", "ünï"} {
		var back string
		if err := json.Unmarshal(AppendString(nil, s), &back); err != nil || back != s {
			t.Errorf("AppendString(%q) round trip: %q %v", s, back, err)
		}
	}
}

// FuzzScanModel checks the walk and fastjson's decoding against
// encoding/json: on a valid JSON object, scanModel finds exactly the
// string encoding/json decodes for "model" (the last one when repeated),
// and nothing when there is none or it is not a string; splicing another
// name over the span it returns (the alias rewrite) changes "model" and
// nothing else. It must never panic on anything.
func FuzzScanModel(f *testing.F) {
	for _, s := range []string{
		`{"model":"llama","messages":[{"role":"user","content":"hi"}]}`,
		`{"model":"a","model":"b"}`,
		`{"mod\u0065l":"x\ud800"}`,
		`{"model":"\ud83d\ude00\ud800\u0041\udc00"}`,
		`{"x":[{"model":"y"}],"model":null}`,
		`{"model":"a\\\"b"}`,
		`{"model":"m","mod\"el":"n","z":{"a":[1,-2.5e3,true,null,"\"]}"]}}`,
		`{"model"`,
		`{"a":[[[[{"b":"]]"}]]]],"model":"x"}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var dec fastjson.Parser
		start, end, ok := scanModel(&dec, b)
		var got string
		if ok {
			if start < 0 || end > len(b) || end-start < 2 || b[start] != '"' || b[end-1] != '"' {
				t.Fatalf("scanModel(%q): span [%d:%d] is not a string token", b, start, end)
			}
			name, dok := DecodeString(&dec, b[start:end])
			if !dok {
				t.Fatalf("scanModel(%q): token %q does not decode", b, b[start:end])
			}
			got = string(name)
		}
		if !utf8.Valid(b) {
			return // encoding/json rewrites invalid UTF-8
		}
		var m map[string]json.RawMessage
		if err := json.Unmarshal(b, &m); err != nil || m == nil {
			return // invalid JSON or not an object: only "no panic"
		}
		raw, has := m["model"]
		var want string
		isStr := has && json.Unmarshal(raw, &want) == nil && strings.HasPrefix(strings.TrimSpace(string(raw)), `"`)
		if ok != isStr {
			t.Fatalf("scanModel(%q) = %q, %v; encoding/json: %q (string: %v)", b, got, ok, want, isStr)
		}
		if !ok {
			return
		}
		if got != want && !unpairedSurrogate(raw) {
			t.Fatalf("scanModel(%q) = %q; encoding/json: %q", b, got, want)
		}
		spliced := append(append(append([]byte(nil), b[:start]...), `"spliced"`...), b[end:]...)
		var m2 map[string]json.RawMessage
		if err := json.Unmarshal(spliced, &m2); err != nil {
			t.Fatalf("splice of %q: %q: %v", b, spliced, err)
		}
		if string(m2["model"]) != `"spliced"` || len(m2) != len(m) {
			t.Fatalf("splice of %q: %q", b, spliced)
		}
		for k, v := range m {
			if k != "model" && !bytes.Equal(m2[k], v) {
				t.Fatalf("splice of %q changed %q: %s", b, k, m2[k])
			}
		}
	})
}

// unpairedSurrogate reports whether the JSON string token raw escapes a
// UTF-16 surrogate that is not half of a pair, which fastjson and
// encoding/json decode differently (DecodeString says how).
func unpairedSurrogate(raw []byte) bool {
	s := string(bytes.TrimSpace(raw))
	hexAt := func(i int) (rune, bool) {
		if i+6 > len(s) || s[i] != '\\' || s[i+1] != 'u' {
			return 0, false
		}
		n, err := strconv.ParseUint(s[i+2:i+6], 16, 16)
		return rune(n), err == nil
	}
	for i := 0; i < len(s); i++ {
		if s[i] != '\\' {
			continue
		}
		r, isU := hexAt(i)
		if !isU {
			i++ // a one-character escape
			continue
		}
		if utf16.IsSurrogate(r) {
			r2, ok := hexAt(i + 6)
			if r >= 0xdc00 || !ok || r2 < 0xdc00 || r2 > 0xdfff {
				return true
			}
			i += 6
		}
		i += 5
	}
	return false
}

// TestScanModelLinear guards against quadratic scanning: a body of many
// megabytes with an escape every few bytes scans in linear time.
func TestScanModelLinear(t *testing.T) {
	body := `{"messages":[{"content":"` + strings.Repeat(`line\n`, 800_000) + `"}],"model":"m"}`
	start := time.Now()
	var dec fastjson.Parser
	if got, ok := modelOf(&dec, []byte(body)); !ok || got != "m" {
		t.Fatalf("got %q %v", got, ok)
	}
	if d := time.Since(start); d > 2*time.Second { // linear: a few ms
		t.Fatalf("scanning %d bytes took %s", len(body), d)
	}
}

// stringEndNaive is stringEnd one byte at a time, the reference.
func stringEndNaive(b []byte, i int) (end int, escaped, ok bool) {
	for i++; i < len(b); i++ {
		switch b[i] {
		case '"':
			return i + 1, escaped, true
		case '\\':
			escaped = true
			i++
		}
	}
	return 0, false, false
}

// TestStringEnd: stringEnd agrees with the byte-by-byte reference on
// every string of up to 9 bytes over {a, ", \\} after an opening quote
// (escaped quotes and backslashes, an escape at the end, no closing
// quote), and on long ones.
func TestStringEnd(t *testing.T) {
	alphabet := []byte{'a', '"', '\\'}
	var gen func(prefix []byte, n int)
	gen = func(prefix []byte, n int) {
		b := append([]byte{'"'}, prefix...)
		e1, x1, ok1 := stringEnd(b, 0)
		e2, x2, ok2 := stringEndNaive(b, 0)
		if e1 != e2 || x1 != x2 || ok1 != ok2 {
			t.Fatalf("%q: (%d, %v, %v), want (%d, %v, %v)", b, e1, x1, ok1, e2, x2, ok2)
		}
		if n == 0 {
			return
		}
		for _, c := range alphabet {
			gen(append(prefix[:len(prefix):len(prefix)], c), n-1)
		}
	}
	gen(nil, 9)
	for _, s := range []string{
		`"` + strings.Repeat("x", 5000) + `"`,
		`"` + strings.Repeat(`a"`, 3000) + `" tail "`,
		`"` + strings.Repeat(`\`, 3000) + `"`,
		`"` + strings.Repeat(`\`, 3000) + `"`,
	} {
		e1, x1, ok1 := stringEnd([]byte(s), 0)
		e2, x2, ok2 := stringEndNaive([]byte(s), 0)
		if e1 != e2 || x1 != x2 || ok1 != ok2 {
			t.Fatalf("%d-byte string: (%d, %v, %v), want (%d, %v, %v)", len(s), e1, x1, ok1, e2, x2, ok2)
		}
	}
}

func FuzzStringEnd(f *testing.F) {
	f.Add([]byte(`"ab\"c\\"d"`))
	f.Add([]byte(`"\`))
	f.Fuzz(func(t *testing.T, b []byte) {
		for i := range b {
			if b[i] != '"' {
				continue
			}
			e1, x1, ok1 := stringEnd(b, i)
			e2, x2, ok2 := stringEndNaive(b, i)
			if e1 != e2 || x1 != x2 || ok1 != ok2 {
				t.Fatalf("%q from %d: (%d, %v, %v), want (%d, %v, %v)", b, i, e1, x1, ok1, e2, x2, ok2)
			}
		}
	})
}
