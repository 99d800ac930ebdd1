package wasm

import (
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"
)

func TestParseRESPCommand(t *testing.T) {
	args, err := parseRESPCommand([]byte("*3\r\n$4\r\nINCR\r\n$4\r\na\r\nb\r\n$0\r\n\r\n"))
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"INCR", "a\r\nb", ""}
	if len(args) != len(want) {
		t.Fatalf("args = %q", args)
	}
	for i, w := range want {
		if string(args[i].([]byte)) != w {
			t.Fatalf("args[%d] = %q, want %q", i, args[i], w)
		}
	}
	bad := map[string]string{
		"empty":            "",
		"inline":           "INCR a\r\n",
		"zero elements":    "*0\r\n",
		"null array":       "*-1\r\n",
		"count too big":    "*3\r\n$1\r\na\r\n",
		"huge count":       "*99999999999\r\n",
		"not bulk":         "*1\r\n:1\r\n",
		"short bulk":       "*1\r\n$5\r\nab\r\n",
		"null bulk":        "*1\r\n$-1\r\n",
		"no CRLF":          "*1\r\n$1\r\nab",
		"bad length":       "*1\r\n$x\r\na\r\n",
		"leading zero":     "*01\r\n$1\r\na\r\n",
		"negative":         "*1\r\n$-2\r\na\r\n",
		"trailing command": "*1\r\n$1\r\na\r\n*1\r\n$1\r\nb\r\n",
		"length LF only":   "*1\n$1\r\na\r\n",
		"too large":        "*1\r\n$" + "2000000\r\n" + strings.Repeat("x", MaxRedisQuery),
	}
	for name, q := range bad {
		if _, err := parseRESPCommand([]byte(q)); err == nil {
			t.Errorf("%s: %q parsed", name, q)
		}
	}
}

func TestRefusedCommand(t *testing.T) {
	for _, c := range []string{"SUBSCRIBE", "select", "Multi", "AUTH", "client"} {
		if refusedCommand([]byte(c)) == "" {
			t.Errorf("%s not refused", c)
		}
	}
	for _, c := range []string{"INCR", "EVAL", "evalsha", "GET", "averyveryverylongcommandname"} {
		if why := refusedCommand([]byte(c)); why != "" {
			t.Errorf("%s refused: %s", c, why)
		}
	}
}

func TestAppendRESP(t *testing.T) {
	for _, tc := range []struct {
		v    any
		want string
	}{
		{nil, "$-1\r\n"},
		{"OK", "$2\r\nOK\r\n"},
		{int64(-7), ":-7\r\n"},
		{true, ":1\r\n"},
		{1.5, "$3\r\n1.5\r\n"},
		{[]any{int64(1), "a", nil, []any{}}, "*4\r\n:1\r\n$1\r\na\r\n$-1\r\n*0\r\n"},
		{redis.Error(errString("ERR x\r\ny")), "-ERR x  y\r\n"},
	} {
		got, ok := appendRESP(nil, tc.v, 0)
		if !ok || string(got) != tc.want {
			t.Errorf("appendRESP(%#v) = %q, %v; want %q", tc.v, got, ok, tc.want)
		}
	}
	deep := any(int64(1))
	for range maxRESPDepth + 2 {
		deep = []any{deep}
	}
	if _, ok := appendRESP(nil, deep, 0); ok {
		t.Error("a reply nested past maxRESPDepth was encoded")
	}
	if _, ok := appendRESP(nil, struct{}{}, 0); ok {
		t.Error("an unknown type was encoded")
	}
}

// errString is a redis.Error (a server's error reply) for tests.
type errString string

func (e errString) Error() string { return string(e) }
func (errString) RedisError()     {}

// FuzzParseRESPCommand feeds arbitrary guest bytes to the query parser:
// it must never panic, and what it accepts must re-encode to the input.
func FuzzParseRESPCommand(f *testing.F) {
	for _, s := range []string{"*1\r\n$4\r\nPING\r\n", "*2\r\n$3\r\nGET\r\n$1\r\nk\r\n", "*1\r\n$-1\r\n", "*0\r\n", "*1\r\n$99\r\n"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, q []byte) {
		args, err := parseRESPCommand(q)
		if err != nil {
			return
		}
		var re []byte
		re = appendRESPInt(re, '*', int64(len(args)))
		for _, a := range args {
			re = appendBulk(re, string(a.([]byte)))
		}
		if string(re) != string(q) {
			t.Fatalf("accepted %q but it encodes back as %q", q, re)
		}
	})
}
