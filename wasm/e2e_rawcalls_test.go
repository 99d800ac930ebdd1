package wasm

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluice-proxy/sluice/internal/plugintest"
	"github.com/sluice-proxy/sluice/proxy"
)

const rawcallsPkg = "wasm/testdata/guests/rawcalls"

// seenRequest is what a recordingUpstream received.
type seenRequest struct {
	Upstream string      `json:"upstream"`
	Method   string      `json:"method"`
	URI      string      `json:"uri"`
	Host     string      `json:"host"`
	Header   http.Header `json:"header"`
}

// recordingUpstream answers every request with a JSON seenRequest.
func recordingUpstream(t testing.TB, name string) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("x-upstream-name", name)
		_ = json.NewEncoder(w).Encode(seenRequest{Upstream: name, Method: r.Method, URI: r.RequestURI, Host: r.Host, Header: r.Header})
	}))
	t.Cleanup(srv.Close)
	return srv
}

// rawSetup is the rawcalls guest in front of pool "a" (default route) and
// pool "canary" (route host "*-canary"), with HTTP calls going to pool
// "callout", whose server counts what reaches it and echoes
// "<method> <uri> <host>".
type rawSetup struct {
	h       *testHost
	e       *e2e
	callout *httptest.Server
	calls   atomic.Int32
}

