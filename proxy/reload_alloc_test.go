//go:build !race

package proxy

import (
	"testing"

	"github.com/sluice-proxy/sluice/proxy/proxytest"
)

// TestAllocsGenerationReference: taking and dropping a request's
// reference on the current generation (serveEdge, and the hold of a
// streamed body) allocates nothing, before and after a reload.
func TestAllocsGenerationReference(t *testing.T) {
	up := startUpstream(t, proxytest.Options{})
	srv := newServer(t, reloadConfig(up.URL), Options{})
	f := func() {
		t.Helper()
		if n := testing.AllocsPerRun(1000, func() {
			g := srv.enter()
			g.hold()
			g.leave()
			g.leave()
		}); n != 0 {
			t.Fatalf("%v allocations per request reference, want 0", n)
		}
	}
	f()
	if err := srv.Reload(reloadConfig(up.URL), quiet(nil)); err != nil {
		t.Fatal(err)
	}
	f()
}
