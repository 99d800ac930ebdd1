package proxy

import (
	"strconv"

	"github.com/valyala/fasthttp"
)

var strContentTypeText = []byte("text/plain; version=0.0.4; charset=utf-8")

// handle dispatches probes and metrics; everything else is proxied.
func (s *Server) handle(ctx *fasthttp.RequestCtx) {
	switch string(ctx.Path()) { // no allocation: the compiler special-cases this
	case "/health":
		s.serveHealth(ctx)
		return
	case "/ready":
		s.serveReady(ctx)
		return
	case "/metrics":
		if s.cfg.EnableMetrics {
			ctx.Response.Header.SetContentTypeBytes(strContentTypeText)
			s.WriteMetrics(ctx)
			return
		}
	}
	s.serveProxy(ctx)
}

// serveHealth always answers 200 with the health JSON: liveness, not
// readiness.
func (s *Server) serveHealth(ctx *fasthttp.RequestCtx) {
	ctx.Response.Header.SetContentTypeBytes(strApplicationJSON)
	ctx.SetBody(appendHealthJSON(nil, s.router.Health()))
}

// serveReady answers 200 when the router is ready and not draining, else
// 503, with the health JSON either way.
func (s *Server) serveReady(ctx *fasthttp.RequestCtx) {
	if !s.router.IsReady() {
		ctx.SetStatusCode(fasthttp.StatusServiceUnavailable)
	}
	ctx.Response.Header.SetContentTypeBytes(strApplicationJSON)
	ctx.SetBody(appendHealthJSON(nil, s.router.Health()))
}

func appendHealthJSON(b []byte, h Health) []byte {
	b = append(b, `{"status":"`...)
	b = append(b, h.Status...)
	b = append(b, `","active_requests":`...)
	b = strconv.AppendInt(b, h.ActiveRequests, 10)
	b = append(b, `,"max_concurrent_requests":`...)
	b = strconv.AppendInt(b, h.MaxConcurrentRequests, 10)
	return append(b, '}')
}
