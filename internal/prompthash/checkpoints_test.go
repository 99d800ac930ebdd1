package prompthash

import (
	"slices"
	"testing"
)

// TestCheckpoints: 1 to 4, then ×1.5 (rounded down), then n; none for an
// empty prompt; strictly increasing and ending at n.
func TestCheckpoints(t *testing.T) {
	for _, c := range []struct {
		n    int
		want []int
	}{
		{0, nil},
		{1, []int{1}},
		{2, []int{1, 2}},
		{4, []int{1, 2, 3, 4}},
		{5, []int{1, 2, 3, 4, 5}},
		{20, []int{1, 2, 3, 4, 6, 9, 13, 19, 20}},
		{128, []int{1, 2, 3, 4, 6, 9, 13, 19, 28, 42, 63, 94, 128}},
	} {
		if got := Checkpoints(nil, c.n); !slices.Equal(got, c.want) {
			t.Errorf("Checkpoints(%d) = %v, want %v", c.n, got, c.want)
		}
	}
	for n := 1; n < 5000; n++ {
		cps := Checkpoints(nil, n)
		if cps[0] != 1 || cps[len(cps)-1] != n || !slices.IsSorted(cps) || len(slices.Compact(slices.Clone(cps))) != len(cps) {
			t.Fatalf("Checkpoints(%d) = %v: not increasing from 1 to n", n, cps)
		}
		// Past 4, each at most about 1.5 times the last.
		for i := 1; i < len(cps); i++ {
			if cps[i-1] >= 4 && cps[i] > cps[i-1]*3/2+1 {
				t.Fatalf("Checkpoints(%d) = %v: %d after %d grows by more than half", n, cps, cps[i], cps[i-1])
			}
		}
	}
}

// TestMinMatch: the least m ≥ threshold·n, at least 1.
func TestMinMatch(t *testing.T) {
	for _, c := range []struct {
		n         int
		threshold float64
		want      int
	}{
		{128, 0.3, 39}, {10, 0.3, 3}, {0, 0.3, 1}, {5, 0, 1}, {7, 1, 7}, {3, 0.5, 2},
	} {
		if got := MinMatch(c.n, c.threshold); got != c.want {
			t.Errorf("MinMatch(%d, %v) = %d, want %d", c.n, c.threshold, got, c.want)
		}
	}
}
