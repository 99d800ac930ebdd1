//go:build !wasip1

package main

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/sluice-proxy/sluice/internal/pluginenv"
)

const pluginPkg = "plugins/extauth"

// authService admits "Bearer good" (with x-user-id: u1), refuses anything
// else with 403 and a JSON body, and answers 500 to "Bearer boom". It
// counts calls and records the last forwarded URI.
type authService struct {
	*httptest.Server
	calls   atomic.Int64
	lastURI atomic.Value
}

func newAuthService(t *testing.T) *authService {
	a := &authService{}
	a.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a.calls.Add(1)
		a.lastURI.Store(r.Method + " " + r.URL.Path + " " + r.Header.Get("x-forwarded-method") + " " + r.Header.Get("x-forwarded-uri"))
		switch r.Header.Get("authorization") {
		case "Bearer good":
			w.Header().Set("x-user-id", "u1")
			w.Header().Set("x-internal", "not copied")
		case "Bearer boom":
			w.WriteHeader(500)
		default:
			w.Header().Set("content-type", "application/json")
			w.Header().Set("www-authenticate", `Bearer error="invalid_token"`)
			w.WriteHeader(403)
			w.Write([]byte(`{"error":{"message":"token rejected","type":"invalid_request_error","param":null,"code":"bad_token"}}`))
		}
	}))
	t.Cleanup(a.Close)
	return a
}

// TestEndToEnd checks admission, refusal, header copying, caching and the
// failure mode through the real host's HTTP callouts.
func TestEndToEnd(t *testing.T) {
	cfg, ups := pluginenv.Pools(t, "default")
	up := ups["default"]
	auth := newAuthService(t)
	cfg = cfg.WithUpstream("auth", auth.URL)
	e := pluginenv.Start(t, cfg, pluginenv.PluginConfig(t, pluginPkg, `{"pool": "auth", "path": "/check", "copy_headers": ["x-user-id"], "cache_ttl": "1m"}`))
	const chat = `{"model":"m","messages":[{"role":"user","content":"hi"}]}`

	resp, body := e.Do(t, "POST", "/v1/chat/completions", chat, "authorization", "Bearer good", "x-user-id", "spoofed")
	if strings.Contains(e.Logs.String(), "does not support HTTP callouts") {
		t.Skip("the wasm host does not implement proxy_http_call yet; extauth cannot run")
	}
	if resp.StatusCode != 200 {
		t.Fatalf("admitted: %d %s\nlogs: %s", resp.StatusCode, body, e.Logs)
	}
	last := up.LastRequest()
	if got := last.Header.Values("x-user-id"); len(got) != 1 || got[0] != "u1" {
		t.Errorf("upstream saw x-user-id %q, want [u1] (copied, the client's value dropped)", got)
	}
	if got := last.Header.Get("x-internal"); got != "" {
		t.Errorf("upstream saw x-internal %q, which is not in copy_headers", got)
	}
	if got, _ := auth.lastURI.Load().(string); got != "GET /check POST /v1/chat/completions" {
		t.Errorf("auth service saw %q", got)
	}
	// Cached: the same credentials do not call the service again.
	calls := auth.calls.Load()
	if resp, _ := e.Do(t, "POST", "/v1/chat/completions", chat, "authorization", "Bearer good"); resp.StatusCode != 200 {
		t.Errorf("cached admission: %d", resp.StatusCode)
	}
	if auth.calls.Load() != calls {
		t.Errorf("the cached decision called the service again (%d calls, want %d)", auth.calls.Load(), calls)
	}
	if got := up.LastRequest().Header.Get("x-user-id"); got != "u1" {
		t.Errorf("cached admission: upstream saw x-user-id %q", got)
	}

	n := up.Requests()
	resp, body = e.Do(t, "POST", "/v1/chat/completions", chat, "authorization", "Bearer bad")
	if resp.StatusCode != 403 || !strings.Contains(body, `"code":"bad_token"`) || resp.Header.Get("www-authenticate") == "" {
		t.Errorf("refused: %d %q %s", resp.StatusCode, resp.Header.Get("www-authenticate"), body)
	}
	// A refusal is cached too.
	calls = auth.calls.Load()
	if resp, _ := e.Do(t, "POST", "/v1/chat/completions", chat, "authorization", "Bearer bad"); resp.StatusCode != 403 || auth.calls.Load() != calls {
		t.Errorf("cached refusal: %d, %d calls (want %d)", resp.StatusCode, auth.calls.Load(), calls)
	}
	// A 5xx is a failure: 503, not cached.
	resp, body = e.Do(t, "POST", "/v1/chat/completions", chat, "authorization", "Bearer boom")
	if resp.StatusCode != 503 || !strings.Contains(body, "auth_unavailable") {
		t.Errorf("auth failure: %d %s", resp.StatusCode, body)
	}
	calls = auth.calls.Load()
	e.Do(t, "POST", "/v1/chat/completions", chat, "authorization", "Bearer boom")
	if auth.calls.Load() != calls+1 {
		t.Error("a failed decision was cached")
	}
	if up.Requests() != n {
		t.Errorf("refused requests reached the upstream (%d, want %d)", up.Requests(), n)
	}
	// The service gone: fail closed.
	auth.Close()
	resp, _ = e.Do(t, "POST", "/v1/chat/completions", chat, "authorization", "Bearer other")
	if resp.StatusCode != 503 {
		t.Errorf("service down: %d, want 503", resp.StatusCode)
	}
	for result, n := range map[string]string{"allowed": "2", "denied": "2", "failed": "3"} {
		e.CheckMetric(t, `sluice_wasm_extauth_decisions_total{plugin="extauth",result="`+result+`"}`, n)
	}
	e.CheckMetric(t, `sluice_wasm_extauth_cache_hits_total{plugin="extauth"}`, "2")
}

func TestEndToEndBadConfig(t *testing.T) {
	pluginenv.LoadFails(t, pluginPkg, `{"pool": "auth", "timeout": "5"}`,
		`extauth: timeout: \"5\" is not a duration`, `extauth: timeout: "5" is not a duration`)
}
