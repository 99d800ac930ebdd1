//go:build !race

package prompthash

import "testing"

// TestQuickAllocations: reading a prompt, with the duplicate check over
// every key (cut.go) and with a decoy found, allocates nothing.
func TestQuickAllocations(t *testing.T) {
	for name, body := range map[string][]byte{
		"turns": turns(64),
		"decoy": []byte(`{"model":"m","messages":[{"role":"user","content":"DECOY","content":"hi"}]}`),
	} {
		if got := testing.AllocsPerRun(100, func() { Quick(body) }); got != 0 {
			t.Errorf("%s: %v allocations per call, want 0", name, got)
		}
	}
}
