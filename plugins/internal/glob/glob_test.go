package glob

import (
	"strings"
	"testing"
)

func TestMatch(t *testing.T) {
	for _, c := range []struct {
		pat, s string
		want   bool
	}{
		{"gpt-4o", "gpt-4o", true}, {"gpt-4o", "gpt-4o-mini", false}, {"llama-*", "llama-3-70b", true},
		{"llama-*", "llama-", true}, {"llama-*", "llam", false}, {"*", "", true}, {"*-instruct", "m-7b-instruct", true},
		{"a*b*c", "aXbYc", true}, {"a*b*c", "aXbY", false}, {"", "", true}, {"", "x", false},
		{"**a", "bba", true}, {"a*a*a*a*a*b", strings.Repeat("a", 60), false},
	} {
		if got := Match(c.pat, c.s); got != c.want {
			t.Errorf("Match(%q, %q) = %v, want %v", c.pat, c.s, got, c.want)
		}
	}
}
