//go:build !race

package proxy

import (
	"testing"

	"github.com/valyala/fasthttp"
)

// TestAllocsRouteHostWildcards checks that matching routes by host
// pattern (exact, suffix, prefix, with a port) allocates nothing.
func TestAllocsRouteHostWildcards(t *testing.T) {
	cfg := NewConfig().WithUpstream("a", "http://127.0.0.1:1").WithUpstream("b", "http://127.0.0.1:2").
		WithRoute(RouteMatch{Host: "exact.example.org"}, "b").
		WithRoute(RouteMatch{Host: "*.example.com:8443"}, "b").
		WithRoute(RouteMatch{Host: "api.*"}, "b").
		WithRoute(RouteMatch{Host: "*-canary"}, "a")
	srv := newServer(t, cfg, Options{})
	var req fasthttp.Request
	req.SetRequestURI("/v1/models")
	req.Header.SetHost("127.0.0.1:8080-canary")
	path, host := req.URI().Path(), req.Header.Host()
	if n := testing.AllocsPerRun(1000, func() {
		if p := srv.selectRoute(path, host, (*fasthttpHeaders)(&req.Header)); p == nil || p.Name() != "a" {
			t.Fatal("wrong route")
		}
	}); n != 0 {
		t.Fatalf("route selection by host pattern: %v allocs, want 0", n)
	}
}
