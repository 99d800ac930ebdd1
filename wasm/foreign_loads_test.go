package wasm

import (
	"strings"
	"testing"
)

// TestForeignUpstreamLoadsRefuses: sluice.upstream_loads and
// sluice.endpoint_loads need an HTTP context and a pool name of at most
// maxPoolNameArg bytes; the answers themselves are tested in proxy
// (TestAppendPoolLoads, TestAppendEndpointLoads) and end to end in
// TestE2EForeignFunctions.
func TestForeignUpstreamLoadsRefuses(t *testing.T) {
	for _, c := range []struct {
		name  string
		fn    foreignFunc
		empty string // the answer for a pool of an exchange without pools
	}{
		{"upstream_loads", foreignUpstreamLoads, "\x03\x00\x00\x00llm"},
		{"endpoint_loads", foreignEndpointLoads, "\x03\x00\x00\x00llm\x03\x00\x00\x00"},
	} {
		if _, st := c.fn(nil, []byte("llm"), nil); st != statusBadArgument {
			t.Errorf("%s in the root context: status %d, want BAD_ARGUMENT", c.name, st)
		}
		s := &stream{ex: newExchange("/")}
		if _, st := c.fn(s, []byte(strings.Repeat("p", maxPoolNameArg+1)), nil); st != statusBadArgument {
			t.Errorf("%s of a %d-byte name: status %d, want BAD_ARGUMENT", c.name, maxPoolNameArg+1, st)
		}
		if res, st := c.fn(s, []byte("llm"), nil); st != statusOK || string(res) != c.empty {
			t.Errorf("%s, an exchange without pools: %q, status %d; want the name and no endpoint", c.name, res, st)
		}
	}
}
