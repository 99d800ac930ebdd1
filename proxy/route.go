package proxy

import "bytes"

// route is a compiled RouteConfig.
type route struct {
	pathPrefix []byte
	host       []byte // lower-cased, no port
	headers    []routeHeader
	pool       *pool
}

type routeHeader struct{ name, value []byte }

func compileRoutes(cfg *Config, ps *pools) []route {
	rs := make([]route, 0, len(cfg.Routes))
	for _, rc := range cfg.Routes {
		r := route{pathPrefix: []byte(rc.Match.PathPrefix), pool: ps.byName(rc.Upstream)}
		if rc.Match.Host != "" {
			r.host = appendLowerString(nil, stripPortString(rc.Match.Host))
		}
		for name, value := range rc.Match.Headers {
			r.headers = append(r.headers, routeHeader{name: []byte(name), value: []byte(value)})
		}
		rs = append(rs, r)
	}
	return rs
}

// selectRoute returns the pool for a request: the first matching route's,
// the first pool when no routes are configured, or nil (404).
func (s *Server) selectRoute(path, authority []byte, hdr headerGetter) *pool {
	if len(s.routes) == 0 {
		return s.pools.list[0]
	}
	host := stripPort(authority)
	for i := range s.routes {
		r := &s.routes[i]
		if len(r.pathPrefix) > 0 && !bytes.HasPrefix(path, r.pathPrefix) {
			continue
		}
		if len(r.host) > 0 && !equalFold(host, r.host) {
			continue
		}
		if !r.headersMatch(hdr) {
			continue
		}
		return r.pool
	}
	return nil
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

func stripPort(hostport []byte) []byte {
	if len(hostport) > 0 && hostport[0] == '[' { // [v6]:port
		if i := bytes.IndexByte(hostport, ']'); i > 0 {
			return hostport[:i+1]
		}
		return hostport
	}
	if i := bytes.LastIndexByte(hostport, ':'); i >= 0 && bytes.IndexByte(hostport[:i], ':') < 0 {
		return hostport[:i]
	}
	return hostport
}

func stripPortString(hostport string) string { return string(stripPort([]byte(hostport))) }
