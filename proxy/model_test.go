package proxy

import (
	"encoding/json"
	"strconv"
	"strings"
	"testing"

	"github.com/sluice-proxy/sluice/proxy/internal/testhttp"
	"github.com/sluice-proxy/sluice/proxy/proxytest"
)

// modelPools starts the upstreams of a two-pool model setup:
// pool "llama" (two endpoints) serves llama-3-8b, with aliases "llama"
// and "gpt-4o"; pool "mistral" serves mistral-7b.
func modelPools(t *testing.T) (llama []*proxytest.Server, mistral *proxytest.Server, cfg *Config) {
	t.Helper()
	llama = []*proxytest.Server{
		startUpstream(t, proxytest.Options{Name: "llama0", Models: []string{"llama-3-8b", "llama-3-8b-lora"}}),
		startUpstream(t, proxytest.Options{Name: "llama1", Models: []string{"llama-3-8b"}}),
	}
	mistral = startUpstream(t, proxytest.Options{Name: "mistral0", Models: []string{"mistral-7b"}})
	cfg = NewConfig().
		WithUpstreamConfig(UpstreamConfig{Name: "llama", Endpoints: urlsOf(llama), Models: []string{"llama-3-8b"},
			ModelAliases: map[string]string{"llama": "llama-3-8b", "gpt-4o": "llama-3-8b"}}).
		WithUpstreamConfig(UpstreamConfig{Name: "mistral", Endpoints: []string{mistral.URL}, Models: []string{"mistral-7b"}})
	return llama, mistral, cfg
}

func chatFor(model string) string {
	return `{"model":` + strconv.Quote(model) + `,"messages":[{"role":"user","content":"hello there"}]}`
}

func TestModelRouting(t *testing.T) {
	_, mistral, cfg := modelPools(t)
	p := startProxy(t, cfg, Options{})
	c := newClient()
	for model, want := range map[string]string{"mistral-7b": "mistral0", "llama-3-8b": "llama", "llama": "llama", "gpt-4o": "llama"} {
		resp, body := doRequest(t, c, "POST", p.URL+"/v1/chat/completions", chatFor(model), nil)
		if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("x-upstream-name"), want) {
			t.Fatalf("model %q: %d from %q: %s", model, resp.StatusCode, resp.Header.Get("x-upstream-name"), body)
		}
	}
	// Requests without a model (not /v1/, no body, not JSON) go to the
	// first pool.
	if resp, _ := doRequest(t, c, "GET", p.URL+"/info", "", nil); !strings.HasPrefix(resp.Header.Get("x-upstream-name"), "llama") {
		t.Fatalf("model-less request went to %q", resp.Header.Get("x-upstream-name"))
	}
	// An unknown model: 404 model_not_found naming it.
	resp, body := doRequest(t, c, "POST", p.URL+"/v1/chat/completions", chatFor("gpt-5"), nil)
	if resp.StatusCode != 404 {
		t.Fatalf("unknown model: %d %s", resp.StatusCode, body)
	}
	var e openAIError
	if err := json.Unmarshal([]byte(body), &e); err != nil || e.Error.Param == nil || *e.Error.Param != "model" ||
		e.Error.Code != "model_not_found" || e.Error.Type != "invalid_request_error" || !strings.Contains(e.Error.Message, `"gpt-5"`) {
		t.Fatalf("model_not_found body %s", body)
	}
	// Duplicate keys: the last one is the model (what the engine reads).
	resp, _ = doRequest(t, c, "POST", p.URL+"/v1/completions", `{"model":"llama-3-8b","prompt":"x","model":"mistral-7b"}`, nil)
	if resp.Header.Get("x-upstream-name") != "mistral0" || mistral.Requests() != 2 {
		t.Fatalf("duplicate model keys routed to %q", resp.Header.Get("x-upstream-name"))
	}
	checkSlotsFree(t, p.Router())
	if m := p.Router().Metrics(); m.Failed != 0 {
		t.Fatalf("a 404 counted as failed: %+v", m)
	}
}

