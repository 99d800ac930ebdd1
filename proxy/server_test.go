package proxy

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/sluice-proxy/sluice/internal/testsync"
	"github.com/sluice-proxy/sluice/proxy/proxytest"
	"github.com/valyala/fasthttp"
)

func TestForwardHeaders(t *testing.T) {
	up := startUpstream(t, proxytest.Options{Name: "up"})
	p := startProxy(t, baseConfig(up.URL), Options{})
	c := newClient()

	resp, body := doRequest(t, c, "GET", p.URL+"/some/path?q=1", "", map[string]string{
		"X-Forwarded-For":     "6.6.6.6",
		"X-Forwarded-Proto":   "https",
		"Proxy-Authorization": "secret",
		"Te":                  "trailers",
		"X-Custom":            "kept",
	})
	if resp.StatusCode != 200 || !strings.Contains(body, "GET /some/path") {
		t.Fatalf("status %d body %q", resp.StatusCode, body)
	}
	id := resp.Header.Get("x-request-id")
	if len(id) != 32 {
		t.Fatalf("generated x-request-id = %q", id)
	}
	got := up.LastRequest()
	if got.Header.Get("X-Request-Id") != id {
		t.Fatalf("upstream saw x-request-id %q, client got %q", got.Header.Get("X-Request-Id"), id)
	}
	if xff := got.Header.Get("X-Forwarded-For"); xff != "127.0.0.1" {
		t.Fatalf("X-Forwarded-For = %q: client value must not be trusted", xff)
	}
	if proto := got.Header.Get("X-Forwarded-Proto"); proto != "http" {
		t.Fatalf("X-Forwarded-Proto = %q", proto)
	}
	for _, h := range []string{"Proxy-Authorization", "Te"} {
		if v := got.Header.Get(h); v != "" {
			t.Fatalf("hop-by-hop header %s forwarded: %q", h, v)
		}
	}
	if got.Header.Get("X-Custom") != "kept" || got.Path != "/some/path" || got.RawQuery != "q=1" {
		t.Fatalf("upstream saw %+v", got)
	}

	// A client's request id is kept.
	resp, _ = doRequest(t, c, "GET", p.URL+"/x", "", map[string]string{"X-Request-Id": "client-id-1"})
	if resp.Header.Get("x-request-id") != "client-id-1" || up.LastRequest().Header.Get("X-Request-Id") != "client-id-1" {
		t.Fatalf("client request id not kept: %q", resp.Header.Get("x-request-id"))
	}
	checkSlotsFree(t, p.Router())
	if m := p.Router().Metrics(); m.Completed != 2 || m.Failed != 0 {
		t.Fatalf("metrics %+v", m)
	}
}

func TestTrustForwardedHeaders(t *testing.T) {
	up := startUpstream(t, proxytest.Options{})
	cfg := baseConfig(up.URL)
	cfg.TrustForwardedHeaders = true
	p := startProxy(t, cfg, Options{})
	doRequest(t, newClient(), "GET", p.URL+"/", "", map[string]string{"X-Forwarded-For": "10.0.0.1", "X-Forwarded-Proto": "https"})
	got := up.LastRequest()
	if xff := got.Header.Get("X-Forwarded-For"); xff != "10.0.0.1, 127.0.0.1" {
		t.Fatalf("X-Forwarded-For = %q", xff)
	}
	if got.Header.Get("X-Forwarded-Proto") != "https" {
		t.Fatalf("X-Forwarded-Proto = %q", got.Header.Get("X-Forwarded-Proto"))
	}
}

// TestCanonicalNames: the names set with SetCanonical are what
// fasthttp's normalisation makes of them, so skipping it changes nothing.
func TestCanonicalNames(t *testing.T) {
	for _, k := range [][]byte{strXForwardedFor, strXForwardedProto, canonXRequestID} {
		var h fasthttp.RequestHeader
		h.SetBytesKV(k, []byte("v"))
		var c fasthttp.RequestHeader
		c.SetCanonical(k, []byte("v"))
		if h.String() != c.String() {
			t.Fatalf("%s is not canonical: %q vs %q", k, h.String(), c.String())
		}
	}
	if !strings.EqualFold(string(canonXRequestID), string(strXRequestID)) {
		t.Fatal("canonXRequestID names another header")
	}
}

