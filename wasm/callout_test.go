package wasm

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/sluice-proxy/sluice/internal/testcerts"
	"github.com/sluice-proxy/sluice/proxy"
	"github.com/sluice-proxy/sluice/proxy/config"
)

// resolvedPools returns ups as config.Config.Resolve returns them, the
// form HostConfig.Upstreams and NewHTTPCallouts take.
func resolvedPools(t testing.TB, ups ...proxy.UpstreamConfig) []config.Upstream {
	t.Helper()
	cfg := config.New()
	cfg.Upstreams = ups
	rc, err := cfg.Resolve()
	if err != nil {
		t.Fatal(err)
	}
	return rc.Upstreams
}

func pairs(kv ...string) []byte {
	var h proxy.Headers
	for i := 0; i+1 < len(kv); i += 2 {
		h.AddString(kv[i], kv[i+1])
	}
	return appendPairs(nil, &h)
}

func TestDecodeCalloutHeaders(t *testing.T) {
	ok := []string{":method", "POST", ":path", "/v1/check?x=1", ":authority", "auth.test", "x-a", "1"}
	tests := []struct {
		name string
		data []byte
		ok   bool
	}{
		{"valid", pairs(ok...), true},
		{"scheme and unknown pseudo", pairs(append(ok, ":scheme", "https", ":status", "200")...), true},
		{"no method", pairs(":path", "/", ":authority", "a"), false},
		{"no path", pairs(":method", "GET", ":authority", "a"), false},
		{"no authority", pairs(":method", "GET", ":path", "/"), false},
		{"empty authority", pairs(":method", "GET", ":path", "/", ":authority", ""), true},
		{"authority with userinfo", pairs(":method", "GET", ":path", "/", ":authority", "u@a"), false},
		{"path *", pairs(":method", "OPTIONS", ":path", "*", ":authority", "a"), false},
		{"relative path", pairs(":method", "GET", ":path", "x", ":authority", "a"), false},
		{"space in path", pairs(":method", "GET", ":path", "/a b", ":authority", "a"), false},
		{"bad method", pairs(":method", "GE T", ":path", "/", ":authority", "a"), false},
		{"CRLF in value", pairs(append(ok, "x-b", "1\r\nx-evil: 1")...), false},
		{"bad field name", pairs(append(ok, "x b", "1")...), false},
		{"empty", nil, false},
		{"malformed", []byte{9, 0, 0, 0, 1}, false},
	}
	for _, tc := range tests {
		var req CalloutRequest
		if got := decodeCalloutHeaders(&req, tc.data); got != tc.ok {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.ok)
		}
	}
	var req CalloutRequest
	decodeCalloutHeaders(&req, pairs(append(ok, ":scheme", "https")...))
	if req.Method != "POST" || req.Path != "/v1/check?x=1" || req.Authority != "auth.test" || req.Scheme != "https" ||
		req.Header.Len() != 1 {
		t.Errorf("decoded %+v", req)
	}
}

// echoServer answers "<name> <method> <uri> <host> <body> trailer=<x-t>"
// with the request's x-in header echoed as x-out.
func echoServer(t *testing.T, name string) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		switch r.URL.Path {
		case "/redirect":
			http.Redirect(w, r, "/elsewhere", http.StatusFound)
			return
		case "/big":
			w.Write(make([]byte, 2048))
			return
		}
		w.Header().Set("x-out", r.Header.Get("x-in"))
		w.Header().Set("x-conn", r.Header.Get("connection"))
		fmt.Fprintf(w, "%s %s %s %s %s trailer=%s", name, r.Method, r.URL.RequestURI(), r.Host, body, r.Trailer.Get("x-t"))
	}))
	t.Cleanup(srv.Close)
	return srv
}

