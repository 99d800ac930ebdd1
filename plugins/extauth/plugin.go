//go:build wasip1

// Command extauth is a Proxy-Wasm plugin that asks an external
// authorization service about each request with an HTTP callout, admits
// on 2xx and relays any refusal, caching decisions in shared data. See
// README.md.
package main

import (
	"errors"
	"time"

	"github.com/sluice-proxy/sluice/plugins/internal/guest"
	"github.com/sluice-proxy/sluice/plugins/internal/openai"
	"github.com/sluice-proxy/sluice/plugins/sdk"
)

// main is never called: the host runs the module as a WASI reactor.
func main() {}

func init() { guest.Register("extauth", func() sdk.PluginContext { return &plugin{} }) }

type plugin struct {
	sdk.DefaultPluginContext
	cfg    *settings
	prefix string // shared-data key prefix: the plugin's name
	m      authMetrics
}

// authMetrics are the plugin's counters (sluice_wasm_extauth_…).
type authMetrics struct {
	allowed, denied, failed guest.Counter // decisions applied, by result
	cacheHits               guest.Counter // decisions taken from the cache
}

func defineMetrics() authMetrics {
	const name = "extauth_decisions_total_result="
	return authMetrics{
		allowed:   guest.NewCounter(name + "allowed"),
		denied:    guest.NewCounter(name + "denied"),
		failed:    guest.NewCounter(name + "failed"),
		cacheHits: guest.NewCounter("extauth_cache_hits_total"),
	}
}

func (p *plugin) OnPluginStart(size int) bool {
	cfg, ok := guest.Configure(size, parseConfig)
	if !ok {
		return false
	}
	p.cfg = cfg
	p.m = defineMetrics()
	p.prefix = guest.PluginName()
	return true
}

func (p *plugin) NewHttpContext(id uint32) sdk.HttpContext { return &stream{p: p, id: id} }

type stream struct {
	sdk.DefaultHttpContext
	p  *plugin
	id uint32
}

func (s *stream) OnHttpRequestHeaders(int, bool) sdk.Action {
	p := s.p
	req, err := sdk.GetHttpRequestHeaders()
	if err != nil {
		sdk.LogErrorf("extauth: cannot read the request headers: %v", err)
		return p.apply(failure(p.cfg))
	}
	fwd := forwarded(p.cfg.forward, req)
	key := cacheKey(p.prefix, fwd)
	if v, ok := p.cached(key); ok {
		p.m.cacheHits.Inc(1)
		return p.apply(v)
	}
	var method, uri, reqID string
	for _, kv := range req {
		switch kv[0] {
		case ":method":
			method = kv[1]
		case ":path":
			uri = kv[1]
		case "x-request-id":
			reqID = kv[1]
		}
	}
	id := s.id
	_, err = sdk.DispatchHttpCall(p.cfg.pool, calloutHeaders(p.cfg, fwd, method, uri, reqID), nil, nil,
		uint32(p.cfg.timeout/time.Millisecond), func(numHeaders, bodySize, _ int) {
			p.onReply(id, key, numHeaders, bodySize)
		})
	if err != nil {
		if errors.Is(err, sdk.ErrUnimplemented) {
			sdk.LogErrorf("extauth: the host does not support HTTP callouts (proxy_http_call): %v", err)
		} else {
			sdk.LogWarnf("extauth: calling the authorization service in pool %q: %v", p.cfg.pool, err)
		}
		return p.apply(failure(p.cfg))
	}
	return sdk.ActionPause
}

// cached returns a decision from shared data that has not expired.
func (p *plugin) cached(key string) (verdict, bool) {
	if p.cfg.ttl == 0 {
		return verdict{}, false
	}
	data, _, err := sdk.GetSharedData(key)
	if err != nil {
		if !errors.Is(err, sdk.ErrNotFound) {
			sdk.LogWarnf("extauth: reading the decision cache: %v", err)
		}
		return verdict{}, false
	}
	v, expires, ok := decodeRecord(data)
	now, err := sdk.GetCurrentTime()
	if !ok || err != nil || now.UnixNano() >= expires {
		return verdict{}, false
	}
	return v, true
}

// onReply runs on the plugin context when the service answers (or the
// call fails): it caches the decision and applies it to the paused
// request, if that request is still there.
func (p *plugin) onReply(id uint32, key string, numHeaders, bodySize int) {
	var v verdict
	ok := false
	status := 0
	if numHeaders > 0 {
		headers, err := sdk.GetHttpCallResponseHeaders()
		var body []byte
		if err == nil && bodySize > 0 {
			body, err = sdk.GetHttpCallResponseBody(0, min(bodySize, maxAuthBody+1))
		}
		if err != nil {
			sdk.LogWarnf("extauth: reading the authorization reply: %v", err)
		} else {
			status = statusOf(headers)
			v, ok = decide(p.cfg, status, headers, body)
		}
	}
	if ok && p.cfg.ttl > 0 {
		if now, err := sdk.GetCurrentTime(); err == nil {
			if err := sdk.SetSharedData(key, encodeRecord(v, now.Add(p.cfg.ttl).UnixNano()), 0); err != nil {
				sdk.LogWarnf("extauth: caching the decision: %v", err)
			}
		}
	}
	if !ok {
		if numHeaders == 0 {
			sdk.LogWarnf("extauth: the authorization service in pool %q did not answer (failed or timed out)", p.cfg.pool)
		} else {
			sdk.LogWarnf("extauth: the authorization service in pool %q failed (status %d)", p.cfg.pool, status)
		}
		v = failure(p.cfg)
	}
	if err := sdk.SetEffectiveContext(id); err != nil {
		sdk.LogDebugf("extauth: request %d ended before the authorization reply: %v", id, err)
		return
	}
	if p.apply(v) == sdk.ActionContinue {
		if err := sdk.ResumeHttpRequest(); err != nil {
			sdk.LogErrorf("extauth: resuming the request: %v", err)
		}
	}
}

// apply carries out a verdict on the effective request: an admitted
// request gets the copy_headers from the reply (and loses any the client
// sent); a refused one gets the reply.
func (p *plugin) apply(v verdict) sdk.Action {
	switch {
	case v.failed:
		p.m.failed.Inc(1)
	case !v.allow:
		p.m.denied.Inc(1)
	default:
		p.m.allowed.Inc(1)
	}
	if !v.allow {
		return guest.Reply(v.status, v.headers, v.body)
	}
	var errs []error
	for _, n := range p.cfg.copy {
		errs = append(errs, sdk.RemoveHttpRequestHeader(n))
	}
	for _, kv := range v.headers {
		errs = append(errs, sdk.AddHttpRequestHeader(kv[0], kv[1]))
	}
	if err := errors.Join(errs...); err != nil {
		sdk.LogErrorf("extauth: setting the authorization headers on the request: %v", err)
		return guest.Reply(500, [][2]string{{"content-type", "application/json"}},
			openai.ErrorBody("The request could not be authorized.", "server_error", "", ""))
	}
	return sdk.ActionContinue
}

var (
	_ sdk.PluginContext = (*plugin)(nil)
	_ sdk.HttpContext   = (*stream)(nil)
)
