package proxy

import (
	"strconv"

	"github.com/valyala/fasthttp"
)

var strContentTypeText = []byte("text/plain; version=0.0.4; charset=utf-8")

// handle dispatches probes and metrics; everything else is proxied.
func (s *Server) handle(ctx *fasthttp.RequestCtx) {
	s.dispatch(ctx)
	s.closeIfDraining(ctx)
}

func (s *Server) dispatch(ctx *fasthttp.RequestCtx) {
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
	ctx.SetBody(s.appendHealthJSON(nil))
}

// serveReady answers 200 when the router is ready, not draining and has
// an upstream endpoint in rotation, else 503, with the health JSON either
// way.
func (s *Server) serveReady(ctx *fasthttp.RequestCtx) {
	if !s.router.IsReady() {
		ctx.SetStatusCode(fasthttp.StatusServiceUnavailable)
	}
	ctx.Response.Header.SetContentTypeBytes(strApplicationJSON)
	ctx.SetBody(s.appendHealthJSON(nil))
}

// appendHealthJSON appends the router's health and, per pool, its
// endpoints in rotation:
//
//	{"status":"healthy","active_requests":0,"max_concurrent_requests":128,
//	 "upstreams":{"a":{"healthy":2,"total":3}}}
func (s *Server) appendHealthJSON(b []byte) []byte {
	b = appendHealthJSON(b, s.router.Health())
	b = append(b[:len(b)-1], `,"upstreams":{`...)
	for i, p := range s.pools.List() {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendJSONString(b, p.Name())
		b = append(b, `:{"healthy":`...)
		b = strconv.AppendInt(b, int64(p.Healthy()), 10)
		b = append(b, `,"total":`...)
		b = strconv.AppendInt(b, int64(len(p.Endpoints())), 10)
		b = append(b, '}')
	}
	return append(b, "}}"...)
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

// PoolHealth counts a pool's endpoints in rotation.
type PoolHealth struct {
	Healthy int `json:"healthy"`
	Total   int `json:"total"`
}

// UpstreamHealth returns, per pool name, how many endpoints are in
// rotation. Safe for concurrent use.
func (s *Server) UpstreamHealth() map[string]PoolHealth {
	m := make(map[string]PoolHealth, len(s.pools.List()))
	for _, p := range s.pools.List() {
		m[p.Name()] = PoolHealth{Healthy: p.Healthy(), Total: len(p.Endpoints())}
	}
	return m
}
