//go:build wasip1

// Command queuepicker is a Proxy-Wasm plugin that picks the least-loaded
// endpoints of the request's upstream pool from the host's sluice.upstreams
// snapshot (queue depth, requests in flight, KV-cache use) and hands them
// to the proxy as sluice.endpoint, the idea of the Gateway API Inference
// Extension's endpoint picker. See README.md.
package main

import (
	"errors"
	"math/rand/v2"

	"github.com/sluice-proxy/sluice/plugins/internal/guest"
	"github.com/sluice-proxy/sluice/plugins/internal/upstreams"
	"github.com/sluice-proxy/sluice/plugins/sdk"
)

// main is never called: the host runs the module as a WASI reactor.
func main() {}

func init() { guest.Register("queuepicker", func() sdk.PluginContext { return &plugin{} }) }

type plugin struct {
	sdk.DefaultPluginContext
	picker *picker
	warned bool // the "no snapshot" warning was logged
	// noLoads: the host has no sluice.endpoint_loads, or answered it
	// wrongly; the sluice.upstreams JSON is read instead from then on.
	noLoads bool
	// Scratch reused by every request: the loads read, the ranking and
	// the endpoint list written.
	loads []upstreams.Load
	cands []candidate
	list  []byte
	// lastPool is the pool the last sluice.endpoint_loads answer named;
	// defaultPool the configured pool, asked for when none was chosen.
	lastPool    string
	defaultPool []byte
	stream      *stream // the HTTP context of every request
	// picked counts requests given an endpoint list, skipped those left
	// to the pool's own policy (sluice_wasm_queuepicker_…_total).
	picked, skipped guest.Counter
}

func (p *plugin) OnPluginStart(size int) bool {
	pk, ok := guest.Configure(size, parseConfig)
	if !ok {
		return false
	}
	p.picker, p.defaultPool = pk, []byte(pk.pool)
	p.picked = guest.NewCounter("queuepicker_picked_total")
	p.skipped = guest.NewCounter("queuepicker_skipped_total")
	// The pick happens in the request phase: Sluice need not call the
	// plugin for the response or at the stream's end.
	if err := sdk.SkipCallbacks(sdk.CallbackResponseHeaders, sdk.CallbackResponseBody, sdk.CallbackLog, sdk.CallbackDone); err != nil && !errors.Is(err, sdk.ErrNotFound) {
		sdk.LogWarnf("queuepicker: sluice.skip_callbacks: %v", err)
	}
	return true
}

// NewHttpContext returns the plugin's one stream: it holds no state of
// its own request, so every request can share it, and a new one per
// request would cost the guest an allocation.
func (p *plugin) NewHttpContext(uint32) sdk.HttpContext {
	if p.stream == nil {
		p.stream = &stream{p: p}
	}
	return p.stream
}

// stream is the HTTP context of every request (NewHttpContext).
type stream struct {
	sdk.DefaultHttpContext
	p *plugin
}

// The properties read and set per request, serialized as
// sdk.SerializePropertyPath does, once.
var (
	poolPath     = []byte("sluice\x00upstream")
	endpointPath = []byte("sluice\x00endpoint")
)

// The pick runs at the end of the request phase's headers (no body) or
// body, so it sees the pool that plugins before it (modelrouter) chose
// from the body.
func (s *stream) OnHttpRequestHeaders(_ int, eos bool) sdk.Action {
	if eos {
		s.p.pick()
	}
	return sdk.ActionContinue
}

func (s *stream) OnHttpRequestBody(_ int, eos bool) sdk.Action {
	if eos {
		s.p.pick()
	}
	return sdk.ActionContinue
}

// pick sets sluice.endpoint for the current request. Whatever goes wrong,
// the request continues and the proxy balances it by its own policy.
func (p *plugin) pick() {
	if p.trySet() {
		p.picked.Inc(1)
	} else {
		p.skipped.Inc(1)
	}
}

func (p *plugin) trySet() bool {
	chosen, err := sdk.GetSerializedProperty(poolPath)
	if err != nil && !errors.Is(err, sdk.ErrNotFound) {
		sdk.LogWarnf("queuepicker: reading sluice.upstream: %v", err)
		return false
	}
	asked := chosen
	if len(asked) == 0 {
		asked = p.defaultPool
	}
	pool, eps, ok := p.binaryLoads(asked)
	if !ok {
		if pool, eps, ok = p.jsonLoads(string(chosen)); !ok {
			sdk.ReleaseBytes(chosen)
			return false
		}
	}
	sdk.ReleaseBytes(chosen)
	if pool == "" {
		sdk.LogDebug("queuepicker: no pool chosen and several configured; set \"pool\" or route by model first")
		return false
	}
	p.list, p.cands = p.picker.appendPick(p.list[:0], eps, rand.Uint64(), p.cands)
	if len(p.list) == 0 {
		sdk.LogDebugf("queuepicker: pool %q has no healthy endpoint", pool)
		return false
	}
	if err := sdk.SetSerializedProperty(endpointPath, p.list); err != nil {
		sdk.LogWarnf("queuepicker: setting sluice.endpoint to %q in pool %q: %v", p.list, pool, err)
		return false
	}
	return true
}

// binaryLoads reads the loads of the pool asked for ("": the only one)
// with sluice.endpoint_loads; ok is false when the call failed (the JSON
// is read instead) or the host lacks the function or answered it wrongly
// (remembered: the JSON from then on). pool is "" when the host has
// several pools and none was named.
func (p *plugin) binaryLoads(asked []byte) (pool string, eps []upstreams.Load, ok bool) {
	if p.noLoads {
		return "", nil, false
	}
	res, err := sdk.CallForeignFunction(upstreams.LoadsFunc, asked)
	switch {
	case errors.Is(err, sdk.ErrNotFound):
		p.noLoads = true
		sdk.LogInfof("queuepicker: the host has no %s; reading sluice.upstreams instead", upstreams.LoadsFunc)
		return "", nil, false
	case err != nil: // a pool name over 1 KiB, say: the JSON has it
		return "", nil, false
	}
	name, eps, ok := upstreams.DecodeLoads(p.loads, res)
	if ok {
		p.loads = eps
		if string(name) != p.lastPool { // usually the same pool: no new string
			p.lastPool = string(name)
		}
		pool = p.lastPool
	}
	sdk.ReleaseBytes(res)
	if !ok {
		p.noLoads = true
		sdk.LogWarnf("queuepicker: %s answered %d malformed bytes; reading sluice.upstreams instead", upstreams.LoadsFunc, len(res))
	}
	return pool, eps, ok
}

// jsonLoads reads the loads of the pool from the sluice.upstreams JSON:
// the pool chosen earlier, else the configured one, else the only one.
// ok is false when the property cannot be read or parsed (logged).
func (p *plugin) jsonLoads(chosen string) (pool string, eps []upstreams.Load, ok bool) {
	data, err := sdk.GetProperty(upstreams.Path)
	if err != nil {
		if !p.warned {
			p.warned = true
			sdk.LogWarnf("queuepicker: cannot read sluice.upstreams (%v); the proxy balances requests itself", err)
		}
		return "", nil, false
	}
	snap, err := upstreams.Parse("queuepicker", data)
	if err != nil {
		sdk.LogWarn(err.Error())
		return "", nil, false
	}
	pool = p.picker.poolFor(chosen, snap)
	p.loads = snap.Loads(p.loads, pool)
	return pool, p.loads, true
}

var (
	_ sdk.PluginContext = (*plugin)(nil)
	_ sdk.HttpContext   = (*stream)(nil)
)
