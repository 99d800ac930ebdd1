//go:build !wasip1

package main

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/sluice-proxy/sluice/internal/pluginenv"
	"github.com/sluice-proxy/sluice/proxy"
)

const pluginPkg = "plugins/apikey"

// TestEndToEnd runs the built plugin in the real host and proxy in front
// of the fake OpenAI upstream.
func TestEndToEnd(t *testing.T) {
	cfg, ups := pluginenv.Pools(t, "default")
	up := ups["default"]
	e := pluginenv.Start(t, cfg, pluginenv.PluginConfig(t, pluginPkg, `{"keys": [
		{"key": "sk-acme", "tenant": "acme", "models": ["gpt-4o", "llama-*"]},
		{"key": "sk-beta", "tenant": "beta"}]}`))
	const chat = "/v1/chat/completions"
	post := func(t *testing.T, path, body string, headers ...string) (*http.Response, string) {
		t.Helper()
		return e.Do(t, "POST", path, body, headers...)
	}
	const body = `{"model":"llama-3-8b","messages":[{"role":"user","content":"hi"}]}`

	for _, c := range []struct {
		name    string
		headers []string
	}{{"no key", nil}, {"unknown key", []string{"authorization", "Bearer sk-nope"}}, {"basic auth", []string{"authorization", "Basic c2stYWNtZQ=="}}} {
		resp, got := post(t, chat, body, c.headers...)
		if resp.StatusCode != 401 || got != string(unauthorized.body) {
			t.Errorf("%s: %d %s, want 401 %s", c.name, resp.StatusCode, got, unauthorized.body)
		}
		if resp.Header.Get("www-authenticate") == "" {
			t.Errorf("%s: 401 without www-authenticate", c.name)
		}
	}
	if n := up.Requests(); n != 0 {
		t.Fatalf("%d rejected requests reached the upstream", n)
	}

	resp, got := post(t, chat, body, "authorization", "Bearer sk-acme", "x-sluice-tenant", "spoofed")
	if resp.StatusCode != 200 {
		t.Fatalf("accepted key: %d %s\nlogs: %s", resp.StatusCode, got, e.Logs)
	}
	last := up.LastRequest()
	if v := last.Header.Get("x-sluice-tenant"); v != "acme" {
		t.Errorf("upstream saw x-sluice-tenant %q, want acme", v)
	}
	if v := last.Header.Values("x-sluice-tenant"); len(v) != 1 {
		t.Errorf("upstream saw x-sluice-tenant %q, want one value", v)
	}
	if v := last.Header.Get("authorization"); v != "" {
		t.Errorf("upstream saw authorization %q, want it removed", v)
	}

	resp, got = post(t, chat, `{"model":"gpt-4o-mini","messages":[]}`, "x-api-key", "sk-acme")
	if resp.StatusCode != 403 || !strings.Contains(got, `"code":"model_not_allowed"`) {
		t.Errorf("model outside the allow-list: %d %s, want 403 model_not_allowed", resp.StatusCode, got)
	}
	resp, got = post(t, chat, `{"model":"gpt-4o","model":"gpt-5","messages":[]}`, "x-api-key", "sk-acme")
	if resp.StatusCode != 400 {
		t.Errorf("duplicate model: %d %s, want 400", resp.StatusCode, got)
	}
	resp, got = post(t, chat, `{"model":"gpt-5","messages":[{"role":"user","content":"hi"}]}`, "x-api-key", "sk-beta")
	if resp.StatusCode != 200 {
		t.Errorf("unrestricted key: %d %s", resp.StatusCode, got)
	}
	if v := up.LastRequest().Header.Get("x-api-key"); v != "" {
		t.Errorf("upstream saw x-api-key %q, want it removed", v)
	}
	if v := up.LastRequest().Header.Get("x-sluice-tenant"); v != "beta" {
		t.Errorf("upstream saw x-sluice-tenant %q, want beta", v)
	}
	if n := up.Requests(); n != 2 {
		t.Errorf("upstream saw %d requests, want the 2 accepted ones", n)
	}
	for result, n := range map[string]string{"accepted": "2", "unauthorized": "3", "model_not_allowed": "1", "invalid_body": "1", "error": "0"} {
		e.CheckMetric(t, `sluice_wasm_apikey_requests_total{plugin="apikey",result="`+result+`"}`, n)
	}
}

func TestEndToEndBadConfig(t *testing.T) {
	pluginenv.LoadFails(t, pluginPkg, `{"keys": [{"key": "sk-1"}]}`,
		"apikey: keys[0].tenant: required")
}

// TestEndToEndLargeBody sends a 1 MiB prompt through the model check with a
// tight call timeout (60 ms): the guest's JSON scan must stay fast under a
// host that can interrupt it. A byte-at-a-time scan took about 60 ms per
// MiB there, the word-at-a-time one about 5; the whole callback, copying
// the body into the guest included, takes about 10.
func TestEndToEndLargeBody(t *testing.T) {
	cfg, _ := pluginenv.Pools(t, "default")
	pc := pluginenv.PluginConfig(t, pluginPkg, `{"keys": [{"key": "sk-1", "tenant": "t", "models": ["m"]}]}`)
	pc.CallTimeout = proxy.Duration(60 * time.Millisecond)
	e := pluginenv.Start(t, cfg.WithMaxRequestBodySize(4<<20), pc)
	line := "The quick brown fox jumps over the lazy dog, again and again, until the line ends.\\n"
	body := `{"model":"m","messages":[{"role":"user","content":"` + strings.Repeat(line, (1<<20)/len(line)) + `"}]}`
	for i := range 3 {
		resp, got := e.Do(t, "POST", "/v1/chat/completions", body, "x-api-key", "sk-1")
		if resp.StatusCode != 200 {
			t.Fatalf("request %d with a %d-byte body: %d %.200s\nlogs: %.2000s", i, len(body), resp.StatusCode, got, e.Logs)
		}
	}
}
