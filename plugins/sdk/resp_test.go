package sdk

import (
	"errors"
	"reflect"
	"testing"
)

func TestRedisCommand(t *testing.T) {
	got := string(RedisCommand("INCR", "a b", ""))
	want := "*3\r\n$4\r\nINCR\r\n$3\r\na b\r\n$0\r\n\r\n"
	if got != want {
		t.Fatalf("RedisCommand = %q, want %q", got, want)
	}
}

func TestParseRESP(t *testing.T) {
	for in, want := range map[string]RESPValue{
		"+OK\r\n":                       {Kind: '+', Str: "OK"},
		"-ERR no\r\n":                   {Kind: '-', Str: "ERR no"},
		":-42\r\n":                      {Kind: ':', Int: -42},
		"$5\r\nhe\r\no\r\n":             {Kind: '$', Str: "he\r\no"},
		"$-1\r\n":                       {Kind: '$', Null: true},
		"*-1\r\n":                       {Kind: '*', Null: true},
		"*2\r\n:1\r\n*1\r\n$1\r\nx\r\n": {Kind: '*', Array: []RESPValue{{Kind: ':', Int: 1}, {Kind: '*', Array: []RESPValue{{Kind: '$', Str: "x"}}}}},
	} {
		got, rest, err := ParseRESP([]byte(in + "tail"))
		if err != nil || string(rest) != "tail" || !reflect.DeepEqual(got, want) {
			t.Errorf("ParseRESP(%q) = %+v, %q, %v; want %+v", in, got, rest, err, want)
		}
	}
	for _, bad := range []string{"", "+OK", ":x\r\n", "$3\r\nab\r\n", "$-2\r\n", "*3\r\n:1\r\n", "?\r\n", "*99999999\r\n"} {
		if _, _, err := ParseRESP([]byte(bad)); !errors.Is(err, ErrRESP) {
			t.Errorf("ParseRESP(%q) err = %v, want ErrRESP", bad, err)
		}
	}
}

func FuzzParseRESP(f *testing.F) {
	for _, s := range []string{"+OK\r\n", ":1\r\n", "$1\r\nx\r\n", "*1\r\n*1\r\n:1\r\n", "$-1\r\n", "*2\r\n"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		v, rest, err := ParseRESP(b)
		if err != nil {
			return
		}
		if len(rest) > len(b) {
			t.Fatalf("rest longer than input")
		}
		_ = v
	})
}
