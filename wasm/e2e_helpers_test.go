package wasm

import (
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
