package sim

import "testing"

func TestTokenize(t *testing.T) {
	for _, tc := range []struct {
		s    string
		want int
	}{{"", 0}, {"a", 1}, {"abcd", 1}, {"abcde", 2}, {"héllo wörld", 4}} {
		if got := tokenize(nil, tc.s); len(got) != tc.want || numTokens(len(tc.s)) != tc.want {
			t.Errorf("%q: %d tokens (numTokens %d), want %d", tc.s, len(got), numTokens(len(tc.s)), tc.want)
		}
	}
	a, b := tokenize(nil, "shared prefix one"), tokenize(nil, "shared prefix two")
	for i := range 3 {
		if a[i] != b[i] {
			t.Errorf("token %d of a shared 12-byte prefix differs", i)
		}
	}
	if x, y := tokenize(nil, "ab"), tokenize(nil, "ab\x00\x00"); x[0] == y[0] {
		t.Error(`"ab" and "ab\x00\x00" share a token id`)
	}
	for _, w := range outputWords {
		if len(w) != bytesPerToken || tokenize(nil, w)[0] != wordToken(w) {
			t.Errorf("output word %q is not one token", w)
		}
	}
	ph := hashPrompt(tokenize(nil, "p"))
	if outputWord(1, ph, 3) != outputWord(1, ph, 3) || naturalLen(1, ph) != naturalLen(1, ph) {
		t.Error("output not deterministic")
	}
	same := true
	for i := range 16 {
		same = same && outputWord(1, ph, i) == outputWord(2, ph, i)
	}
	if same {
		t.Error("the seed does not change the output")
	}
}
