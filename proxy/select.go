package proxy

import (
	"bytes"

	"github.com/sluice-proxy/sluice/proxy/config"
	"github.com/sluice-proxy/sluice/proxy/internal/jsonspan"
	"github.com/sluice-proxy/sluice/proxy/upstream"
	"github.com/valyala/fasthttp"
	"github.com/valyala/fastjson"
)

// choosePool returns the pool a filter chose, or the route's.
func (rs *requestState) choosePool(ctx *fasthttp.RequestCtx) (*upstream.Pool, errorKind) {
	s := rs.srv
	req := &ctx.Request
	if len(s.filters) == 0 {
		return s.selectPool(req.URI().Path(), req.Header.Host(), (*fasthttpHeaders)(&req.Header), &rs.model)
	}
	if rs.ex.upstream != "" {
		return s.pools.ByName(rs.ex.upstream), 0
	}
	return s.selectPool(req.URI().Path(), req.Header.Host(), &rs.ex.reqHeaders, &rs.model)
}

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
		v, ok := hdr.Get(h.name)
		if !ok || !bytes.Equal(v, h.value) {
			return false
		}
	}
	return true
}

// headerGetter looks up request headers for route matching: the filters'
// *Headers as it is, or the fasthttp request through fasthttpHeaders.
type headerGetter interface {
	Get(name []byte) ([]byte, bool)
}

// fasthttpHeaders gives a fasthttp request header the lookup of Headers.
type fasthttpHeaders fasthttp.RequestHeader

// Get returns the first value of name, as Headers.Get.
func (h *fasthttpHeaders) Get(name []byte) ([]byte, bool) {
	v := (*fasthttp.RequestHeader)(h).PeekBytes(name)
	return v, v != nil
}

// hostPattern is a compiled RouteMatch.Host, matched the way Envoy matches
// a virtual host's domains (envoy.config.route.v3.VirtualHost.domains):
//
//	"api.example.com"   exact
//	"*.example.com"     suffix wildcard: any host ending in ".example.com"
//	"*-canary"          suffix wildcard: "web-canary", "127.0.0.1:8080-canary"
//	"api.*"             prefix wildcard: "api.example.com", "api.internal"
//	"*"                 any host
//
// The wildcard never matches the empty string: "*-bar.baz.com" matches
// "foo-bar.baz.com" but not "-bar.baz.com" (Envoy's rule). Comparison
// ignores ASCII case. A pattern that ends in a numeric port
// ("api.example.com:8443", "*.example.com:8443") is compared with the
// request's whole authority, port included; any other pattern with the
// authority's host, its numeric port stripped (hostOf). The zero value
// matches every request (no host condition).
//
// Unlike Envoy, which picks the most specific virtual host (exact, then
// suffix wildcards longest first, then prefix wildcards longest first,
// then "*"), Sluice's routes stay first-match in list order: put the
// narrower host before the wider one.
type hostPattern struct {
	kind     hostKind
	text     []byte // lower-cased, without the '*'
	withPort bool   // compare with the whole authority
}

type hostKind uint8

const (
	hostAny    hostKind = iota // no condition, or "*"
	hostExact                  // text
	hostSuffix                 // "*" + text
	hostPrefix                 // text + "*"
)

// compileHostPattern compiles a pattern Validate accepted (config.ValidHostPattern).
func compileHostPattern(s string) hostPattern {
	p := hostPattern{withPort: hasNumericPort(s)}
	switch {
	case s == "" || s == "*":
		return hostPattern{}
	case s[0] == '*':
		p.kind, s = hostSuffix, s[1:]
	case s[len(s)-1] == '*':
		p.kind, s = hostPrefix, s[:len(s)-1]
	default:
		p.kind = hostExact
	}
	p.text = appendLower(nil, s)
	return p
}

// match reports whether a request whose authority (Host header) is
// authority, and whose host without a numeric port is host, matches p. It
// allocates nothing.
func (p *hostPattern) match(authority, host []byte) bool {
	if p.kind == hostAny {
		return true
	}
	h := host
	if p.withPort {
		h = authority
	}
	switch p.kind {
	case hostExact:
		return equalFold(h, p.text)
	case hostSuffix:
		return len(h) > len(p.text) && equalFold(h[len(h)-len(p.text):], p.text)
	default: // hostPrefix
		return len(h) > len(p.text) && equalFold(h[:len(p.text)], p.text)
	}
}

// hostOf returns authority without its port when the port is numeric:
// "example.com:8080" → "example.com", "[::1]:8080" → "[::1]". Anything
// else after a colon is part of the host as far as routing goes
// ("127.0.0.1:8080-canary", which a plugin may write to route to a
// "*-canary" pattern, stays whole), as is an unbracketed IPv6 address.
func hostOf(authority []byte) []byte {
	i := len(authority)
	for i > 0 && authority[i-1] >= '0' && authority[i-1] <= '9' {
		i--
	}
	if i == len(authority) || i == 0 || authority[i-1] != ':' {
		return authority
	}
	host := authority[:i-1]
	if len(host) > 0 && host[0] == '[' {
		if host[len(host)-1] != ']' {
			return authority
		}
		return host
	}
	for _, c := range host {
		if c == ':' { // unbracketed IPv6: the last group is not a port
			return authority
		}
	}
	return host
}

