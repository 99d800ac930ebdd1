//go:build wasip1

// Command headers is a Proxy-Wasm plugin that adds, sets and removes request
// and response headers. See README.md for the configuration.
package main

import (
	"github.com/sluice-proxy/sluice/plugins/internal/guest"
	"github.com/sluice-proxy/sluice/plugins/sdk"
)

// main is never called: the host runs the module as a WASI reactor.
func main() {}

func init() { guest.Register("headers", func() sdk.PluginContext { return &plugin{} }) }

type plugin struct {
	sdk.DefaultPluginContext
	plan *plan
}

func (p *plugin) OnPluginStart(size int) bool {
	pl, ok := guest.Configure(size, parseConfig)
	if !ok {
		return false
	}
	if pl.request.empty() && pl.response.empty() {
		sdk.LogWarn("headers: the configuration has no operations; the plugin changes nothing")
	}
	p.plan = pl
	return true
}

func (p *plugin) NewHttpContext(uint32) sdk.HttpContext { return &stream{plan: p.plan} }

type stream struct {
	sdk.DefaultHttpContext
	plan *plan
}

func (s *stream) OnHttpRequestHeaders(int, bool) sdk.Action {
	apply("request", s.plan.request, sdk.RemoveHttpRequestHeader, sdk.SetHttpRequestHeader, sdk.AddHttpRequestHeader)
	return sdk.ActionContinue
}

func (s *stream) OnHttpResponseHeaders(int, bool) sdk.Action {
	apply("response", s.plan.response, sdk.RemoveHttpResponseHeader, sdk.SetHttpResponseHeader, sdk.AddHttpResponseHeader)
	return sdk.ActionContinue
}

// apply runs one direction's operations. A failing host call is logged and
// the remaining operations still run: a header edit is not worth failing the
// request for.
func apply(dir string, o ops, remove func(string) error, set, add func(string, string) error) {
	for _, name := range o.remove {
		if err := remove(name); err != nil {
			sdk.LogWarnf("headers: %s: removing %q: %v", dir, name, err)
		}
	}
	for _, kv := range o.set {
		if err := set(kv[0], kv[1]); err != nil {
			sdk.LogWarnf("headers: %s: setting %q: %v", dir, kv[0], err)
		}
	}
	for _, kv := range o.add {
		if err := add(kv[0], kv[1]); err != nil {
			sdk.LogWarnf("headers: %s: adding %q: %v", dir, kv[0], err)
		}
	}
}
