//go:build !race

package upstream

import (
	"testing"

	"github.com/sluice-proxy/sluice/proxy/internal/peek"
)

// TestAllocsStaleCheck: the check before each request on a pooled
// connection allocates nothing.
func TestAllocsStaleCheck(t *testing.T) {
	if !peek.Supported {
		t.Skip("no non-blocking peek on this platform")
	}
	c, _ := tcpPair(t)
	var s staleCheck
	s.init(c)
	if n := testing.AllocsPerRun(1000, func() {
		if s.peerClosed() {
			t.Fatal("closed")
		}
	}); n != 0 {
		t.Fatalf("stale check: %v allocs, want 0", n)
	}
}
