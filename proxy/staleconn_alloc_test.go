//go:build !race

package proxy

import "testing"

// TestAllocsStaleCheck: the check before each request on a pooled
// connection allocates nothing.
func TestAllocsStaleCheck(t *testing.T) {
	if !peekSupported {
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
