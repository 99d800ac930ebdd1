package tiebreak

import (
	"hash/fnv"
	"testing"
)

// TestMixIsFNV1a checks Mix against the standard library's FNV-1a: with
// rnd 0 the two agree, and rnd changes the key.
func TestMixIsFNV1a(t *testing.T) {
	for _, addr := range []string{"", "10.0.0.1:8000", "b"} {
		h := fnv.New64a()
		h.Write([]byte(addr))
		if got, want := Mix(0, addr), h.Sum64(); got != want {
			t.Errorf("Mix(0, %q) = %#x, want FNV-1a %#x", addr, got, want)
		}
		if Mix(1, addr) == Mix(0, addr) || Mix(7, addr) != Mix(7, addr) {
			t.Errorf("Mix(rnd, %q) does not depend on rnd alone", addr)
		}
	}
}