func TestOverloaded429(t *testing.T) {
	for _, openAI := range []bool{true, false} {
		name := "tgi"
		if openAI {
			name = "openai"
		}
		t.Run(name, func(t *testing.T) {
			up := startUpstream(t, proxytest.Options{Fail: proxytest.FailHang})
			cfg := baseConfig(up.URL).WithMaxConcurrentRequests(1).WithOpenAICompat(openAI)
			p := startProxy(t, cfg, Options{})
			c := newClient()
			// Hold the only slot with a request the upstream never answers.
			holdDone := make(chan struct{})
			go func() {
				defer close(holdDone)
				req, _ := http.NewRequest("POST", p.URL+"/v1/chat/completions", strings.NewReader(chatBody))
				resp, err := newClient().Do(req)
				if err == nil {
					resp.Body.Close()
				}
			}()
			waitFor(t, "slot taken", func() bool { return p.Router().Metrics().Active == 1 })

			for _, body := range []string{chatBody, chatStreamBody} {
				resp, got := doRequest(t, c, "POST", p.URL+"/v1/chat/completions", body, map[string]string{"Content-Type": "application/json"})
				if resp.StatusCode != 429 {
					t.Fatalf("status %d, want 429 (body %q)", resp.StatusCode, got)
				}
				if resp.Header.Get("Retry-After") != "1" || resp.Header.Get("retry-after-ms") != "1000" {
					t.Fatalf("retry headers: %v", resp.Header)
				}
				if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
					t.Fatalf("content type %q", ct)
				}
				checkErrorShape(t, openAI, got, "overloaded")
			}
			if m := p.Router().Metrics(); m.Rejected != 2 {
				t.Fatalf("rejected = %d", m.Rejected)
			}
			up.Close() // ends the held request
			<-holdDone
			checkSlotsFree(t, p.Router())
		})
	}
}

// checkErrorShape checks an error body: OpenAI's with code, or TGI's with
// error_type.
func checkErrorShape(t *testing.T, openAI bool, body, code string) {
	t.Helper()
	if openAI {
		var v testsync.OpenAIError
		if err := json.Unmarshal([]byte(body), &v); err != nil || v.Error.Message == "" || v.Error.Type == "" {
			t.Fatalf("not an OpenAI error: %q (%v)", body, err)
		}
		if !strings.Contains(body, `"param":null`) {
			t.Fatalf("OpenAI error without param null: %q", body)
		}
		if code == "overloaded" && (v.Error.Type != "overloaded_error" || v.Error.Code != "overloaded") {
			t.Fatalf("overload error = %+v", v.Error)
		}
		if code != "" && v.Error.Code != code {
			t.Fatalf("code = %q, want %q", v.Error.Code, code)
		}
		return
	}
	var v struct {
		Error     string `json:"error"`
		ErrorType string `json:"error_type"`
	}
	if err := json.Unmarshal([]byte(body), &v); err != nil || v.Error == "" || v.ErrorType == "" {
		t.Fatalf("not a TGI error: %q (%v)", body, err)
	}
	if code == "overloaded" && v.ErrorType != "overloaded" {
		t.Fatalf("error_type = %q", v.ErrorType)
	}
}

func TestProbes(t *testing.T) {
	up := startUpstream(t, proxytest.Options{})
	p := startProxy(t, baseConfig(up.URL), Options{})
	c := newClient()
	p.Router().SetReady(false)
	resp, body := doRequest(t, c, "GET", p.URL+"/health", "", nil)
	if resp.StatusCode != 200 || !strings.Contains(body, `"status":"starting"`) {
		t.Fatalf("/health before ready: %d %q", resp.StatusCode, body)
	}
	resp, _ = doRequest(t, c, "GET", p.URL+"/ready", "", nil)
	if resp.StatusCode != 503 {
		t.Fatalf("/ready before ready: %d", resp.StatusCode)
	}
	p.Router().SetReady(true)
	resp, body = doRequest(t, c, "GET", p.URL+"/ready", "", nil)
	if resp.StatusCode != 200 {
		t.Fatalf("/ready when ready: %d", resp.StatusCode)
	}
	var h Health
	if err := json.Unmarshal([]byte(body), &h); err != nil || h.Status != "healthy" || h.MaxConcurrentRequests != 128 {
		t.Fatalf("health JSON %q: %+v %v", body, h, err)
	}
	p.Router().StartDrain()
	resp, body = doRequest(t, c, "GET", p.URL+"/ready", "", nil)
	if resp.StatusCode != 503 || !strings.Contains(body, "unhealthy") {
		t.Fatalf("/ready draining: %d %q", resp.StatusCode, body)
	}
	if resp, _ := doRequest(t, c, "GET", p.URL+"/health", "", nil); resp.StatusCode != 200 {
		t.Fatalf("/health draining: %d", resp.StatusCode)
	}
	if m := p.Router().Metrics(); m.Total != 0 {
		t.Fatalf("probes took slots: %+v", m)
	}
}