func TestModelAliasRewrite(t *testing.T) {
	llama, _, cfg := modelPools(t)
	p := startProxy(t, cfg, Options{})
	c := newClient()
	for _, tc := range []struct{ body, want string }{
		{chatFor("llama"), chatFor("llama-3-8b")},
		{`{"messages":[{"role":"user","content":"a \"model\": \"llama\""}],"model" : "gpt-4o","n":1}`,
			`{"messages":[{"role":"user","content":"a \"model\": \"llama\""}],"model" : "llama-3-8b","n":1}`},
		{`{"model":"ll\u0061ma","messages":[{"role":"user","content":"x"}]}`,
			`{"model":"llama-3-8b","messages":[{"role":"user","content":"x"}]}`},
		{chatFor("llama-3-8b"), chatFor("llama-3-8b")}, // not an alias: untouched
	} {
		resp, body := doRequest(t, c, "POST", p.URL+"/v1/chat/completions", tc.body, map[string]string{"Content-Type": "application/json"})
		if resp.StatusCode != 200 {
			t.Fatalf("%s: %d %s", tc.body, resp.StatusCode, body)
		}
		var got proxytest.RecordedRequest
		for _, up := range llama {
			if r := up.LastRequest(); r.Header.Get("X-Request-Id") == resp.Header.Get("x-request-id") {
				got = r
			}
		}
		if string(got.Body) != tc.want {
			t.Fatalf("upstream got %s, want %s", got.Body, tc.want)
		}
		if cl := got.Header.Get("Content-Length"); cl != strconv.Itoa(len(tc.want)) {
			t.Fatalf("Content-Length %q for a %d-byte body", cl, len(tc.want))
		}
		// The engine answered for the name it was sent.
		if !strings.Contains(body, `"model":"llama-3-8b"`) {
			t.Fatalf("reply %s", body)
		}
	}
}

func TestModelRoutes(t *testing.T) {
	llama, mistral, cfg := modelPools(t)
	cfg = cfg.WithRoute(RouteMatch{Model: "mistral*"}, "mistral").
		WithRoute(RouteMatch{PathPrefix: "/v1/", Model: "llama-3-8b"}, "llama").
		WithRoute(RouteMatch{PathPrefix: "/v1/"}, "llama")
	p := startProxy(t, cfg, Options{})
	c := newClient()
	tests := []struct {
		method, path, body string
		status             int
		to, code           string
	}{
		{"POST", "/v1/chat/completions", chatFor("mistral-7b"), 200, "mistral0", ""},
		{"POST", "/v1/chat/completions", chatFor("llama-3-8b"), 200, "llama", ""},
		{"POST", "/v1/chat/completions", chatFor("llama"), 200, "llama", ""}, // third route, alias
		{"POST", "/v1/chat/completions", chatFor("mistral-nemo"), 404, "", "model_not_found"},
		{"POST", "/v1/chat/completions", chatFor("qwen"), 404, "", "model_not_found"},
		{"POST", "/v1/chat/completions", `{"messages":[{"role":"user","content":"hi"}]}`, 200, "llama", ""}, // no model: model routes skipped
		{"GET", "/other", "", 404, "", "route_not_found"},
	}
	for _, tc := range tests {
		resp, body := doRequest(t, c, tc.method, p.URL+tc.path, tc.body, nil)
		if resp.StatusCode != tc.status || !strings.HasPrefix(resp.Header.Get("x-upstream-name"), tc.to) {
			t.Fatalf("%s %s %s: %d from %q: %s", tc.method, tc.path, tc.body, resp.StatusCode, resp.Header.Get("x-upstream-name"), body)
		}
		var e openAIError
		if err := json.Unmarshal([]byte(body), &e); tc.code != "" && (err != nil || e.Error.Code != tc.code) {
			t.Fatalf("error body %s, want code %s", body, tc.code)
		}
	}
	if mistral.Requests() != 1 || llama[0].Requests()+llama[1].Requests() != 3 {
		t.Fatalf("mistral %d llama %d+%d", mistral.Requests(), llama[0].Requests(), llama[1].Requests())
	}
}

