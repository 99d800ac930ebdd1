//go:build !wasip1

package main

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/sluice-proxy/sluice/internal/pluginenv"
	"github.com/sluice-proxy/sluice/proxy"
)

const pluginPkg = "plugins/modelrouter"

const routerConfig = `{"aliases": {"gpt-4o": "llama-3"},
	"routes": [{"model": "llama-3*", "pools": [{"pool": "stable", "weight": 50}, {"pool": "canary", "weight": 50}], "fallback": "backup"}],
	"reject_unknown_models": true}`

// poolNames are the pools the tests put a proxytest upstream behind each
// of (pluginenv.Pools); "other" is first, so the proxy's own routing (no
// routes: the first pool) is told apart from the plugin's.
var poolNames = []string{"other", "stable", "canary", "backup"}

func chatFor(model string) string {
	return `{"model":"` + model + `","messages":[{"role":"user","content":"hi"}]}`
}

// TestEndToEndRouting rewrites an alias, splits a route between two pools
// by weight and refuses unknown models.
func TestEndToEndRouting(t *testing.T) {
	// No active health checks here: on a starved machine one 20 ms probe
	// can time out, take a pool out of rotation and divert a request,
	// which this test would read as a broken split. Health is
	// TestEndToEndFallback's subject.
	cfg, _ := pluginenv.Pools(t, poolNames...)
	e := pluginenv.Start(t, cfg, pluginenv.PluginConfig(t, pluginPkg, routerConfig))
	seen := map[string]int{}
	for range 40 {
		resp, body := e.Do(t, "POST", "/v1/chat/completions", chatFor("gpt-4o"))
		if resp.StatusCode != 200 {
			t.Fatalf("%d %s\nlogs: %s", resp.StatusCode, body, e.Logs)
		}
		var c struct {
			Model string `json:"model"`
		}
		if err := json.Unmarshal([]byte(body), &c); err != nil || c.Model != "llama-3" {
			t.Fatalf("the upstream saw model %q (%v), want the alias target llama-3: %s", c.Model, err, body)
		}
		seen[resp.Header.Get("x-upstream-name")]++
	}
	if seen["stable"] == 0 || seen["canary"] == 0 || seen["stable"]+seen["canary"] != 40 {
		t.Errorf("pools chosen %v, want a split between stable and canary", seen)
	}
	resp, body := e.Do(t, "POST", "/v1/chat/completions", chatFor("llama-3-70b"))
	if up := resp.Header.Get("x-upstream-name"); resp.StatusCode != 200 || (up != "stable" && up != "canary") {
		t.Errorf("llama-3-70b: %d via %q: %s", resp.StatusCode, up, body)
	}
	resp, body = e.Do(t, "POST", "/v1/chat/completions", chatFor("mistral"))
	if resp.StatusCode != 404 || !strings.Contains(body, `"code":"model_not_found"`) || !strings.Contains(body, "`mistral`") {
		t.Errorf("unknown model: %d %s", resp.StatusCode, body)
	}
	// A request without a model is left to the proxy's routes.
	if resp, _ := e.Do(t, "GET", "/v1/models", ""); resp.StatusCode != 200 || resp.Header.Get("x-upstream-name") != "other" {
		t.Errorf("GET /v1/models: %d via %q, want the first pool", resp.StatusCode, resp.Header.Get("x-upstream-name"))
	}
	e.CheckMetric(t, `sluice_wasm_modelrouter_alias_rewrites_total{plugin="modelrouter"}`, "40")
	e.CheckMetric(t, `sluice_wasm_modelrouter_unknown_models_total{plugin="modelrouter"}`, "1")
	e.CheckMetric(t, `sluice_wasm_modelrouter_routed_total{plugin="modelrouter",pool="backup"}`, "0")
	e.CheckMetric(t, `sluice_wasm_modelrouter_diverted_total{plugin="modelrouter"}`, "0")
}

// TestEndToEndFallback takes the route's pools out of rotation: requests
// move to the fallback pool, as sluice.upstreams reports.
func TestEndToEndFallback(t *testing.T) {
	cfg, ups := pluginenv.Pools(t, poolNames...)
	// Pools other than "other" are health-checked every 20ms.
	for i := range cfg.Upstreams {
		if cfg.Upstreams[i].Name != "other" {
			cfg.Upstreams[i].HealthCheck = &proxy.HealthCheckConfig{Interval: proxy.Duration(20 * time.Millisecond),
				Timeout: proxy.Duration(20 * time.Millisecond), UnhealthyThreshold: 1, HealthyThreshold: 1}
		}
	}
	e := pluginenv.Start(t, cfg, pluginenv.PluginConfig(t, pluginPkg, routerConfig))
	if resp, body := e.Do(t, "POST", "/v1/chat/completions", chatFor("llama-3")); resp.StatusCode != 200 {
		t.Fatalf("%d %s", resp.StatusCode, body)
	}
	if strings.Contains(e.Logs.String(), "the host has no sluice.upstreams property") {
		t.Skip("the wasm host does not provide the sluice.upstreams property yet; health-aware fallback cannot run")
	}
	ups["canary"].SetHealthy(false)
	// Canary out of rotation: every request goes to stable.
	waitFor(t, e, "stable", 20)
	ups["stable"].SetHealthy(false)
	waitFor(t, e, "backup", 10)
	if m := e.Metric(`sluice_wasm_modelrouter_diverted_total{plugin="modelrouter"} `); m == "" || strings.HasSuffix(m, " 0") {
		t.Errorf("diverted requests were not counted: %q", m)
	}
	ups["stable"].SetHealthy(true)
	ups["canary"].SetHealthy(true)
	deadline := time.Now().Add(5 * time.Second)
	for {
		resp, _ := e.Do(t, "POST", "/v1/chat/completions", chatFor("llama-3"))
		if up := resp.Header.Get("x-upstream-name"); up == "stable" || up == "canary" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("requests did not return to the route's pools after they recovered")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// waitFor sends requests until n in a row went to pool.
func waitFor(t *testing.T, e *pluginenv.Env, pool string, n int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	var last string
	for run := 0; run < n; {
		resp, body := e.Do(t, "POST", "/v1/chat/completions", chatFor("llama-3"))
		last = resp.Header.Get("x-upstream-name")
		if resp.StatusCode == 200 && last == pool {
			run++
			continue
		}
		run = 0
		if time.Now().After(deadline) {
			t.Fatalf("requests still reach %q (%d %s), want %d in a row to %q\nlogs: %s", last, resp.StatusCode, body, n, pool, e.Logs)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestEndToEndBadConfig(t *testing.T) {
	pluginenv.LoadFails(t, pluginPkg, `{"routes": [{"model": "m", "pools": [{"pool": "p", "weight": -5}]}]}`,
		"modelrouter: routes[0].pools[0].weight: -5 is not in 0..1000000")
}
