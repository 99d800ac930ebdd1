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
	// picked counts requests given an endpoint list, skipped those left
	// to the pool's own policy (sluice_wasm_queuepicker_…_total).
	picked, skipped guest.Counter
}

func (p *plugin) OnPluginStart(size int) bool {
	pk, ok := guest.Configure(size, parseConfig)
	if !ok {
		return false
	}
	p.picker = pk
	p.picked = guest.NewCounter("queuepicker_picked_total")
	p.skipped = guest.NewCounter("queuepicker_skipped_total")
	return true
}

func (p *plugin) NewHttpContext(uint32) sdk.HttpContext { return &stream{p: p} }

type stream struct {
	sdk.DefaultHttpContext
	p *plugin
}

var endpointPath = []string{"sluice", "endpoint"}

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
	data, err := sdk.GetProperty(upstreams.Path)
	if err != nil {
		if !p.warned {
			p.warned = true
			sdk.LogWarnf("queuepicker: cannot read sluice.upstreams (%v); the proxy balances requests itself", err)
		}
		return false
	}
	snap, err := upstreams.Parse("queuepicker", data)
	if err != nil {
		sdk.LogWarn(err.Error())
		return false
	}
	chosen, err := sdk.GetProperty(upstreams.PoolPath)
	if err != nil && !errors.Is(err, sdk.ErrNotFound) {
		sdk.LogWarnf("queuepicker: reading sluice.upstream: %v", err)
		return false
	}
	pool := p.picker.poolFor(string(chosen), snap)
	if pool == "" {
		sdk.LogDebug("queuepicker: no pool chosen and several configured; set \"pool\" or route by model first")
		return false
	}
	list := p.picker.pick(snap, pool, rand.Uint64())
	if list == "" {
		sdk.LogDebugf("queuepicker: pool %q has no healthy endpoint", pool)
		return false
	}
	if err := sdk.SetProperty(endpointPath, []byte(list)); err != nil {
		sdk.LogWarnf("queuepicker: setting sluice.endpoint to %q in pool %q: %v", list, pool, err)
		return false
	}
	return true
}

var (
	_ sdk.PluginContext = (*plugin)(nil)
	_ sdk.HttpContext   = (*stream)(nil)
)
