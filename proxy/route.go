package proxy

import (
	"bytes"

	"github.com/sluice-proxy/sluice/proxy/upstream"
)

// route is a compiled RouteConfig.
type route struct {
	pathPrefix  []byte
	host        hostPattern
	headers     []routeHeader
	model       []byte // exact name, or prefix when modelPrefix
	modelPrefix bool
	hasModel    bool // the route matches on the model
	pool        *upstream.Pool
}

type routeHeader struct{ name, value []byte }

func compileRoutes(cfg *Config, ps *upstream.Pools) []route {
	rs := make([]route, 0, len(cfg.Routes))
	for _, rc := range cfg.Routes {
		r := route{pathPrefix: []byte(rc.Match.PathPrefix), pool: ps.ByName(rc.Upstream)}
		r.host = compileHostPattern(rc.Match.Host)
		for name, value := range rc.Match.Headers {
			r.headers = append(r.headers, routeHeader{name: []byte(name), value: []byte(value)})
		}
		if m := rc.Match.Model; m != "" {
			r.hasModel = true
			r.model = []byte(m)
			if m[len(m)-1] == '*' {
				r.model, r.modelPrefix = r.model[:len(m)-1], true
			}
		}
		rs = append(rs, r)
	}
	return rs
}

// selectRoute returns the pool for a request that names no model, or nil
// (404).
func (s *Server) selectRoute(path, authority []byte, hdr headerGetter) *upstream.Pool {
	var none requestModel
	p, _ := s.selectPool(path, authority, hdr, &none)
	return p
}

// selectPool returns the pool for a request, or nil and the error to
// answer (404 errNoRoute or errModelNotFound).
//
// With routes, the first route whose conditions hold and whose pool
// serves the request's model wins. With none, a request without a model
// goes to the first pool, one with a model to the first pool serving it.
// When every route that matched failed only on the model, the answer is
// model_not_found rather than route_not_found.
func (s *Server) selectPool(path, authority []byte, hdr headerGetter, m *requestModel) (*upstream.Pool, errorKind) {
	if len(s.routes) == 0 {
		if !m.has {
			return s.pools.List()[0], 0
		}
		for _, p := range s.pools.List() {
			if p.Serves(m.name) {
				return p, 0
			}
		}
		return nil, errModelNotFound
	}
	host := hostOf(authority)
	modelMiss := false
	for i := range s.routes {
		r := &s.routes[i]
		if len(r.pathPrefix) > 0 && !bytes.HasPrefix(path, r.pathPrefix) {
			continue
		}
		if !r.host.match(authority, host) {
			continue
		}
		if !r.headersMatch(hdr) {
			continue
		}
		if r.hasModel && !r.modelMatch(m) {
			modelMiss = modelMiss || m.has
			continue
		}
		if m.has && !r.pool.Serves(m.name) {
			modelMiss = true
			continue
		}
		return r.pool, 0
	}
	if modelMiss {
		return nil, errModelNotFound
	}
	return nil, errNoRoute
}

func (r *route) modelMatch(m *requestModel) bool {
	if !m.has {
		return false
	}
	if r.modelPrefix {
		return bytes.HasPrefix(m.name, r.model)
	}
	return bytes.Equal(m.name, r.model)
}

func (r *route) headersMatch(hdr headerGetter) bool {
	for _, h := range r.headers {
		v, ok := hdr.get(h.name)
		if !ok || !bytes.Equal(v, h.value) {
			return false
		}
	}
	return true
}

// headerGetter looks up request headers for route matching, from either
// the fasthttp request or a filter-modified Headers.
type headerGetter interface {
	get(name []byte) ([]byte, bool)
}