// hasNumericPort reports whether a host pattern ends in ":<digits>".
func hasNumericPort(s string) bool {
	return len(hostOf([]byte(s))) != len(s)
}

// ValidAuthority reports whether b is a non-empty host[:port] as an
// RFC 3986 authority without userinfo allows: reg-name, IPv4 or a
// bracketed IP literal, then optionally ':' and a port. The port is not
// required to be numeric: Envoy plugins rewrite ":authority" to
// "<authority>-canary", which with a port gives "127.0.0.1:8080-canary",
// and routes match it with "*-canary" (see RouteMatch.Host). Whitespace,
// control bytes, '@', '/', '?', '#', other delimiters and non-ASCII bytes
// are refused.
func ValidAuthority(b []byte) bool {
	if len(b) == 0 {
		return false
	}
	rest := b
	if b[0] == '[' {
		j := 1
		for j < len(b) && b[j] != ']' {
			j++
		}
		if j == len(b) || j == 1 {
			return false
		}
		for _, c := range b[1:j] {
			if !config.IsAuthorityByte(c) || c == '[' {
				return false
			}
		}
		rest = b[j+1:]
		if len(rest) > 0 && rest[0] != ':' {
			return false
		}
	}
	for _, c := range rest {
		if !config.IsAuthorityByte(c) || c == '[' || c == ']' {
			return false
		}
	}
	return true
}

// Model-aware routing. With OpenAICompat, the "model" member of a /v1/…
// request's JSON body is read after the plugins' request phase (so a
// plugin may rewrite it), by walking the body's top-level members without
// decoding the rest and without allocating (package jsonspan); its escapes are
// decoded by fastjson. Duplicate "model" members resolve to the last, as
// Python's json module and Go's encoding/json do, so Sluice routes on the
// name the engine will read. A body that is not a JSON object, or whose
// top level is malformed, has no model: the request goes on without one.

var strV1Prefix = []byte("/v1/")

// requestModel is what findModel learnt about the request's model. It
// lives in the pooled requestState, and so does its parser.
type requestModel struct {
	name       []byte // decoded; valid while the request lives
	has        bool
	start, end int // the model string token's bounds in rs.body

	// dec decodes escaped keys and names. It only ever parses one string
	// token, never the body: package jsonspan says why.
	dec fastjson.Parser
}

func (m *requestModel) reset() {
	m.name = m.name[:0]
	m.has = false
	m.start, m.end = 0, 0
}

// findModel reads the model of an OpenAI request: a /v1/ path and a JSON
// object body with a string "model" member.
func (rs *requestState) findModel(req *fasthttp.Request) {
	m := &rs.model
	if !rs.srv.cfg.OpenAICompat || len(rs.body) == 0 || !bytes.HasPrefix(req.URI().Path(), strV1Prefix) {
		return
	}
	start, end, ok := jsonspan.StringMember(&m.dec, rs.body, "model")
	if !ok {
		return
	}
	name, ok := jsonspan.DecodeString(&m.dec, rs.body[start:end])
	if !ok {
		return
	}
	m.name = append(m.name[:0], name...)
	m.has, m.start, m.end = true, start, end
}

// aliasJSON maps each alias of a pool to the JSON string of the name sent
// upstream, quoted once at start-up.
func aliasJSON(aliases map[string]string) map[string][]byte {
	m := make(map[string][]byte, len(aliases))
	for alias, target := range aliases {
		m[alias] = jsonspan.AppendString(nil, target)
	}
	return m
}

// applyAlias rewrites the body's model when the pool maps the client's
// name to another, by splicing the new name's JSON string over the old
// token: every other byte of the body is kept, field order, unknown fields,
// numbers and escapes included. (fastjson's Object.Set and MarshalTo would
// re-serialize the whole document instead, dropping its spacing and
// re-quoting any string it decoded with strconv.AppendQuote, whose \x00
// is not JSON; and Set replaces the first of duplicate "model" members
// where the engine reads the last.) fasthttp writes Content-Length from
// the new body.
func (rs *requestState) applyAlias(req *fasthttp.Request, p *upstream.Pool) {
	m := &rs.model
	aliases := rs.srv.aliasJSON[p.Index()]
	if !m.has || len(aliases) == 0 {
		return
	}
	quoted, ok := aliases[string(m.name)]
	if !ok {
		return
	}
	nb := append(rs.bodyAlt[:0], rs.body[:m.start]...)
	nb = append(nb, quoted...)
	nb = append(nb, rs.body[m.end:]...)
	rs.bodyAlt, rs.body = rs.body, nb
	m.end = m.start + len(quoted)
	req.SetBodyRaw(rs.body)
}
