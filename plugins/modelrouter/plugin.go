//go:build wasip1

// Command modelrouter is a Proxy-Wasm plugin that rewrites model aliases
// in the request body and routes each model to an upstream pool, with
// weighted (canary) splits and health-aware fallback. See README.md.
package main

import (
	"errors"
	"math/rand/v2"

	"github.com/sluice-proxy/sluice/plugins/internal/jsonscan"
	"github.com/sluice-proxy/sluice/plugins/internal/upstreams"

	"github.com/sluice-proxy/sluice/plugins/internal/guest"
	"github.com/sluice-proxy/sluice/plugins/internal/openai"
	"github.com/sluice-proxy/sluice/plugins/sdk"
)

// main is never called: the host runs the module as a WASI reactor.
func main() {}

func init() { guest.Register("modelrouter", func() sdk.PluginContext { return &plugin{} }) }

type plugin struct {
	sdk.DefaultPluginContext
	router *router
	// noSnapshot is set once the host said it has no sluice.upstreams,
	// so the plugin logs that once and stops asking.
	noSnapshot bool
	m          routerMetrics
}

// routerMetrics are the plugin's counters (sluice_wasm_modelrouter_…).
type routerMetrics struct {
	routed    map[string]guest.Counter // by pool: …_routed_total{pool}
	diverted  guest.Counter            // health moved a request off its weighted choice
	rewritten guest.Counter            // alias rewrites
	unknown   guest.Counter            // 404 for a model matching no route
}

func defineMetrics(r *router) routerMetrics {
	m := routerMetrics{
		routed:    map[string]guest.Counter{},
		diverted:  guest.NewCounter("modelrouter_diverted_total"),
		rewritten: guest.NewCounter("modelrouter_alias_rewrites_total"),
		unknown:   guest.NewCounter("modelrouter_unknown_models_total"),
	}
	for _, pool := range r.poolNames() {
		m.routed[pool] = guest.NewCounter("modelrouter_routed_total_pool=" + pool)
	}
	return m
}

func (p *plugin) OnPluginStart(size int) bool {
	r, ok := guest.Configure(size, parseConfig)
	if !ok {
		return false
	}
	p.router = r
	p.m = defineMetrics(r)
	return true
}

func (p *plugin) NewHttpContext(uint32) sdk.HttpContext { return &stream{p: p} }

type stream struct {
	sdk.DefaultHttpContext
	p *plugin
}

var (
	jsonHeaders    = [][2]string{{"content-type", "application/json"}}
	failClosedBody = openai.ErrorBody("The request could not be routed.", "server_error", "", "")
)

func (s *stream) OnHttpRequestBody(size int, eos bool) sdk.Action {
	if !eos {
		return sdk.ActionPause // a streaming host buffers until the end
	}
	body, err := sdk.GetHttpRequestBody(0, size)
	if err != nil {
		sdk.LogErrorf("modelrouter: cannot read the request body: %v", err)
		return guest.Reply(500, jsonHeaders, failClosedBody)
	}
	ms, err := jsonscan.Object(body, "model")
	if err != nil || !ms[0].Found() {
		return sdk.ActionContinue // not a model request: the proxy routes it
	}
	m := ms[0]
	model, ok := jsonscan.String(m.Raw(body))
	if !ok {
		return sdk.ActionContinue // the upstream will reject it
	}
	r := s.p.router
	if target, ok := r.aliases[model]; ok {
		if err := sdk.ReplaceHttpRequestBody(rewriteModel(body, m.Start, m.End, target)); err != nil {
			sdk.LogErrorf("modelrouter: rewriting model %q to %q: %v", model, target, err)
			return guest.Reply(500, jsonHeaders, failClosedBody)
		}
		model = target
		s.p.m.rewritten.Inc(1)
	}
	rt := r.match(model)
	if rt == nil {
		if r.rejectUnknown {
			s.p.m.unknown.Inc(1)
			return guest.Reply(404, jsonHeaders, modelNotFound(model))
		}
		return sdk.ActionContinue
	}
	pool, diverted := rt.choose(rand.Uint64(), s.p.health())
	if err := sdk.SetProperty(upstreams.PoolPath, []byte(pool)); err != nil {
		sdk.LogErrorf("modelrouter: routing model %q to upstream pool %q: %v (is the pool configured?)", model, pool, err)
		return guest.Reply(503, jsonHeaders, openai.ErrorBody("No upstream is available for model `"+model+"`.", "server_error", "", "upstream_unavailable"))
	}
	s.p.m.routed[pool].Inc(1)
	if diverted {
		s.p.m.diverted.Inc(1)
	}
	return sdk.ActionContinue
}

// health reads the host's sluice.upstreams snapshot; without one every
// pool counts as healthy.
func (p *plugin) health() health {
	if p.noSnapshot {
		return unknownHealth
	}
	data, err := sdk.GetProperty(upstreams.Path)
	if err != nil {
		if errors.Is(err, sdk.ErrNotFound) || errors.Is(err, sdk.ErrUnimplemented) {
			p.noSnapshot = true
			sdk.LogWarnf("modelrouter: the host has no sluice.upstreams property (%v); routing without health checks", err)
		} else {
			sdk.LogWarnf("modelrouter: reading sluice.upstreams: %v; routing without health checks", err)
		}
		return unknownHealth
	}
	h, err := parseUpstreams(data)
	if err != nil {
		sdk.LogWarnf("%v; routing without health checks", err)
		return unknownHealth
	}
	return h
}

var (
	_ sdk.PluginContext = (*plugin)(nil)
	_ sdk.HttpContext   = (*stream)(nil)
)
