package jsonscan

import (
	"errors"
	"strings"
	"testing"
)

func TestMembers(t *testing.T) {
	var got []string
	err := Members([]byte(` {"a":1, "b\n":{"x":[1,2]}, "c":"s"} `), func(k []byte, esc bool, v []byte) bool {
		got = append(got, string(k)+"="+string(v)+map[bool]string{true: "!", false: ""}[esc])
		return true
	})
	if want := `a=1|b\n={"x":[1,2]}!|c="s"`; err != nil || strings.Join(got, "|") != want {
		t.Fatalf("%v %q, want %q", err, strings.Join(got, "|"), want)
	}
	n := 0
	if err := Members([]byte(`{"a":1,"b":2,`), func([]byte, bool, []byte) bool { n++; return false }); err != nil || n != 1 {
		t.Fatalf("stop early: %v after %d", err, n)
	}
	for _, bad := range []string{``, `{"a":1,}`, `{"a" 1}`, `{"a":1}x`, `{"a":[}`} {
		if err := Members([]byte(bad), func([]byte, bool, []byte) bool { return true }); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	if err := Members([]byte(`[1]`), func([]byte, bool, []byte) bool { return true }); !errors.Is(err, ErrNotObject) {
		t.Errorf("array: %v", err)
	}
}

func FuzzMembers(f *testing.F) {
	f.Add([]byte(`{"a":1,"b":{"c":[true,null]}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		errM := Members(data, func(k []byte, _ bool, v []byte) bool {
			if len(v) == 0 {
				t.Fatalf("empty value for %q", k)
			}
			return true
		})
		_, errO := Object(data)
		if (errM == nil) != (errO == nil) {
			t.Fatalf("Members %v, Object %v on %q", errM, errO, data)
		}
	})
}
