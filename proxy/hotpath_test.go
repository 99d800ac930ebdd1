package proxy

import (
	"bufio"
	"io"
	"log/slog"
	"net"
	"testing"

	"github.com/valyala/fasthttp"
)

// hotPath drives the server's handler directly (no client connection)
// against a fasthttp upstream on loopback: the proxied request path as the
// server runs it, minus the client socket.
type hotPath struct {
	srv  *Server
	ctx  fasthttp.RequestCtx
	req  fasthttp.Request
	bw   *bufio.Writer
	addr net.Addr
}

func newHotPath(tb testing.TB, filters ...Filter) *hotPath {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	body := []byte(`{"ok":true,"padding":"0123456789012345678901234567890123456789012345678901234567890123456789"}`)
	up := &fasthttp.Server{Handler: func(ctx *fasthttp.RequestCtx) {
		ctx.SetContentType("application/json")
		ctx.SetBody(body)
	}}
	go func() { _ = up.Serve(ln) }()
	tb.Cleanup(func() { _ = up.Shutdown() })
	cfg := NewConfig().WithUpstream("default", "http://"+ln.Addr().String())
	cfg.Log.Access = new(bool)
	srv := newServer(tb, cfg, Options{Filters: filters, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	srv.Router().SetReady(true)
	h := &hotPath{srv: srv, bw: bufio.NewWriter(io.Discard), addr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 40000}}
	h.req.Header.SetMethod("GET")
	h.req.SetRequestURI("/v1/models")
	h.req.Header.SetHost("sluice.test")
	h.req.Header.Set("User-Agent", "bench")
	h.req.Header.Set("Accept", "*/*")
	return h
}

// do runs one request through the handler and writes the response.
func (h *hotPath) do(tb testing.TB) {
	h.ctx.Init(&h.req, h.addr, nil)
	h.serve(tb)
}

// serve runs the request in h.ctx through the handler, checks for 200 and
// resets the context.
func (h *hotPath) serve(tb testing.TB) {
	h.srv.handle(&h.ctx)
	if err := h.ctx.Response.Write(h.bw); err != nil {
		tb.Fatal(err)
	}
	if sc := h.ctx.Response.StatusCode(); sc != 200 {
		tb.Fatalf("status %d: %s", sc, h.ctx.Response.Body())
	}
	h.ctx.Response.Reset()
	h.ctx.Request.Reset()
}

// baselineAllocs measures what fasthttp alone allocates per request for
// the harness's request: the client round trip to the same endpoint and
// the RequestCtx.Init, with the body read to its end; reset restores the
// request after each run (nil: nothing to restore).
func (h *hotPath) baselineAllocs(t testing.TB, reset func()) float64 {
	t.Helper()
	hc := h.srv.pools.List()[0].Endpoints()[0].HostClient()
	var resp fasthttp.Response
	buf := make([]byte, 4096)
	baseline := func() {
		h.ctx.Init(&h.req, h.addr, nil)
		resp.StreamBody = true
		if err := hc.Do(&h.ctx.Request, &resp); err != nil {
			t.Fatal(err)
		}
		for {
			if _, err := resp.BodyStream().Read(buf); err != nil {
				break
			}
		}
		_ = resp.CloseBodyStream()
		resp.Reset()
		h.ctx.Request.Reset()
		if reset != nil {
			reset()
		}
	}
	for i := 0; i < 10; i++ {
		baseline()
	}
	return testing.AllocsPerRun(500, baseline)
}

func BenchmarkProxyHotPath(b *testing.B) {
	h := newHotPath(b)
	h.do(b)
	b.ReportAllocs()
	for b.Loop() {
		h.do(b)
	}
}

func BenchmarkRouteSelection(b *testing.B) {
	cfg := NewConfig().WithUpstream("a", "http://127.0.0.1:1").WithUpstream("b", "http://127.0.0.1:2").
		WithRoute(RouteMatch{Host: "api.example.com"}, "b").
		WithRoute(RouteMatch{PathPrefix: "/v1/", Headers: map[string]string{"X-Tier": "gold"}}, "b").
		WithRoute(RouteMatch{PathPrefix: "/v1/"}, "a")
	srv := newServer(b, cfg, Options{})
	var req fasthttp.Request
	req.SetRequestURI("/v1/chat/completions")
	req.Header.SetHost("other.example.com")
	req.Header.Set("X-Tier", "silver")
	path, host := req.URI().Path(), req.Header.Host()
	b.ReportAllocs()
	for b.Loop() {
		if p := srv.selectRoute(path, host, (*fasthttpHeaders)(&req.Header)); p == nil || p.Name() != "a" {
			b.Fatal("wrong route")
		}
	}
}

func BenchmarkHeadersCopy(b *testing.B) {
	var req fasthttp.Request
	req.SetRequestURI("/v1/chat/completions")
	req.Header.SetHost("api.example.com")
	for _, k := range []string{"Authorization", "Content-Type", "User-Agent", "Accept", "X-Request-Id", "X-Tier", "Accept-Encoding"} {
		req.Header.Set(k, "some-value-of-typical-length")
	}
	var h Headers
	b.ReportAllocs()
	for b.Loop() {
		h.Reset()
		for k, v := range req.Header.All() {
			h.Add(k, v)
		}
	}
}
