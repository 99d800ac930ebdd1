//go:build !race

package wasm

import (
	"strings"
	"testing"
)

// TestPromptPrefixAllocations: a match and a record of an 8 KiB chat
// body already in the index allocate nothing on the host.
func TestPromptPrefixAllocations(t *testing.T) {
	match, record := prefixCallers(t)
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
}
