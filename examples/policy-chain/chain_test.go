// Package policychain holds the test of the policy-chain example: it runs
// sluice.yaml as `sluice -demo` would, with the three plugins built from
// source, and checks what the README promises.
package policychain

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sluice-proxy/sluice/internal/plugintest"
	"github.com/sluice-proxy/sluice/proxy"
	"github.com/sluice-proxy/sluice/proxy/proxytest"
	"github.com/sluice-proxy/sluice/wasm"
)

// loadExample loads sluice.yaml with proxy.LoadConfig as `sluice -demo`
// runs it: the pool "default" pointing at upstream (appended to the file's
// text, which has no upstreams), and each plugin's path replaced by the
// plugin built from plugins/<name>.
func loadExample(t *testing.T, upstream string) *proxy.Config {
	t.Helper()
	src, err := os.ReadFile("sluice.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(src), "\nupstreams:") {
		t.Fatal("sluice.yaml has upstreams: -demo would not add its pool")
	}
	path := filepath.Join(t.TempDir(), "sluice.yaml")
	text := string(src) + "\nupstreams:\n  - name: default\n    endpoints: [" + upstream + "]\n"
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := proxy.LoadConfig(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Plugins) != 3 {
		t.Fatalf("sluice.yaml has %d plugins, want apikey, ratelimit, modelrouter", len(cfg.Plugins))
	}
	for i := range cfg.Plugins {
		pc := &cfg.Plugins[i]
		if pc.Path != pc.Name+".wasm" {
			t.Fatalf("plugin %s has path %q, want %s.wasm (the README's build commands)", pc.Name, pc.Path, pc.Name)
		}
		pc.Path = plugintest.BuildGo(t, "plugins/"+pc.Name)
		// -race slows the host side of every call; the example's 50ms is
		// for production.
		pc.CallTimeout = proxy.Duration(2 * time.Second)
	}
	return cfg
}

// serve runs cfg as cmd/sluice does: one host, the plugins in order, the
// server on a free port.
func serve(t *testing.T, cfg *proxy.Config) (string, *plugintest.LogBuffer) {
	t.Helper()
	logs := &plugintest.LogBuffer{}
	logger := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	ctx := context.Background()
	resolved, err := cfg.Resolve()
	if err != nil {
		t.Fatal(err)
	}
	host, err := wasm.NewHost(ctx, wasm.HostConfig{
		CacheDir:  plugintest.CompileCacheDir(),
		Logger:    logger,
		Upstreams: resolved.Upstreams,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { host.Close(context.Background()) })
	var filters []proxy.Filter
	for _, pc := range cfg.Plugins {
		p, err := host.Load(ctx, pc)
		if err != nil {
			t.Fatalf("load %s: %v\nlogs: %s", pc.Name, err, logs)
		}
		filters = append(filters, p)
	}
	_, url := plugintest.Serve(t, cfg, proxy.Options{Filters: filters, Logger: logger})
	return url, logs
}

type reply struct {
	status int
	header http.Header
	body   string
}

func (r reply) errorCode() string {
	var env struct {
		Error struct {
			Code string `json:"code"`
		} `json:"error"`
	}
	_ = json.Unmarshal([]byte(r.body), &env)
	return env.Error.Code
}

// TestPolicyChain walks through the README's curl examples.
func TestPolicyChain(t *testing.T) {
	up := proxytest.NewServer(proxytest.Options{Model: "demo"})
	t.Cleanup(up.Close)
	base, logs := serve(t, loadExample(t, up.URL))
	cli := &http.Client{Timeout: 10 * time.Second}
	chat := func(key, model string) reply {
		t.Helper()
		req, err := http.NewRequest("POST", base+"/v1/chat/completions",
			strings.NewReader(`{"model":"`+model+`","messages":[{"role":"user","content":"hi"}],"max_tokens":16}`))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("content-type", "application/json")
		if key != "" {
			req.Header.Set("authorization", "Bearer "+key)
		}
		resp, body := plugintest.RoundTrip(t, cli, req)
		return reply{resp.StatusCode, resp.Header, body}
	}

	if r := chat("", "demo"); r.status != 401 || r.errorCode() != "invalid_api_key" {
		t.Fatalf("no key: %d %s\nlogs: %s", r.status, r.body, logs)
	}
	if r := chat("sk-wrong", "demo"); r.status != 401 {
		t.Errorf("wrong key: %d %s", r.status, r.body)
	}
	r := chat("sk-demo-acme", "demo")
	if r.status != 200 {
		t.Fatalf("acme, demo: %d %s\nlogs: %s", r.status, r.body, logs)
	}
	if r.header.Get("x-ratelimit-limit-requests") != "5" || r.header.Get("x-ratelimit-remaining-requests") != "4" ||
		r.header.Get("x-ratelimit-limit-tokens") != "2000" {
		t.Errorf("rate-limit headers %v", r.header)
	}
	last := up.LastRequest()
	if last.Header.Get("x-sluice-tenant") != "acme" || last.Header.Get("authorization") != "" {
		t.Errorf("upstream saw tenant %q, authorization %q", last.Header.Get("x-sluice-tenant"), last.Header.Get("authorization"))
	}
	// Routing by model: the alias is rewritten before the upstream sees it.
	r = chat("sk-demo-acme", "gpt-4o")
	if r.status != 200 || !strings.Contains(r.body, `"model":"demo"`) || !strings.Contains(string(up.LastRequest().Body), `"model":"demo"`) {
		t.Errorf("acme, gpt-4o: %d %s", r.status, r.body)
	}
	// acme may not use other models: apikey refuses before ratelimit
	// counts the request.
	if r := chat("sk-demo-acme", "demo-large"); r.status != 403 || r.errorCode() != "model_not_allowed" {
		t.Errorf("acme, demo-large: %d %s", r.status, r.body)
	}
	// beta may: demo-large matches the route "demo*"; mistral matches none.
	if r := chat("sk-demo-beta", "demo-large"); r.status != 200 {
		t.Errorf("beta, demo-large: %d %s", r.status, r.body)
	}
	if r := chat("sk-demo-beta", "mistral"); r.status != 404 || r.errorCode() != "model_not_found" {
		t.Errorf("beta, mistral: %d %s", r.status, r.body)
	}
	// acme has used 2 of its 5 requests per minute.
	for i := range 3 {
		if r := chat("sk-demo-acme", "demo"); r.status != 200 {
			t.Fatalf("acme request %d: %d %s", i+3, r.status, r.body)
		}
	}
	r = chat("sk-demo-acme", "demo")
	if r.status != 429 || r.errorCode() != "rate_limit_exceeded" || r.header.Get("retry-after") == "" {
		t.Fatalf("acme past the limit: %d %v %s", r.status, r.header, r.body)
	}
	// beta's own bucket is untouched.
	if r := chat("sk-demo-beta", "demo"); r.status != 200 || r.header.Get("x-ratelimit-limit-requests") != "60" {
		t.Errorf("beta after acme's 429: %d %v", r.status, r.header)
	}
}
