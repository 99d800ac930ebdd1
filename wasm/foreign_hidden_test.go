package wasm

import "testing"

// TestHiddenForeignFunctions: a function named in
// HostConfig.HiddenForeignFunctions answers NOT_FOUND, as on a host
// without it, and the others still run.
func TestHiddenForeignFunctions(t *testing.T) {
	h := newTestHostWith(t, func(c *HostConfig) { c.HiddenForeignFunctions = []string{"sluice.sha256"} })
	pc := fixtureConfig(t, "ok")
	pc.Instances = 1
	p := h.mustLoad(t, pc)
	in := p.slots[0].inst.Load()
	in.mu.Lock()
	defer in.mu.Unlock()
	call := func(name string) status {
		t.Helper()
		in.mem.Write(1024, []byte(name))
		in.mem.Write(2048, []byte("abc"))
		stack := []uint64{1024, uint64(len(name)), 2048, 3, 512, 516}
		hostCallForeignFunction(&in.cc, in.mod, stack)
		return status(stack[0])
	}
	if st := call("sluice.sha256"); st != statusNotFound {
		t.Errorf("hidden sluice.sha256: status %d, want NOT_FOUND", st)
	}
	if st := call("sluice.random_bytes"); st != statusBadArgument {
		t.Errorf("sluice.random_bytes (3-byte argument): status %d, want BAD_ARGUMENT: it is not hidden", st)
	}
}
