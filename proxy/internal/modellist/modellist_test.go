package modellist

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/sluice-proxy/sluice/proxy/config"
	"github.com/sluice-proxy/sluice/proxy/internal/testkit"
	"github.com/sluice-proxy/sluice/proxy/proxytest"
	"github.com/sluice-proxy/sluice/proxy/upstream"
	"github.com/valyala/fasthttp"
)

// newCache builds the Cache of cfg over pools made from it.
func newCache(t *testing.T, cfg *config.Config) *Cache {
	t.Helper()
	rc, err := cfg.Resolve()
	if err != nil {
		t.Fatal(err)
	}
	pools := upstream.New(rc, upstream.Options{})
	t.Cleanup(func() { pools.Close() })
	return New(cfg, pools, time.Minute)
}

// TestCacheServesUnion: the answer lists the configured names (models
// but "*", then aliases and targets, sorted), then what the endpoints
// report, each id once; a second answer within the TTL asks no endpoint.
func TestCacheServesUnion(t *testing.T) {
	a := testkit.StartUpstream(t, proxytest.Options{Name: "a0", Models: []string{"engine-a", "shared"}})
	b := testkit.StartUpstream(t, proxytest.Options{Name: "b0", Models: []string{"shared", "engine-b"}})
	cfg := config.New().
		WithUpstreamConfig(config.UpstreamConfig{Name: "a", Endpoints: []string{a.URL}, Models: []string{"conf-a", "*"},
			ModelAliases: map[string]string{"z-alias": "conf-a", "alias": "conf-a"}}).
		WithUpstreamConfig(config.UpstreamConfig{Name: "b", Endpoints: []string{b.URL}})
	mc := newCache(t, cfg)
	if !mc.Enabled() {
		t.Fatal("not enabled with a pool that lists models")
	}
	serve := func() []modelEntry {
		t.Helper()
		var ctx fasthttp.RequestCtx
		mc.Serve(&ctx)
		if ctx.Response.StatusCode() != 200 || string(ctx.Response.Header.ContentType()) != "application/json" {
			t.Fatalf("%d %q", ctx.Response.StatusCode(), ctx.Response.Header.ContentType())
		}
		var l modelList
		if err := json.Unmarshal(ctx.Response.Body(), &l); err != nil || l.Object != "list" {
			t.Fatalf("%s: %v", ctx.Response.Body(), err)
		}
		return l.Data
	}
	var ids []string
	for _, m := range serve() {
		if m.Object != "model" {
			t.Fatalf("entry %+v", m)
		}
		ids = append(ids, m.ID)
	}
	if got, want := strings.Join(ids, " "), "conf-a alias z-alias engine-a shared engine-b"; got != want {
		t.Fatalf("ids %q, want %q", got, want)
	}
	before := a.Requests() + b.Requests()
	serve()
	if after := a.Requests() + b.Requests(); after != before {
		t.Fatalf("endpoints asked again within the TTL: %d -> %d", before, after)
	}
}

// TestCacheEnabled: only when a pool lists models or aliases (which
// Validate accepts only with openai_compat).
func TestCacheEnabled(t *testing.T) {
	f := func(cfg *config.Config, want bool) {
		t.Helper()
		if got := newCache(t, cfg).Enabled(); got != want {
			t.Fatalf("Enabled() = %v, want %v", got, want)
		}
	}
	ep := []string{"http://127.0.0.1:1"}
	f(config.New().WithUpstreamConfig(config.UpstreamConfig{Name: "p", Endpoints: ep}), false)
	f(config.New().WithUpstreamConfig(config.UpstreamConfig{Name: "p", Endpoints: ep, Models: []string{"m"}}), true)
	f(config.New().WithUpstreamConfig(config.UpstreamConfig{Name: "p", Endpoints: ep, ModelAliases: map[string]string{"a": "m"}}), true)
}

func TestIsRequest(t *testing.T) {
	f := func(method, uri string, want bool) {
		t.Helper()
		var req fasthttp.Request
		req.Header.SetMethod(method)
		req.SetRequestURI(uri)
		if got := IsRequest(&req); got != want {
			t.Fatalf("%s %s: %v, want %v", method, uri, got, want)
		}
	}
	f("GET", "/v1/models", true)
	f("HEAD", "/v1/models?x=1", true)
	f("POST", "/v1/models", false)
	f("GET", "/v1/models/llama", false)
	f("GET", "/v1/model", false)
}
