//go:build !wasip1

package main

import (
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluice-proxy/sluice/internal/pluginenv"
	"github.com/sluice-proxy/sluice/internal/plugintest"
	"github.com/sluice-proxy/sluice/proxy"
	"github.com/sluice-proxy/sluice/proxy/proxytest"
)

const pluginPkg = "plugins/ratelimit"

func upstream(t testing.TB, opts proxytest.Options) *proxytest.Server {
	t.Helper()
	up := proxytest.NewServer(opts)
	t.Cleanup(up.Close)
	return up
}

const chat = `{"model":"m","messages":[{"role":"user","content":"hi"}]}`

// TestEndToEndRequests limits requests per minute per tenant header and,
// without the header, per client IP.
func TestEndToEndRequests(t *testing.T) {
	up := upstream(t, proxytest.Options{})
	e := pluginenv.Start(t, proxy.NewConfig().WithUpstream("default", up.URL),
		pluginenv.PluginConfig(t, pluginPkg, `{"requests_per_minute": 3, "overrides": {"vip": {"requests_per_minute": 5}}}`))
	for i := range 3 {
		resp, body := e.Do(t, "POST", "/v1/chat/completions", chat, "x-sluice-tenant", "acme")
		if resp.StatusCode != 200 {
			t.Fatalf("request %d: %d %s\nlogs: %s", i, resp.StatusCode, body, e.Logs)
		}
		for name, want := range map[string]string{"x-ratelimit-limit-requests": "3",
			"x-ratelimit-remaining-requests": strconv.Itoa(2 - i)} {
			if got := resp.Header.Get(name); got != want {
				t.Errorf("request %d: %s = %q, want %q", i, name, got, want)
			}
		}
		if got := resp.Header.Get("x-ratelimit-reset-requests"); !strings.HasSuffix(got, "s") {
			t.Errorf("request %d: x-ratelimit-reset-requests = %q", i, got)
		}
		if resp.Header.Get("x-ratelimit-limit-tokens") != "" {
			t.Errorf("request %d: token headers without a token limit", i)
		}
	}
	resp, body := e.Do(t, "POST", "/v1/chat/completions", chat, "x-sluice-tenant", "acme")
	if resp.StatusCode != 429 {
		t.Fatalf("4th request: %d %s", resp.StatusCode, body)
	}
	checkRateLimited(t, resp, body, "requests")
	if up.Requests() != 3 {
		t.Errorf("upstream saw %d requests, want 3", up.Requests())
	}
	// Another tenant, an override, and the client IP have their own buckets.
	if resp, body := e.Do(t, "POST", "/v1/chat/completions", chat, "x-sluice-tenant", "beta"); resp.StatusCode != 200 {
		t.Errorf("other tenant: %d %s", resp.StatusCode, body)
	}
	resp, _ = e.Do(t, "POST", "/v1/chat/completions", chat, "x-sluice-tenant", "vip")
	if resp.StatusCode != 200 || resp.Header.Get("x-ratelimit-limit-requests") != "5" {
		t.Errorf("override: %d, limit %q", resp.StatusCode, resp.Header.Get("x-ratelimit-limit-requests"))
	}
	for i := range 4 {
		resp, _ := e.Do(t, "GET", "/v1/models", "")
		if want := map[bool]int{true: 200, false: 429}[i < 3]; resp.StatusCode != want {
			t.Errorf("IP-keyed request %d: %d, want %d", i, resp.StatusCode, want)
		}
	}
	e.CheckMetric(t, `sluice_wasm_ratelimit_admitted_total{plugin="ratelimit"}`, "8")
	e.CheckMetric(t, `sluice_wasm_ratelimit_limited_total{plugin="ratelimit",type="requests"}`, "2")
	e.CheckMetric(t, `sluice_wasm_ratelimit_limited_total{plugin="ratelimit",type="tokens"}`, "0")
	e.CheckMetric(t, `sluice_wasm_ratelimit_state_failures_total{plugin="ratelimit"}`, "0")
}

