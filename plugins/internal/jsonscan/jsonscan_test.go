package jsonscan

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

func TestScanObject(t *testing.T) {
	f := func(doc string, want map[string]string) {
		t.Helper()
		keys := make([]string, 0, len(want))
		for k := range want {
			keys = append(keys, k)
		}
		ms, err := Object([]byte(doc), keys...)
		if err != nil {
			t.Fatalf("Object(%s): %v", doc, err)
		}
		for i, k := range keys {
			if got := string(ms[i].Raw([]byte(doc))); got != want[k] {
				t.Errorf("Object(%s)[%q] = %q, want %q", doc, k, got, want[k])
			}
		}
	}
	f(`{}`, map[string]string{"model": ""})
	f(` {"model" : "gpt-4o" , "max_tokens":12} `, map[string]string{"model": `"gpt-4o"`, "max_tokens": "12"})
	f(`{"messages":[{"model":"inner"}],"model":"outer"}`, map[string]string{"model": `"outer"`})
	f(`{"model":"a","model":"b"}`, map[string]string{"model": `"b"`})
	f(`{"mod\u0065l":"esc","Model":"case"}`, map[string]string{"model": `"esc"`, "Model": `"case"`})
	f(`{"usage":{"total_tokens":7},"x":[1,-2.5e+3,true,false,null,"s\"\\\/\b\f\n\r\t\u00e9"]}`,
		map[string]string{"usage": `{"total_tokens":7}`, "x": `[1,-2.5e+3,true,false,null,"s\"\\\/\b\f\n\r\t\u00e9"]`})

	ms, _ := Object([]byte(`{"model":"a","model":"b"}`), "model")
	if ms[0].Count != 2 {
		t.Errorf("count %d, want 2", ms[0].Count)
	}
}

func TestScanObjectErrors(t *testing.T) {
	for _, c := range []struct{ doc, want string }{
		{``, "empty document"},
		{`   `, "empty document"},
		{`[1]`, ErrNotObject.Error()},
		{`"s"`, ErrNotObject.Error()},
		{`{"a":1} x`, "unexpected data after the document"},
		{`{"a":1`, "want ',' or '}'"},
		{`{"a" 1}`, "want ':'"},
		{`{a:1}`, "want a string"},
		{`{"a":01}`, "want ',' or '}'"},
		{`{"a":1.}`, "no digits after '.'"},
		{`{"a":1e}`, "no digits in the exponent"},
		{`{"a":-}`, "invalid number"},
		{`{"a":tru}`, "invalid literal"},
		{`{"a":NaN}`, "unexpected byte 'N'"},
		{`{"a":"\x"}`, "invalid escape"},
		{`{"a":"\u12"}`, `invalid \u escape`},
		{"{\"a\":\"\x01\"}", "control byte"},
		{`{"a":"`, "unterminated string"},
		{`{"a":[1,]}`, "unexpected byte ']'"},
		{`{"a":`, "unexpected end of document"},
		{`{"a":` + strings.Repeat("[", MaxDepth+1) + strings.Repeat("]", MaxDepth+1) + `}`, "nesting deeper"},
	} {
		_, err := Object([]byte(c.doc), "a")
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Object(%q) = %v, want an error containing %q", c.doc, err, c.want)
		}
	}
}

// TestNextSpecial compares the word-at-a-time search with a byte loop for
// every byte value at every offset of a block, alone and after another
// special byte (borrows in the word arithmetic must not hide the first).
func TestNextSpecial(t *testing.T) {
	naive := func(b []byte) int {
		for i, c := range b {
			if c == '"' || c == '\\' || c < 0x20 {
				return i
			}
		}
		return -1
	}
	buf := make([]byte, 40)
	for n := 0; n <= len(buf); n++ {
		for pos := 0; pos < n; pos++ {
			for v := 0; v < 256; v++ {
				for i := range buf {
					buf[i] = 'a'
				}
				buf[pos] = byte(v)
				if pos+1 < n {
					buf[pos+1] = 0 // a second special byte right after
				}
				if got, want := nextSpecial(buf[:n]), naive(buf[:n]); got != want {
					t.Fatalf("nextSpecial(%q) = %d, want %d", buf[:n], got, want)
				}
			}
		}
	}
}

func TestJSONValues(t *testing.T) {
	for _, c := range []struct {
		raw string
		n   int64
		ok  bool
	}{{"12", 12, true}, {"-3", -3, true}, {"256.0", 256, true}, {"1e3", 1000, true}, {"1.5", 0, false},
		{"null", 0, false}, {`"12"`, 0, false}, {"9007199254740993", 0, false}, {"1e400", 0, false}, {"", 0, false}} {
		n, ok := Int([]byte(c.raw))
		if n != c.n || ok != c.ok {
			t.Errorf("Int(%q) = %d, %v; want %d, %v", c.raw, n, ok, c.n, c.ok)
		}
	}
	for _, c := range []struct {
		raw, s string
		ok     bool
	}{{`"gpt-4o"`, "gpt-4o", true}, {`"a\u0062"`, "ab", true}, {`null`, "", false}, {`12`, "", false}, {`"`, "", false}} {
		s, ok := String([]byte(c.raw))
		if s != c.s || ok != c.ok {
			t.Errorf("String(%q) = %q, %v; want %q, %v", c.raw, s, ok, c.s, c.ok)
		}
	}
}

// FuzzScanObject checks the scanner against encoding/json: it accepts
// exactly the valid documents whose top level is an object (within its
// depth limit), and finds the value encoding/json keeps for a key.
func FuzzScanObject(f *testing.F) {
	for _, s := range []string{`{}`, `{"model":"m","model":"n"}`, `{"mod\u0065l":1}`, `[]`, `{"a":[{"b":null}]}`,
		`{"usage":{"total_tokens":3}}`, `{"a":"\ud800"}`, `{"a":1e5,"b":-0.0}`, "{\"a\":\"\xff\"}"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		ms, err := Object(data, "model", "a", "usage")
		var se *SyntaxError
		if errors.As(err, &se) && strings.Contains(se.msg, "nesting deeper") {
			return
		}
		valid := json.Valid(data)
		isObject := valid && bytes.TrimLeft(data, " \t\r\n")[0] == '{'
		if (err == nil) != isObject {
			t.Fatalf("Object(%q) error %v; json.Valid %v, object %v", data, err, valid, isObject)
		}
		if errors.Is(err, ErrNotObject) != (valid && !isObject) {
			t.Fatalf("Object(%q) error %v; json.Valid %v", data, err, valid)
		}
		if err != nil {
			return
		}
		var m map[string]json.RawMessage
		if err := json.Unmarshal(data, &m); err != nil {
			t.Fatalf("encoding/json rejects %q: %v", data, err)
		}
		for i, k := range []string{"model", "a", "usage"} {
			want, ok := m[k]
			if ok != ms[i].Found() || !bytes.Equal(want, ms[i].Raw(data)) {
				t.Fatalf("%q: key %q = %q (found %v), encoding/json has %q (found %v)", data, k, ms[i].Raw(data), ms[i].Found(), want, ok)
			}
		}
	})
}
