package proxy

import (
	"bytes"

	"github.com/sluice-proxy/sluice/proxy/internal/jsonspan"
	"github.com/sluice-proxy/sluice/proxy/upstream"
)

// UpstreamHosts adds to h one pair per endpoint of the pool the request
// goes to: the endpoint's "host:port" and the Prometheus text its engine
// answered at the last successful scrape (empty without metrics_path or
// before a scrape succeeded), in configuration order, as Higress's
// proxy_get_upstream_hosts returns them. The pool is the one a filter
// chose (SetUpstream, SetEndpoint) or, before the route is chosen, the one
// the routes choose for the request as it stands now (its path, host,
// headers and, when the body is already read, its model). It reports
// false, adding nothing, when no pool would take the request. The values
// are shared, read-only snapshots (upstream.Endpoint.MetricsText).
func (ex *Exchange) UpstreamHosts(h *Headers) bool {
	var p *upstream.Pool
	if ex.upstream != "" {
		p = ex.pools.ByName(ex.upstream)
	} else if ex.routeOf != nil {
		p = ex.routeOf(ex)
	}
	if p == nil {
		return false
	}
	for _, ep := range p.Endpoints() {
		h.Add([]byte(ep.Addr), ep.MetricsText())
	}
	return true
}

// routeOfExchange is the pool selectPool chooses for ex's request
// headers and body as filters left them (nil: none).
func (s *Server) routeOfExchange(ex *Exchange) *upstream.Pool {
	h := &ex.reqHeaders
	path, _ := h.Get(hdrPath)
	if i := bytes.IndexByte(path, '?'); i >= 0 {
		path = path[:i]
	}
	authority, _ := h.Get(hdrAuthority)
	var m requestModel
	if s.cfg.OpenAICompat && len(ex.reqBody) > 0 && bytes.HasPrefix(path, strV1Prefix) {
		if start, end, ok := jsonspan.StringMember(&m.dec, ex.reqBody, "model"); ok {
			if name, ok := jsonspan.DecodeString(&m.dec, ex.reqBody[start:end]); ok {
				m.name, m.has = name, true
			}
		}
	}
	p, _ := s.selectPool(path, authority, h, &m)
	return p
}
