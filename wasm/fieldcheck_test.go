package wasm

import (
	"bytes"
	"testing"

	"github.com/sluice-proxy/sluice/proxy"
)

func TestValidFieldRules(t *testing.T) {
	tests := []struct {
		name, value string
		want        bool
	}{
		{"x-a", "v", true},
		{"X-Mixed_Case.1~", "with\ttab and spaces", true},
		{"x-a", "", true},
		{"x-a", "utf-8 é", true},
		{"", "v", false},
		{"x a", "v", false},
		{"x:a", "v", false},
		{"x\ra", "v", false},
		{"x-a", "a\r\nb", false},
		{"x-a", "a\nb", false},
		{"x-a", "a\rb", false},
		{"x-a", "a\x00b", false},
		{"x-a", "a\x7fb", false},
		{":method", "GET", true},
		{":method", "M-SEARCH", true},
		{":method", "G ET", false},
		{":method", "", false},
		{":method", "GET\r\n", false},
		{":path", "/", true},
		{":path", "/a/b?c=d&e=%20", true},
		{":path", "*", true},
		{":path", "/é", true},
		{":path", "", false},
		{":path", "a", false},
		{":path", "http://x/", false},
		{":path", "/a b", false},
		{":path", "/a\tb", false},
		{":path", "/a\r\n", false},
		{":path", "/a\x7f", false},
		{":authority", "example.com", true},
		{":authority", "example.com:8080", true},
		{":authority", "127.0.0.1:8080-canary", true},
		{":authority", "[::1]:443", true},
		{":authority", "", true}, // present but empty: Envoy accepts it
		{":authority", "a b", false},
		{":authority", "a/b", false},
		{":authority", "u@h", false},
		{":authority", "h?x", false},
		{":authority", "[::1", false},
		{":authority", "[::1]x", false},
		{":authority", "h[1]", false},
		{":authority", "é.test", false},
		{":scheme", "https", true},
		{":scheme", "coap+tcp", true},
		{":scheme", "1http", false},
		{":scheme", "ht tp", false},
		{":status", "200", true},
		{":status", "099", false},
		{":status", "20", false},
		{":status", "2000", false},
		{":status", "abc", false},
		{":PATH", "a", false}, // pseudo-header names compare ignoring case
		{":x-custom", "anything", true},
		{":x-custom", "a\nb", false},
		{":", "v", false},
		{"::", "v", false},
	}
	for _, tc := range tests {
		if got := validField([]byte(tc.name), []byte(tc.value)); got != tc.want {
			t.Errorf("validField(%q, %q) = %v, want %v", tc.name, tc.value, got, tc.want)
		}
	}
}

// TestSetHeaderMapPairsKeepsClientFields checks that a guest may write back
// the map it read even when the client sent a field the rules refuse
// (fasthttp accepts a space in a header name), while a new bad field in
// the same map still fails it whole.
func TestSetHeaderMapPairsKeepsClientFields(t *testing.T) {
	var h proxy.Headers
	h.AddString(":method", "GET")
	h.AddString(":path", "/x")
	h.AddString(":authority", "a b")
	h.AddString("x y", "1")
	round := appendPairs(nil, &h)
	if !decodePairsInto(&h, round, true) || h.Len() != 4 {
		t.Fatalf("writing back the map read was refused (%d fields)", h.Len())
	}
	var more proxy.Headers
	more.CopyFrom(&h)
	more.AddString("x-new", "ok")
	if !decodePairsInto(&h, appendPairs(nil, &more), true) || h.Len() != 5 {
		t.Fatalf("adding a valid field to a written-back map was refused")
	}
	before := appendPairs(nil, &h)
	more.AddString("x-bad", "a\r\nb")
	if decodePairsInto(&h, appendPairs(nil, &more), true) {
		t.Fatal("a map with a new CRLF value was accepted")
	}
	if !bytes.Equal(appendPairs(nil, &h), before) {
		t.Fatal("a refused map changed the headers")
	}
	var strict proxy.Headers
	if decodePairsInto(&strict, round, false) {
		t.Fatal("a local reply accepted a header name with a space")
	}
}

// FuzzValidField checks that whatever validField accepts cannot split an
// HTTP/1.1 message or a request line: no CR, LF or NUL anywhere, names
// without whitespace, ":method" and ":path" without spaces.
func FuzzValidField(f *testing.F) {
	for _, s := range [][2]string{
		{"x-a", "v"}, {":method", "GET"}, {":path", "/a?b"}, {":authority", "h:1-canary"}, {":authority", "[::1]:80"},
		{":scheme", "https"}, {":status", "200"}, {"x-a", "a\r\nb"}, {":path", "*"}, {":x", "\t"},
	} {
		f.Add([]byte(s[0]), []byte(s[1]))
	}
	f.Fuzz(func(t *testing.T, name, value []byte) {
		if !validField(name, value) {
			return
		}
		if len(name) == 0 || bytes.ContainsAny(name, " \t\r\n\x00") || bytes.ContainsAny(value, "\r\n\x00") {
			t.Fatalf("accepted %q: %q", name, value)
		}
		pseudo := name[0] == ':'
		if bytes.IndexByte(name[1:], ':') >= 0 || (!pseudo && !isToken(name)) {
			t.Fatalf("accepted name %q", name)
		}
		switch string(bytes.ToLower(name)) {
		case ":method":
			if !isToken(value) {
				t.Fatalf("accepted method %q", value)
			}
		case ":path":
			if bytes.ContainsAny(value, " \t") || (value[0] != '/' && string(value) != "*") {
				t.Fatalf("accepted path %q", value)
			}
		case ":authority":
			if bytes.ContainsAny(value, " \t/?#@") {
				t.Fatalf("accepted authority %q", value)
			}
		}
		// A valid field survives a decode round trip unchanged.
		var h proxy.Headers
		h.Add(name, value)
		var back proxy.Headers
		if !decodePairsInto(&back, appendPairs(nil, &h), false) || back.Len() != 1 {
			t.Fatalf("valid field %q: %q did not decode", name, value)
		}
	})
}
