//go:build !race

package wasm

import (
	"strings"
	"testing"
)

// TestPromptBlockHashesAllocations: sluice.prompt_block_hashes, called
// the way a guest calls it for an 8 KiB chat body, allocates nothing on
// the host (the result is built in the instance's scratch buffer).
func TestPromptBlockHashesAllocations(t *testing.T) {
	c := newPromptHashCaller(t)
	body := []byte(`{"model":"m","messages":[{"role":"user","content":"` + strings.Repeat("x", 8150) + `"}]}`)
	args := promptArgs(64, 1<<20)
	c.in.mu.Lock()
	defer c.in.mu.Unlock()
	run := func() {
		if st := c.invoke(t, body, args, false, 512); st != statusOK {
			t.Fatalf("status %d", st)
		}
	}
	run()
	if got := testing.AllocsPerRun(200, run); got != 0 {
		t.Errorf("%v allocations per call, want 0", got)
	}
}