func TestHTTPCallouts(t *testing.T) {
	a1, a2 := echoServer(t, "a1"), echoServer(t, "a2")
	c, err := NewHTTPCallouts(resolvedPools(t,
		proxy.UpstreamConfig{Name: "a", Endpoints: []string{a1.URL, a2.URL + "/"}},
	), HTTPCalloutsConfig{MaxResponseBytes: 1024})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if !c.HasPool("a") || c.HasPool("b") {
		t.Fatal("HasPool")
	}
	do := func(path string, mod func(*CalloutRequest)) (*CalloutResponse, error) {
		req := &CalloutRequest{Method: "POST", Path: path, Authority: "auth.test", Body: []byte("hi")}
		req.Header.AddString("x-in", "v")
		req.Header.AddString("connection", "close")
		if mod != nil {
			mod(req)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		return c.Do(ctx, "a", req)
	}
	seen := map[string]bool{}
	for range 4 {
		resp, err := do("/x?q=1", nil)
		if err != nil {
			t.Fatal(err)
		}
		body := string(resp.Body)
		seen[body[:2]] = true
		if resp.StatusCode != 200 || resp.Reason != "OK" || !strings.HasSuffix(body, " POST /x?q=1 auth.test hi trailer=") {
			t.Errorf("response %d %q %q", resp.StatusCode, resp.Reason, body)
		}
		if v, _ := resp.Header.GetString("x-out"); string(v) != "v" {
			t.Errorf("x-out = %q", v)
		}
		if v, _ := resp.Header.GetString("x-conn"); string(v) != "" {
			t.Errorf("the hop-by-hop connection header was forwarded: %q", v)
		}
	}
	if !seen["a1"] || !seen["a2"] {
		t.Errorf("round-robin reached %v", seen)
	}
	resp, err := do("/t", func(r *CalloutRequest) { r.Trailer.AddString("x-t", "tv") })
	if err != nil || !strings.HasSuffix(string(resp.Body), "trailer=tv") {
		t.Errorf("request trailers: %v %q", err, resp.Body)
	}
	if resp, err := do("/redirect", nil); err != nil || resp.StatusCode != http.StatusFound {
		t.Errorf("redirect: %v %+v (want the 302 itself)", err, resp)
	}
	if _, err := do("/big", nil); !errors.Is(err, ErrCalloutResponseTooLarge) {
		t.Errorf("2 KiB body with a 1 KiB cap: %v", err)
	}
	if _, err := c.Do(context.Background(), "nope", &CalloutRequest{Method: "GET", Path: "/", Authority: "a"}); err == nil {
		t.Error("unknown pool accepted")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := c.Do(ctx, "a", &CalloutRequest{Method: "GET", Path: "/", Authority: "a"}); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled context: %v", err)
	}
}

func TestNewHTTPCalloutsErrors(t *testing.T) {
	ep := func(url string) config.Endpoint {
		e, err := config.ParseEndpoint(url)
		if err != nil {
			t.Fatal(err)
		}
		return e
	}
	for _, tc := range []struct {
		ups  []config.Upstream
		want string
	}{
		{[]config.Upstream{{Endpoints: []config.Endpoint{ep("http://a:1")}}}, "has no name"},
		{[]config.Upstream{{Name: "a"}}, `"a" has no endpoints`},
		// An endpoint the proxy did not parse: the host parses no URL.
		{[]config.Upstream{{Name: "a", Endpoints: []config.Endpoint{{URL: "http://a:1"}}}}, `endpoint 0 ("http://a:1") has no address`},
		{[]config.Upstream{{Name: "a", Endpoints: []config.Endpoint{ep("http://a:1")}}, {Name: "a", Endpoints: []config.Endpoint{ep("http://b:1")}}}, "defined twice"},
	} {
		_, err := NewHTTPCallouts(tc.ups, HTTPCalloutsConfig{})
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.HasPrefix(err.Error(), "wasm: callouts: ") {
			t.Errorf("%+v: %v, want an error with %q", tc.ups, err, tc.want)
		}
	}
	if _, err := NewHost(context.Background(), HostConfig{CacheDir: InMemoryCache,
		Upstreams: []config.Upstream{{Name: "a"}}}); err == nil {
		t.Error("NewHost accepted an upstream without endpoints")
	}
}

// TestHTTPCalloutsUseResolvedEndpoints: a call goes to the endpoint's
// resolved Addr and scheme, the values the proxy's pools use; the
// configured URL text is not parsed again.
func TestHTTPCalloutsUseResolvedEndpoints(t *testing.T) {
	srv := echoServer(t, "r")
	e, err := config.ParseEndpoint(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	e.URL = "not a URL" // only Addr and TLS count
	c, err := NewHTTPCallouts([]config.Upstream{{Name: "r", Endpoints: []config.Endpoint{e}}}, HTTPCalloutsConfig{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	resp, err := c.Do(ctx, "r", &CalloutRequest{Method: "GET", Path: "/p"})
	if err != nil {
		t.Fatal(err)
	}
	if want := "r GET /p " + e.Addr + " "; !strings.HasPrefix(string(resp.Body), want) {
		t.Errorf("body %q, want it to start with %q (Host from the resolved Addr)", resp.Body, want)
	}
}

// fakeCallouts answers every call at once with 200 and body "fake", or
// with err.
type fakeCallouts struct{ err error }

func (fakeCallouts) HasPool(pool string) bool { return pool == "up" }

func (f fakeCallouts) Do(ctx context.Context, _ string, req *CalloutRequest) (*CalloutResponse, error) {
	if f.err != nil {
		return nil, f.err
	}
	return &CalloutResponse{StatusCode: 200, Reason: "OK", Body: []byte("fake")}, nil
}

// TestCalloutReplyWaitsForPause: a reply to a request that returned PAUSE
// is held while the proxy does not hold the request (here: never, as no
// proxy runs the Exchange), and delivered as soon as the request ends.
func TestCalloutReplyWaitsForPause(t *testing.T) {
	h := newTestHostWith(t, func(c *HostConfig) { c.Callouts = fakeCallouts{} })
	p := loadGo(t, h, asyncPkg, "async", "", func(pc *proxy.PluginConfig) { pc.Instances = 1 })
	ex := newExchange("/x", "x-async-callout", "up")
	st := startRequest(t, p, ex, proxy.ActionPause)
	time.Sleep(50 * time.Millisecond)
	if n := p.calloutsInFlight(); n != 1 {
		t.Fatalf("%d calls in flight, want the reply held", n)
	}
	st.OnDone()
	waitFor(t, "the reply", func() bool { return p.calloutsInFlight() == 0 })
	waitFor(t, "the guest's callback", func() bool { return strings.Contains(h.logs.String(), "gone before its replies") })
	if got := h.metric(`sluice_plugin_http_calls_total{plugin="async",result="ok"}`); got != "1" {
		t.Errorf("ok calls = %s", got)
	}
}

// TestCalloutsCancelledOnClose: Close cancels calls in flight and does not
// wait for their timeout.
func TestCalloutsCancelledOnClose(t *testing.T) {
	slow := newCalloutServer(t, "slow", nil)
	h := newTestHostWith(t, func(c *HostConfig) {
		c.Upstreams = resolvedPools(t, proxy.UpstreamConfig{Name: "slow", Endpoints: []string{slow.URL}})
	})
	p := loadGo(t, h, asyncPkg, "async", "", func(pc *proxy.PluginConfig) { pc.Instances = 1 })
	ex := newExchange("/x", "x-async-callout", "slow", "x-async-callout-path", "/slow")
	st := startRequest(t, p, ex, proxy.ActionPause)
	waitFor(t, "the slow call to arrive", func() bool { return slow.started.Load() == 1 })
	if n := goroutinesIn("wasm.(*instance).runCallout"); n != 1 {
		t.Fatalf("%d call goroutines, want 1", n)
	}
	start := time.Now()
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("Close took %v", d)
	}
	waitFor(t, "the slow call to be cancelled", func() bool { return slow.cancelled.Load() == 1 })
	if n := goroutinesIn("wasm.(*instance).runCallout"); n != 0 {
		t.Errorf("%d call goroutines left after Close", n)
	}
	st.OnDone() // the request ends after the plugin closed: no call into it
}

// TestHTTPCalloutsTLS: a pool's tls applies to plugin callouts as to
// proxied requests: its ca_file is trusted, the system's roots alone are
// not, and a bad ca_file fails resolving the config.
func TestHTTPCalloutsTLS(t *testing.T) {
	ca := testcerts.NewCA(t, "engine")
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "over tls")
	}))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{ca.Issue(t, "engine", "localhost").TLS}}
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	srv.StartTLS()
	t.Cleanup(srv.Close)
	_, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
	url := "https://localhost:" + port
	c, err := NewHTTPCallouts(resolvedPools(t,
		proxy.UpstreamConfig{Name: "trusted", Endpoints: []string{url}, TLS: &proxy.UpstreamTLSConfig{CAFile: ca.File}},
		proxy.UpstreamConfig{Name: "system", Endpoints: []string{url}},
	), HTTPCalloutsConfig{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	call := func(pool string) (*CalloutResponse, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		return c.Do(ctx, pool, &CalloutRequest{Method: "GET", Path: "/", Authority: "engine.test"})
	}
	if resp, err := call("trusted"); err != nil || string(resp.Body) != "over tls" {
		t.Fatalf("pool with ca_file: %v %+v", err, resp)
	}
	var unknown x509.UnknownAuthorityError
	if _, err := call("system"); !errors.As(err, &unknown) {
		t.Fatalf("pool without ca_file: %v, want an unknown-authority error", err)
	}
	// A bad ca_file is refused where endpoints are resolved, once, for
	// the proxy and the callouts alike.
	cfg := config.New()
	cfg.Upstreams = []proxy.UpstreamConfig{{Name: "bad", Endpoints: []string{url}, TLS: &proxy.UpstreamTLSConfig{CAFile: "/nonexistent/ca.pem"}}}
	if _, err = cfg.Resolve(); err == nil || !strings.Contains(err.Error(), "ca_file") || !strings.Contains(err.Error(), "/nonexistent/ca.pem") {
		t.Fatalf("bad ca_file: %v", err)
	}
}
