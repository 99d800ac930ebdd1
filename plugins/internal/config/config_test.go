package config

import (
	"strings"
	"testing"
)

func TestDecode(t *testing.T) {
	type cfg struct {
		Keys []string `json:"keys"`
		N    int      `json:"n"`
	}
	f := func(data, wantErr string) {
		t.Helper()
		var c cfg
		err := Decode("p", []byte(data), &c)
		switch {
		case wantErr == "" && err != nil:
			t.Errorf("Decode(%s): %v", data, err)
		case wantErr != "" && (err == nil || !strings.Contains(err.Error(), wantErr)):
			t.Errorf("Decode(%s) = %v, want an error containing %q", data, err, wantErr)
		}
	}
	f(`{"keys": ["a"], "n": 2}`, "")
	f(` {"n": 1}  `+"\n", "")
	f(`{"kyes": []}`, `p: invalid JSON configuration: json: unknown field "kyes"`)
	f(`{"n": "1"}`, "p: invalid JSON configuration: json: cannot unmarshal string")
	f(`{"n": 1} {"n": 2}`, "p: invalid JSON configuration: unexpected data after the top-level object")
	f(`{"n": 1} x`, "p: invalid JSON configuration: unexpected data after the top-level object")
	f(`{"n": 1`, "p: invalid JSON configuration: unexpected EOF")
	f(``, "p: invalid JSON configuration: EOF")
}

func TestValidToken(t *testing.T) {
	for s, want := range map[string]bool{
		"x-tenant": true, "X-Api-Key": true, "GET": true, "a!#$%&'*+-.^_`|~0": true,
		"": false, "x tenant": false, "x:y": false, ":path": false, "a\x00": false, "é": false, "a,b": false, `"a"`: false,
	} {
		if got := ValidToken(s); got != want {
			t.Errorf("ValidToken(%q) = %v, want %v", s, got, want)
		}
	}
}

// rfcTchar is RFC 9110's tchar written out byte by byte: the reference
// TokenChar and ValidToken are checked against.
func rfcTchar(c byte) bool {
	switch c {
	case '!', '#', '$', '%', '&', '\'', '*', '+', '-', '.', '^', '_', '`', '|', '~':
		return true
	}
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9'
}

// TestTokenChar checks every byte.
func TestTokenChar(t *testing.T) {
	for c := range 256 {
		if got, want := TokenChar(byte(c)), rfcTchar(byte(c)); got != want {
			t.Errorf("TokenChar(%q) = %v, want %v", byte(c), got, want)
		}
	}
}

// FuzzValidToken checks ValidToken against the RFC 9110 grammar written
// out byte by byte.
func FuzzValidToken(f *testing.F) {
	f.Add("x-tenant")
	f.Add("a b")
	f.Fuzz(func(t *testing.T, s string) {
		want := s != ""
		for _, c := range []byte(s) {
			want = want && rfcTchar(c)
		}
		if got := ValidToken(s); got != want {
			t.Errorf("ValidToken(%q) = %v, want %v", s, got, want)
		}
	})
}

func TestDecodeOptional(t *testing.T) {
	type cfg struct {
		N int `json:"n"`
	}
	for _, data := range []string{"", " \n\t"} {
		c := cfg{N: 7}
		if err := DecodeOptional("p", []byte(data), &c); err != nil || c.N != 7 {
			t.Errorf("DecodeOptional(%q) = %v, left %+v; want no error and the default kept", data, err, c)
		}
	}
	c := cfg{N: 7}
	if err := DecodeOptional("p", []byte(`{"n": 2}`), &c); err != nil || c.N != 2 {
		t.Errorf(`DecodeOptional({"n": 2}) = %v, left %+v`, err, c)
	}
	if err := DecodeOptional("p", []byte(`{"m": 2}`), &c); err == nil || !strings.Contains(err.Error(), `p: invalid JSON configuration: json: unknown field "m"`) {
		t.Errorf("DecodeOptional with an unknown field = %v", err)
	}
}
