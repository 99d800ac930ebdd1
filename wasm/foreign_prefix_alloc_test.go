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
	run := func() {
		if st := match.invoke(t, body, margs, false, 512); st != statusOK {
			t.Fatalf("match: status %d", st)
		}
		if st := record.invoke(t, nil, rargs, false, 512); st != statusOK {
			t.Fatalf("record: status %d", st)
		}
	}
	run()
	if got := testing.AllocsPerRun(200, run); got != 0 {
		t.Errorf("%v allocations per match and record, want 0", got)
	}
	for _, value := range []string{"10.0.0.1:8000", "10.0.0.2:8000"} { // made, then lost to the first
		cargs := []byte(value)
		claimRun := func() {
			if st := match.invoke(t, body, margs, false, 512); st != statusOK {
				t.Fatalf("match: status %d", st)
			}
			if st := claim.invoke(t, nil, cargs, false, 512); st != statusOK {
				t.Fatalf("claim: status %d", st)
			}
		}
		claimRun()
		if got := testing.AllocsPerRun(200, claimRun); got != 0 {
			t.Errorf("%v allocations per match and claim of %s, want 0", got, value)
		}
	}
}
