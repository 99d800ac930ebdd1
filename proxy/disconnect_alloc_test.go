//go:build !race && linux

package proxy

import "testing"

// TestAllocsProxyWatched: a proxied request on a real client connection,
// registered with the disconnect watch while it waits and while its body
// is relayed, allocates nothing once warm — fasthttp's part included,
// since roundTrip needs none of Do's per-request closures.
func TestAllocsProxyWatched(t *testing.T) {
	h := newHotPath(t)
	t.Cleanup(func() { _ = h.srv.Close() })
	_, s := tcpPair(t)
	for i := 0; i < 10; i++ {
		h.doOn(t, s)
	}
	if !h.srv.watch.running.Load() {
		t.Fatal("the request was not registered with the disconnect watch")
	}
	if n := testing.AllocsPerRun(500, func() { h.doOn(t, s) }); n != 0 {
		t.Fatalf("watched proxied request: %v allocs/op, want 0", n)
	}
}