func checkRateLimited(t *testing.T, resp *http.Response, body, typ string) {
	t.Helper()
	var env plugintest.OpenAIError
	if err := json.Unmarshal([]byte(body), &env); err != nil {
		t.Fatalf("429 body %q: %v", body, err)
	}
	if env.Error.Type != typ || env.Error.Code != "rate_limit_exceeded" || env.Error.Message == "" {
		t.Errorf("429 body %s, want type %s code rate_limit_exceeded", body, typ)
	}
	if ra, err := strconv.Atoi(resp.Header.Get("retry-after")); err != nil || ra < 1 {
		t.Errorf("429 retry-after %q", resp.Header.Get("retry-after"))
	}
	if ms, err := strconv.Atoi(resp.Header.Get("retry-after-ms")); err != nil || ms < 1 {
		t.Errorf("429 retry-after-ms %q", resp.Header.Get("retry-after-ms"))
	}
	if resp.Header.Get("x-ratelimit-remaining-"+typ) == "" || resp.Header.Get("content-type") != "application/json" {
		t.Errorf("429 headers %v", resp.Header)
	}
}

// remainingTokens polls with token-free requests until the tenant's
// remaining tokens reach at least want: a response's charge is settled
// when the proxy finishes the request, which may be just after the client
// has read the whole response.
func remainingTokens(t *testing.T, e *pluginenv.Env, tenant string, want int) int {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		resp, body := e.Do(t, "GET", "/v1/models", "", "x-sluice-tenant", tenant)
		if resp.StatusCode != 200 {
			t.Fatalf("GET /v1/models: %d %s", resp.StatusCode, body)
		}
		n, err := strconv.Atoi(resp.Header.Get("x-ratelimit-remaining-tokens"))
		if err != nil {
			t.Fatalf("x-ratelimit-remaining-tokens %q", resp.Header.Get("x-ratelimit-remaining-tokens"))
		}
		if n >= want || time.Now().After(deadline) {
			return n
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestEndToEndTokens charges max_tokens up front and settles with the
// usage of JSON replies and of the last SSE chunk.
func TestEndToEndTokens(t *testing.T) {
	up := upstream(t, proxytest.Options{Tokens: 8})
	e := pluginenv.Start(t, proxy.NewConfig().WithUpstream("default", up.URL), pluginenv.PluginConfig(t, pluginPkg, `{"tokens_per_minute": 100}`))
	// Each completion uses 1 prompt word + 8 tokens = 9 tokens.
	req := func(maxTokens int, stream bool) (*http.Response, string) {
		body := `{"model":"m","messages":[{"role":"user","content":"hi"}],"max_tokens":` + strconv.Itoa(maxTokens)
		if stream {
			body += `,"stream":true,"stream_options":{"include_usage":true}`
		}
		return e.Do(t, "POST", "/v1/chat/completions", body+"}", "x-sluice-tenant", "acme")
	}
	resp, body := req(60, false)
	if resp.StatusCode != 200 || resp.Header.Get("x-ratelimit-remaining-tokens") != "40" || resp.Header.Get("x-ratelimit-limit-tokens") != "100" {
		t.Fatalf("first: %d remaining %q: %s\nlogs: %s", resp.StatusCode, resp.Header.Get("x-ratelimit-remaining-tokens"), body, e.Logs)
	}
	// Settled to 9 used: about 91 left (plus refill), so 80 fits.
	if n := remainingTokens(t, e, "acme", 91); n < 91 {
		t.Fatalf("after the JSON reply %d tokens remain, want >= 91 (usage not settled)", n)
	}
	resp, body = req(80, true)
	if resp.StatusCode != 200 || !strings.Contains(body, `"total_tokens":9`) {
		t.Fatalf("streamed: %d %s", resp.StatusCode, body)
	}
	if resp.Header.Get("content-type") != "text/event-stream" {
		t.Errorf("streamed content-type %q", resp.Header.Get("content-type"))
	}
	// Charged 80, settled to 9 from the usage chunk: about 82 left.
	if n := remainingTokens(t, e, "acme", 82); n < 82 {
		t.Fatalf("after the stream %d tokens remain, want >= 82 (SSE usage not settled)", n)
	}
	// A stream without usage keeps its estimate.
	resp, _ = e.Do(t, "POST", "/v1/chat/completions", `{"model":"m","messages":[{"role":"user","content":"hi"}],"max_tokens":50,"stream":true}`,
		"x-sluice-tenant", "acme")
	if resp.StatusCode != 200 {
		t.Fatalf("stream without usage: %d", resp.StatusCode)
	}
	if n := remainingTokens(t, e, "acme", 0); n > 40 {
		t.Errorf("after a stream without usage %d tokens remain, want about 32 (the estimate kept)", n)
	}
	resp, body = req(60, false)
	if resp.StatusCode != 429 {
		t.Fatalf("over the token limit: %d %s", resp.StatusCode, body)
	}
	checkRateLimited(t, resp, body, "tokens")
	// More than the limit can never fit: no retry.
	resp, body = e.Do(t, "POST", "/v1/chat/completions", `{"model":"m","messages":[],"max_tokens":1000}`, "x-sluice-tenant", "other")
	if resp.StatusCode != 429 || resp.Header.Get("x-should-retry") != "false" || !strings.Contains(body, "Request too large") {
		t.Errorf("too large: %d %q %s", resp.StatusCode, resp.Header.Get("x-should-retry"), body)
	}
	// A failed upstream answer gives the tokens back: about 32 remain
	// before it, 2 right after admission, 32 once it is settled.
	up.SetFailMode(proxytest.Fail500)
	resp, _ = req(30, false)
	if resp.StatusCode != 500 {
		t.Fatalf("failing upstream: %d", resp.StatusCode)
	}
	if got, err := strconv.Atoi(resp.Header.Get("x-ratelimit-remaining-tokens")); err != nil || got > 9 {
		t.Errorf("failing upstream: remaining tokens %d (%v) after admission, want a few", got, err)
	}
	up.SetFailMode(proxytest.FailNone)
	if n := remainingTokens(t, e, "acme", 30); n < 30 {
		t.Errorf("after a failed request %d tokens remain, want >= 30 (refunded)", n)
	}
	// Usage settled: 9 tokens from the JSON reply, 9 from the stream.
	e.CheckMetric(t, `sluice_wasm_ratelimit_usage_tokens_total{plugin="ratelimit"}`, "18")
	e.CheckMetric(t, `sluice_wasm_ratelimit_limited_total{plugin="ratelimit",type="tokens"}`, "2")
}

// TestEndToEndHammer sends concurrent requests for one tenant through two
// plugin instances: the shared buckets admit exactly the limit (plus what
// refills meanwhile), so compare-and-swap loses no update.
func TestEndToEndHammer(t *testing.T) {
	up := upstream(t, proxytest.Options{})
	const limit, total = 30, 60
	e := pluginenv.Start(t, proxy.NewConfig().WithUpstream("default", up.URL), pluginenv.PluginConfig(t, pluginPkg, `{"requests_per_minute": 30}`))
	var ok, limited, other atomic.Int64
	var wg sync.WaitGroup
	begin := time.Now()
	for range total {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req, _ := http.NewRequest("POST", e.URL+"/v1/chat/completions", strings.NewReader(chat))
			req.Header.Set("x-sluice-tenant", "hammer")
			resp, err := e.Client.Do(req)
			if err != nil {
				other.Add(1)
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			switch resp.StatusCode {
			case 200:
				ok.Add(1)
			case 429:
				limited.Add(1)
			default:
				other.Add(1)
			}
		}()
	}
	wg.Wait()
	refilled := int64(time.Since(begin).Seconds()*limit/60) + 1
	if other.Load() != 0 || ok.Load() < limit || ok.Load() > limit+refilled || ok.Load()+limited.Load() != total {
		t.Fatalf("%d admitted, %d limited, %d other; want %d admitted (+ up to %d refilled)\nlogs: %s",
			ok.Load(), limited.Load(), other.Load(), limit, refilled, e.Logs)
	}
}

func TestEndToEndBadConfig(t *testing.T) {
	pluginenv.LoadFails(t, pluginPkg, `{"requests_per_minute": -1}`,
		"ratelimit: requests_per_minute: -1 is negative")
}
