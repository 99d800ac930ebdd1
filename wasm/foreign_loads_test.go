package wasm

import (
	"strings"
	"testing"
)

// TestForeignUpstreamLoadsRefuses: sluice.upstream_loads needs an HTTP
// context and a pool name of at most maxPoolNameArg bytes; the answer
// itself is tested in proxy (TestAppendPoolLoads) and end to end in
// TestE2EForeignFunctions.
func TestForeignUpstreamLoadsRefuses(t *testing.T) {
	if _, st := foreignUpstreamLoads(nil, []byte("llm"), nil); st != statusBadArgument {
		t.Errorf("root context: status %d, want BAD_ARGUMENT", st)
	}
	s := &stream{ex: newExchange("/")}
	if _, st := foreignUpstreamLoads(s, []byte(strings.Repeat("p", maxPoolNameArg+1)), nil); st != statusBadArgument {
		t.Errorf("a %d-byte name: status %d, want BAD_ARGUMENT", maxPoolNameArg+1, st)
	}
	if res, st := foreignUpstreamLoads(s, []byte("llm"), nil); st != statusOK || string(res) != "\x03\x00\x00\x00llm" {
		t.Errorf("an exchange without pools: %q, status %d; want the name and no endpoint", res, st)
	}
}