func newRawSetup(t *testing.T, mod ...func(*proxy.PluginConfig)) *rawSetup {
	t.Helper()
	s := &rawSetup{}
	s.callout = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.calls.Add(1)
		fmt.Fprintf(w, "%s %s %s", r.Method, r.RequestURI, r.Host)
	}))
	t.Cleanup(s.callout.Close)
	s.h = newTestHostWith(t, func(c *HostConfig) {
		c.Upstreams = resolvedPools(t, proxy.UpstreamConfig{Name: "callout", Endpoints: []string{s.callout.URL}})
	})
	p := loadGo(t, s.h, rawcallsPkg, "rawcalls", "", append([]func(*proxy.PluginConfig){func(pc *proxy.PluginConfig) { pc.Instances = 1 }}, mod...)...)
	a, canary := recordingUpstream(t, "a"), recordingUpstream(t, "canary")
	cfg := proxy.NewConfig().WithHostname("127.0.0.1").WithTimeout(5*time.Second).
		WithUpstream("a", a.URL).WithUpstream("canary", canary.URL).
		WithRoute(proxy.RouteMatch{Host: "*-canary"}, "canary").
		WithRoute(proxy.RouteMatch{}, "a")
	srv, base := plugintest.Serve(t, cfg, proxy.Options{Filters: []proxy.Filter{p},
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	s.e = &e2e{base: base, srv: srv, cli: &http.Client{Timeout: 10 * time.Second}}
	return s
}

// op runs one rawcalls operation on a GET /orig?q=1 request carrying
// x-client: c and returns the reply and what the upstream saw (nil when
// nothing reached it).
func (s *rawSetup) op(t *testing.T, op, name, value string, extra ...string) (reply, *seenRequest) {
	t.Helper()
	hdrs := append([]string{"x-client", "c", "x-raw-op", op,
		"x-raw-name", hex.EncodeToString([]byte(name)), "x-raw-value", hex.EncodeToString([]byte(value))}, extra...)
	r := s.e.do(t, "GET", "/orig?q=1", "", hdrs...)
	if r.header.Get("x-upstream-name") == "" {
		return r, nil
	}
	var seen seenRequest
	if err := json.Unmarshal([]byte(r.body), &seen); err != nil {
		t.Fatalf("upstream reply %q: %v", r.body, err)
	}
	return r, &seen
}

// badFields are header writes every header host call must refuse.
var badFields = []struct{ what, name, value string }{
	{"name with a space", "x bad", "v"},
	{"name with a colon", "x:bad", "v"},
	{"name with CRLF", "x-a\r\nx-injected", "v"},
	{"empty name", "", "v"},
	{"lone colon", ":", "v"},
	{"value with CRLF", "x-a", "v\r\nx-injected: 1"},
	{"value with LF", "x-a", "v\nx-injected: 1"},
	{"value with CR", "x-a", "v\rw"},
	{"value with NUL", "x-a", "v\x00w"},
	{":method with spaces and CRLF", ":method", "GET /evil HTTP/1.1\r\nx-injected: 1\r\n"},
	{":method not a token", ":method", "GE T"},
	{":path with CRLF", ":path", "/a\r\nx-injected: 1"},
	{":path with a space", ":path", "/a b"},
	{":path not starting with /", ":path", "a/b"},
	{":authority with a path", ":authority", "evil.test/x"},
	{":authority with userinfo", ":authority", "user@evil.test"},
	{":authority with a space", ":authority", "a b"},
	{":scheme with a space", ":scheme", "ht tp"},
}

// TestHeaderHostCallsRefuseInvalidFields writes each bad field with
// proxy_add_header_map_value, proxy_replace_header_map_value,
// proxy_set_header_map_pairs, proxy_send_local_response and
// proxy_http_call: each answers BAD_ARGUMENT, and the upstream receives
// the client's request unchanged (no local reply, no HTTP call made).
func TestHeaderHostCallsRefuseInvalidFields(t *testing.T) {
	s := newRawSetup(t)
	_, base := s.op(t, "none", "", "")
	if base == nil || base.Method != "GET" || base.URI != "/orig?q=1" {
		t.Fatalf("baseline request: %+v", base)
	}
	clean := func(h http.Header) http.Header {
		h = h.Clone()
		// The request id and the generated traceparent differ per request.
		for _, k := range []string{"X-Raw-Op", "X-Raw-Name", "X-Raw-Value", "X-Request-Id", "Traceparent"} {
			h.Del(k)
		}
		return h
	}
	for _, op := range []string{"add", "replace", "pairs", "local", "dispatch"} {
		for _, bf := range badFields {
			r, seen := s.op(t, op, bf.name, bf.value)
			label := op + " " + bf.what
			if got := r.header.Get("x-raw-status"); !strings.HasSuffix(got, "BAD_ARGUMENT") {
				t.Errorf("%s: host answered %q, want BAD_ARGUMENT", label, got)
			}
			if r.status != 200 || seen == nil {
				t.Errorf("%s: status %d, body %q; want the request upstream", label, r.status, r.body)
				continue
			}
			if seen.Method != base.Method || seen.URI != base.URI || seen.Host != base.Host || seen.Upstream != "a" {
				t.Errorf("%s: upstream saw %s %s host %s on %s, want %s %s host %s on a", label,
					seen.Method, seen.URI, seen.Host, seen.Upstream, base.Method, base.URI, base.Host)
			}
			if got, want := clean(seen.Header), clean(base.Header); !maps.EqualFunc(got, want, func(a, b []string) bool {
				return strings.Join(a, "\x00") == strings.Join(b, "\x00")
			}) {
				t.Errorf("%s: upstream headers changed:\n got %v\nwant %v", label, got, want)
			}
		}
	}
	if n := s.calls.Load(); n != 0 {
		t.Errorf("%d refused HTTP calls reached the callout server", n)
	}

	// The same calls with valid fields go through.
	if r, seen := s.op(t, "add", "x-good", "v\twith tab"); r.header.Get("x-raw-status") != "ok" || seen == nil ||
		seen.Header.Get("x-good") != "v\twith tab" {
		t.Errorf("valid add: %q, upstream %+v", r.header.Get("x-raw-status"), seen)
	}
	if r, seen := s.op(t, "pairs", ":path", "/rewritten"); r.header.Get("x-raw-status") != "ok" || seen == nil || seen.URI != "/rewritten" {
		t.Errorf("valid pairs: %q, upstream %+v", r.header.Get("x-raw-status"), seen)
	}
	if r, _ := s.op(t, "local", "x-local", "1"); r.status != 299 || r.header.Get("x-local") != "1" {
		t.Errorf("valid local reply: %d %v", r.status, r.header)
	}
	if r, _ := s.op(t, "dispatch", "x-call", "1"); r.header.Get("x-raw-call-0") != "200 ok GET /callout callout.test" {
		t.Errorf("valid dispatch: %q", r.header.Get("x-raw-call-0"))
	}
}

// TestPluginRewritesAuthorityToCanaryRoute is the Envoy pattern a route
// host wildcard exists for: the plugin rewrites ":authority" to
// "<authority>-canary" (with the port, "127.0.0.1:PORT-canary", not a
// host:port the strict sense allows, but what Envoy plugins write) and a
// "*-canary" route sends it to the canary pool.
func TestPluginRewritesAuthorityToCanaryRoute(t *testing.T) {
	s := newRawSetup(t)
	authority := strings.TrimPrefix(s.e.base, "http://") + "-canary"
	r, seen := s.op(t, "replace", ":authority", authority)
	if r.header.Get("x-raw-status") != "ok" || seen == nil || seen.Upstream != "canary" || seen.Host != authority ||
		seen.URI != "/orig?q=1" {
		t.Fatalf("status %q, upstream saw %+v; want %q on the canary pool", r.header.Get("x-raw-status"), seen, authority)
	}
	if _, seen := s.op(t, "none", "", ""); seen == nil || seen.Upstream != "a" {
		t.Fatalf("an untouched request went to %+v, want pool a", seen)
	}
}

// TestDispatchWithEmptyAuthority is the public SDK example that sends ten
// calls with {":authority", ""}: Envoy requires the header to be present,
// not non-empty. Each call must go out, with the endpoint's own host.
func TestDispatchWithEmptyAuthority(t *testing.T) {
	s := newRawSetup(t)
	r, _ := s.op(t, "dispatch", ":authority", "", "x-raw-count", "10")
	if got := r.header.Get("x-raw-status"); got != "ok" || r.status != 200 {
		t.Fatalf("dispatch: %q, status %d %q", got, r.status, r.body)
	}
	want := "200 ok GET /callout " + strings.TrimPrefix(s.callout.URL, "http://")
	for i := range 10 {
		if got := r.header.Get(fmt.Sprintf("x-raw-call-%d", i)); got != want {
			t.Errorf("call %d: %q, want %q", i, got, want)
		}
	}
	if n := s.calls.Load(); n != 10 {
		t.Errorf("%d calls reached the server, want 10", n)
	}
}
