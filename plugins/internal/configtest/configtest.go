// Package configtest holds what every plugin's configuration parser tests
// do the same way: parse a configuration that must be accepted, and fuzz a
// parser whose errors must name the plugin. It is imported by host-side
// tests only (it imports testing), never by a guest build.
package configtest

import (
	"strings"
	"testing"
)

// MustParse returns parse(cfg) and fails t at once when parse errors.
func MustParse[T any](t testing.TB, parse func([]byte) (T, error), cfg string) T {
	t.Helper()
	v, err := parse([]byte(cfg))
	if err != nil {
		t.Fatalf("parseConfig(%s): %v", cfg, err)
	}
	return v
}

// Fuzz fuzzes parse (seed f with f.Add first). An input parse rejects
// must give an error starting with prefix (e.g. "apikey: "); an accepted
// one is handed to check, which fails t when the parsed value breaks an
// invariant.
func Fuzz[T any](f *testing.F, prefix string, parse func([]byte) (T, error), check func(t *testing.T, data []byte, v T)) {
	f.Fuzz(func(t *testing.T, data []byte) {
		v, err := parse(data)
		if err != nil {
			if !strings.HasPrefix(err.Error(), prefix) {
				t.Fatalf("error %q lacks the package prefix", err)
			}
			return
		}
		check(t, data, v)
	})
}