func TestMetricsEndpoint(t *testing.T) {
	up := startUpstream(t, proxytest.Options{})
	p := startProxy(t, baseConfig(up.URL), Options{})
	c := newClient()
	doRequest(t, c, "GET", p.URL+"/a", "", nil)
	resp, body := doRequest(t, c, "GET", p.URL+"/metrics", "", nil)
	if resp.StatusCode != 200 {
		t.Fatalf("/metrics: %d", resp.StatusCode)
	}
	for _, want := range []string{
		"sluice_requests_total 1", "sluice_requests_completed_total 1", "sluice_requests_failed_total 0",
		`sluice_requests_rejected_total{reason="overloaded"} 0`, "sluice_active_requests 0",
		"sluice_max_concurrent_requests 128", "sluice_utilization 0", "sluice_success_rate 1",
		"sluice_request_duration_seconds_bucket", `sluice_upstream_requests_total{upstream="default",code="200"} 1`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("metrics lack %q", want)
		}
	}

	// Disabled metrics: /metrics is proxied like any path.
	p2 := startProxy(t, baseConfig(up.URL).WithEnableMetrics(false), Options{})
	_, body = doRequest(t, c, "GET", p2.URL+"/metrics", "", nil)
	if strings.Contains(body, "sluice_") {
		t.Fatalf("metrics served while disabled: %q", body)
	}
}

func TestRoutes(t *testing.T) {
	a := startUpstream(t, proxytest.Options{Name: "a"})
	b := startUpstream(t, proxytest.Options{Name: "b"})
	cfg := NewConfig().WithUpstream("a", a.URL).WithUpstream("b", b.URL).
		WithRoute(RouteMatch{Host: "api.example.com"}, "b").
		WithRoute(RouteMatch{PathPrefix: "/v1/", Headers: map[string]string{"X-Tier": "gold"}}, "b").
		WithRoute(RouteMatch{PathPrefix: "/v1/"}, "a")
	p := startProxy(t, cfg, Options{})
	c := newClient()
	tests := []struct {
		path string
		hdr  map[string]string
		want string // upstream name, or "" for 404
	}{
		{"/v1/models", nil, "a"},
		{"/v1/models", map[string]string{"X-Tier": "gold"}, "b"},
		{"/v1/models", map[string]string{"X-Tier": "silver"}, "a"},
		{"/other", map[string]string{"Host": "API.example.com:8080"}, "b"},
		{"/other", nil, ""},
	}
	for _, tc := range tests {
		resp, body := doRequest(t, c, "GET", p.URL+tc.path, "", tc.hdr)
		if tc.want == "" {
			if resp.StatusCode != 404 {
				t.Fatalf("%s %v: status %d, want 404", tc.path, tc.hdr, resp.StatusCode)
			}
			checkErrorShape(t, true, body, "route_not_found")
			continue
		}
		if got := resp.Header.Get("x-upstream-name"); got != tc.want {
			t.Fatalf("%s %v: went to %q, want %q", tc.path, tc.hdr, got, tc.want)
		}
	}

	// No routes: everything goes to the first pool.
	p2 := startProxy(t, NewConfig().WithUpstream("a", a.URL).WithUpstream("b", b.URL), Options{})
	if resp, _ := doRequest(t, c, "GET", p2.URL+"/anything", "", nil); resp.Header.Get("x-upstream-name") != "a" {
		t.Fatalf("no routes: went to %q", resp.Header.Get("x-upstream-name"))
	}
}

