//go:build !race

package wasm

import (
	"strings"
	"testing"
)

// TestPromptPrefixAllocations: a match and a record, and a match and a
// claim (made, and lost), of an 8 KiB chat body already in the index
// allocate nothing on the host.
func TestPromptPrefixAllocations(t *testing.T) {
	match, record := prefixCallers(t)
	claim := *record
	claim.name = prefixClaimName
	body := chatBody(strings.Repeat("x", 8150))
	margs, rargs := prefixMatchArgs(64, 1<<20, 0.3, "ca/p/b"), prefixRecordArgs(0, "10.0.0.1:8000")
	match.in.mu.Lock()
	defer match.in.mu.Unlock()
	// Each case is a match, then the second call with its arguments.
	for _, c := range []struct {
		what string
		call *promptHashCaller
		args []byte
	}{
		{"record", record, rargs},
		{"claim made", &claim, []byte("10.0.0.1:8000")},
		{"claim lost", &claim, []byte("10.0.0.2:8000")}, // to the record's value
	} {
		run := func() {
			if st := match.invoke(t, body, margs, false, 512); st != statusOK {
				t.Fatalf("match: status %d", st)
			}
			if st := c.call.invoke(t, nil, c.args, false, 512); st != statusOK {
				t.Fatalf("%s: status %d", c.what, st)
			}
		}
		run()
		if got := testing.AllocsPerRun(200, run); got != 0 {
			t.Errorf("%v allocations per match and %s, want 0", got, c.what)
		}
	}
}
