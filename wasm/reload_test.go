package wasm

import (
	"testing"

	"github.com/sluice-proxy/sluice/proxy"
	"github.com/sluice-proxy/sluice/proxy/config"
)

// TestSetUpstreams: a reload's upstream pools replace the ones
// proxy_http_call reaches; a bad list keeps the running pools; a Host
// given its own Callouts keeps them.
func TestSetUpstreams(t *testing.T) {
	h := newTestHostWith(t, func(c *HostConfig) {
		c.Upstreams = resolvedPools(t, proxy.UpstreamConfig{Name: "a", Endpoints: []string{"http://127.0.0.1:1"}})
	})
	has := func(pool string) bool { co := h.currentCallouts(); return co != nil && co.HasPool(pool) }
	if !has("a") || has("b") {
		t.Fatal("the host's first pools are not a")
	}
	if err := h.SetUpstreams(resolvedPools(t, proxy.UpstreamConfig{Name: "b", Endpoints: []string{"http://127.0.0.1:2"}})); err != nil {
		t.Fatal(err)
	}
	if has("a") || !has("b") {
		t.Fatal("SetUpstreams did not replace pool a by pool b")
	}
	// A pool without endpoints is refused.
	if err := h.SetUpstreams([]config.Upstream{{Name: "c"}}); err == nil || !has("b") {
		t.Fatalf("a bad pool list: %v; pool b must stay", err)
	}
	if err := h.SetUpstreams(nil); err != nil || h.currentCallouts() != nil {
		t.Fatalf("no pools: %v, callouts %v", err, h.currentCallouts())
	}

	own := newTestHostWith(t, func(c *HostConfig) { c.Callouts = fakeCallouts{} })
	if err := own.SetUpstreams(resolvedPools(t, proxy.UpstreamConfig{Name: "b", Endpoints: []string{"http://127.0.0.1:2"}})); err != nil {
		t.Fatal(err)
	}
	if co := own.currentCallouts(); co == nil || !co.HasPool("up") || co.HasPool("b") {
		t.Fatal("SetUpstreams replaced the Callouts the host was given")
	}
}