func TestModelsEndpoint(t *testing.T) {
	llama, mistral, cfg := modelPools(t)
	deny := &funcFilter{name: "auth", onReqHdr: func(ex *Exchange) (Action, error) {
		if v, _ := ex.RequestHeaders().GetString("authorization"); string(v) != "Bearer ok" {
			ex.SendLocalResponse(401, "no_key", nil, []byte("no key"))
		}
		return ActionContinue, nil
	}}
	p := startProxy(t, cfg, Options{Filters: []Filter{deny}})
	c := newClient()
	auth := map[string]string{"Authorization": "Bearer ok"}
	if resp, _ := doRequest(t, c, "GET", p.URL+"/v1/models", "", nil); resp.StatusCode != 401 {
		t.Fatalf("/v1/models skipped the plugins: %d", resp.StatusCode)
	}
	resp, body := doRequest(t, c, "GET", p.URL+"/v1/models", "", auth)
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("%d %v %s", resp.StatusCode, resp.Header, body)
	}
	var list testhttp.ModelList
	if err := json.Unmarshal([]byte(body), &list); err != nil || list.Object != "list" {
		t.Fatalf("list %s: %v", body, err)
	}
	var ids []string
	for _, m := range list.Data {
		if m.Object != "model" || m.Created == 0 || m.OwnedBy == "" {
			t.Fatalf("entry %+v", m)
		}
		ids = append(ids, m.ID)
	}
	want := "llama-3-8b gpt-4o llama mistral-7b llama-3-8b-lora"
	if strings.Join(ids, " ") != want {
		t.Fatalf("models %q, want %q", strings.Join(ids, " "), want)
	}
	// Cached: a second call does not ask the endpoints again.
	before := llama[0].Requests() + mistral.Requests()
	doRequest(t, c, "GET", p.URL+"/v1/models", "", auth)
	if after := llama[0].Requests() + mistral.Requests(); after != before {
		t.Fatalf("endpoints asked again: %d -> %d", before, after)
	}
	// A plugin that picks a pool gets the upstream's own answer.
	pick := &funcFilter{name: "pick", onReqHdr: func(ex *Exchange) (Action, error) { return ActionContinue, ex.SetUpstream("mistral") }}
	p2 := startProxy(t, cfg, Options{Filters: []Filter{pick}})
	resp, body = doRequest(t, c, "GET", p2.URL+"/v1/models", "", nil)
	if resp.Header.Get("x-upstream-name") != "mistral0" || !strings.Contains(body, "mistral-7b") || strings.Contains(body, "llama") {
		t.Fatalf("forwarded /v1/models: %s", body)
	}
}

func TestModelsEndpointToleratesFailures(t *testing.T) {
	llama, mistral, cfg := modelPools(t)
	mistral.Close()
	llama[1].SetFailMode(proxytest.Fail500)
	p := startProxy(t, cfg, Options{})
	resp, body := doRequest(t, newClient(), "GET", p.URL+"/v1/models", "", nil)
	if resp.StatusCode != 200 || !strings.Contains(body, `"llama-3-8b-lora"`) || !strings.Contains(body, `"mistral-7b"`) {
		t.Fatalf("%d %s", resp.StatusCode, body)
	}
}

func TestModelsEndpointOnlyWhenDeclared(t *testing.T) {
	up := startUpstream(t, proxytest.Options{Name: "u", Models: []string{"only-upstream"}})
	p := startProxy(t, baseConfig(up.URL), Options{})
	resp, body := doRequest(t, newClient(), "GET", p.URL+"/v1/models", "", nil)
	if resp.Header.Get("x-upstream-name") != "u" || !strings.Contains(body, "only-upstream") {
		t.Fatalf("without models in the config /v1/models must be forwarded: %v %s", resp.Header, body)
	}
}