func TestRoundRobin(t *testing.T) {
	a := startUpstream(t, proxytest.Options{Name: "a"})
	b := startUpstream(t, proxytest.Options{Name: "b"})
	p := startProxy(t, baseConfig(a.URL, b.URL), Options{})
	c := newClient()
	for i := 0; i < 10; i++ {
		doRequest(t, c, "GET", p.URL+"/", "", nil)
	}
	if a.Requests() != 5 || b.Requests() != 5 {
		t.Fatalf("round robin: a=%d b=%d", a.Requests(), b.Requests())
	}
}

// checkUpstreamError POSTs body to path and asserts the answer: status,
// an error in OpenAI shape with code (or TGI shape), both slots free, and
// where countsFailed, one failed request in the metrics.
func checkUpstreamError(t *testing.T, c *http.Client, p *testProxy, path, body string, status int, openAI bool, code string, countsFailed bool) {
	t.Helper()
	resp, got := doRequest(t, c, "POST", p.URL+path, body, nil)
	if resp.StatusCode != status {
		t.Fatalf("status %d body %q", resp.StatusCode, got)
	}
	checkErrorShape(t, openAI, got, code)
	checkSlotsFree(t, p.Router())
	if m := p.Router().Metrics(); countsFailed && m.Failed != 1 {
		t.Fatalf("metrics %+v", m)
	}
}

func TestUpstreamErrors(t *testing.T) {
	c := newClient()
	t.Run("unreachable 502", func(t *testing.T) {
		up := startUpstream(t, proxytest.Options{})
		addr := up.URL
		up.Close() // nothing listens there now
		p := startProxy(t, baseConfig(addr), Options{})
		checkUpstreamError(t, c, p, "/v1/chat/completions", chatBody, 502, true, "bad_gateway", true)
	})
	t.Run("reset 502", func(t *testing.T) {
		up := startUpstream(t, proxytest.Options{Fail: proxytest.FailResetBeforeHeaders})
		p := startProxy(t, baseConfig(up.URL).WithOpenAICompat(false), Options{})
		checkUpstreamError(t, c, p, "/generate", `{"inputs":"x"}`, 502, false, "", false)
	})
	t.Run("timeout 504", func(t *testing.T) {
		up := startUpstream(t, proxytest.Options{HeaderDelay: 5 * time.Second})
		p := startProxy(t, baseConfig(up.URL).WithTimeout(200*time.Millisecond), Options{})
		checkUpstreamError(t, c, p, "/v1/chat/completions", chatBody, 504, true, "upstream_timeout", true)
	})
	t.Run("body too large 413", func(t *testing.T) {
		up := startUpstream(t, proxytest.Options{})
		p := startProxy(t, baseConfig(up.URL).WithMaxRequestBodySize(100), Options{})
		big := `{"model":"m","prompt":"` + strings.Repeat("x", 200) + `"}`
		resp, body := doRequest(t, c, "POST", p.URL+"/v1/completions", big, nil)
		if resp.StatusCode != 413 {
			t.Fatalf("status %d body %q", resp.StatusCode, body)
		}
		checkErrorShape(t, true, body, "request_too_large")
		// Chunked (no Content-Length) bodies are cut at the limit too.
		req, _ := http.NewRequest("POST", p.URL+"/v1/completions", struct{ *strings.Reader }{strings.NewReader(big)})
		req.ContentLength = -1
		r2, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		r2.Body.Close()
		if r2.StatusCode != 413 {
			t.Fatalf("chunked: status %d", r2.StatusCode)
		}
		// A body at the limit passes.
		ok := strings.Repeat("y", 100)
		if resp, _ := doRequest(t, c, "POST", p.URL+"/echo", ok, nil); resp.StatusCode != 200 {
			t.Fatalf("body at limit: %d", resp.StatusCode)
		}
		if up.LastRequest().Body == nil || string(up.LastRequest().Body) != ok {
			t.Fatalf("upstream got body %q", up.LastRequest().Body)
		}
		checkSlotsFree(t, p.Router())
		// The two 413s were refused while reading the body: they never
		// took a slot, and are counted as refused requests.
		if m := p.Router().Metrics(); m.Total != 3 || m.Refused != 2 || m.Failed != 0 || m.Completed != 1 {
			t.Fatalf("metrics %+v", m)
		}
	})
}
