package wasm

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/sluice-proxy/sluice/internal/plugintest"
	"github.com/sluice-proxy/sluice/internal/testsync"
	"github.com/sluice-proxy/sluice/proxy"
)

// logBuffer collects log output for assertions; safe for concurrent use.
type logBuffer = plugintest.LogBuffer

type testHost struct {
	*Host
	logs *logBuffer
	set  *metrics.Set
}

// testCacheDir is a compilation cache shared by the tests (and by test
// runs): compiling a Go guest under the race detector takes many seconds.
var testCacheDir = plugintest.CompileCacheDir()

// newTestHost returns a Host with the shared test cache, a captured debug log
// and a private metrics set, closed at the end of the test.
func newTestHost(t testing.TB) *testHost {
	t.Helper()
	return newTestHostWith(t, nil)
}

// newTestHostWith is newTestHost with mod applied to the HostConfig.
func newTestHostWith(t testing.TB, mod func(*HostConfig)) *testHost {
	t.Helper()
	logs := &logBuffer{}
	set := metrics.NewSet()
	cfg := HostConfig{
		CacheDir:     testCacheDir,
		Logger:       slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug - 4})),
		Metrics:      set,
		StartTimeout: 2 * time.Second,
	}
	if mod != nil {
		mod(&cfg)
	}
	h, err := NewHost(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := h.Close(context.Background()); err != nil {
			t.Errorf("Host.Close: %v", err)
		}
	})
	return &testHost{Host: h, logs: logs, set: set}
}

// fixtureConfig is a plugin config for a hostile fixture: one instance, a
// generous call timeout (the race detector is slow), 1 MiB of memory.
func fixtureConfig(t testing.TB, name string) proxy.PluginConfig {
	return proxy.PluginConfig{
		Name:        name,
		Path:        plugintest.Fixture(t, name),
		Instances:   1,
		CallTimeout: proxy.Duration(time.Second),
		MemoryLimit: 1 << 20,
	}
}

func (h *testHost) mustLoad(t testing.TB, pc proxy.PluginConfig) *Plugin {
	t.Helper()
	p, err := h.Load(context.Background(), pc)
	if err != nil {
		t.Fatalf("Load(%s): %v", pc.Name, err)
	}
	return p
}

// metric returns the current value of one metric line in h's set, or "".
func (h *testHost) metric(name string) string {
	var b bytes.Buffer
	h.set.WritePrometheus(&b)
	for _, line := range strings.Split(b.String(), "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			return v
		}
	}
	return ""
}

// newExchange returns an Exchange (no server behind it) carrying a GET
// request for path.
func newExchange(path string, headers ...string) *proxy.Exchange {
	ex := new(proxy.Exchange)
	h := ex.RequestHeaders()
	h.AddString(":method", "GET")
	h.AddString(":path", path)
	h.AddString(":authority", "example.test")
	h.AddString(":scheme", "http")
	for i := 0; i+1 < len(headers); i += 2 {
		h.AddString(headers[i], headers[i+1])
	}
	return ex
}

// startRequest opens a stream on p for ex and runs its request headers
// (end of stream), failing t on an error or when the plugin's action is
// not want. The caller ends the stream (OnDone).
func startRequest(t testing.TB, p *Plugin, ex *proxy.Exchange, want proxy.Action) proxy.Stream {
	t.Helper()
	st, err := p.NewStream(ex)
	if err != nil {
		t.Fatal(err)
	}
	if act, err := st.OnRequestHeaders(true); err != nil || act != want {
		t.Fatalf("OnRequestHeaders = %v, %v; want %v", act, err, want)
	}
	return st
}

// waitFor polls cond for up to 5 s.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	testsync.WaitFor(t, 5*time.Second, what, cond)
}

// upstream is a plain HTTP server that reports what reached it: its name
// in x-upstream-name, and a text body "name method path host body".
func newUpstream(t testing.TB, name string) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		w.Header().Set("x-upstream-name", name)
		w.Header().Set("x-seen-content-length", fmt.Sprint(r.ContentLength))
		for _, h := range []string{"x-added", "x-removed", "x-wat", "x-set"} {
			if v := r.Header.Get(h); v != "" {
				w.Header().Set("x-seen-"+h, v)
			}
		}
		fmt.Fprintf(w, "%s %s %s %s %s", name, r.Method, r.URL.RequestURI(), r.Host, body)
	}))
	t.Cleanup(srv.Close)
	return srv
}

// e2e is a Sluice proxy on 127.0.0.1 with two upstream pools: "a" (the
// default route) and "b" (path prefix /b/, or host b.test).
type e2e struct {
	base string
	srv  *proxy.Server
	cli  *http.Client
}

func startProxy(t testing.TB, filters ...proxy.Filter) *e2e {
	t.Helper()
	return startProxyWith(t, proxyOptions{}, filters...)
}

// proxyOptions adjusts the proxy startProxyWith builds.
type proxyOptions struct {
	timeout time.Duration  // request (and pause) timeout; default 5 s
	sets    []*metrics.Set // extra sets on /metrics (the plugin host's)
}

func startProxyWith(t testing.TB, o proxyOptions, filters ...proxy.Filter) *e2e {
	t.Helper()
	if o.timeout == 0 {
		o.timeout = 5 * time.Second
	}
	a, b := newUpstream(t, "a"), newUpstream(t, "b")
	cfg := proxy.NewConfig().
		WithHostname("127.0.0.1").
		WithTimeout(o.timeout).
		WithUpstream("a", a.URL).
		WithUpstream("b", b.URL).
		WithRoute(proxy.RouteMatch{PathPrefix: "/b/"}, "b").
		WithRoute(proxy.RouteMatch{Host: "b.test"}, "b").
		WithRoute(proxy.RouteMatch{PathPrefix: "/"}, "a")
	srv, base := plugintest.Serve(t, cfg, proxy.Options{
		Filters: filters,
		Logger:  slog.New(slog.NewTextHandler(io.Discard, nil)),
		Metrics: o.sets,
	})
	return &e2e{
		base: base,
		srv:  srv,
		cli:  &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 64}},
	}
}

type reply struct {
	status int
	header http.Header
	body   string
}

// do sends a request; headers alternate name, value ("host" sets Host).
func (e *e2e) do(t testing.TB, method, path, body string, headers ...string) reply {
	t.Helper()
	resp, b := plugintest.RoundTrip(t, e.cli, testsync.NewRequest(t, method, e.base+path, body, headers...))
	return reply{status: resp.StatusCode, header: resp.Header, body: b}
}

func (e *e2e) metrics(t testing.TB) string {
	t.Helper()
	var b strings.Builder
	e.srv.WriteMetrics(&b)
	return b.String()
}
