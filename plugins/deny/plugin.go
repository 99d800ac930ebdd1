//go:build wasip1

// Command deny is a Proxy-Wasm plugin that answers requests matching
// configured rules with an OpenAI-style error instead of forwarding them.
// See README.md for the configuration.
package main

import (
	"github.com/sluice-proxy/sluice/plugins/internal/guest"
	"github.com/sluice-proxy/sluice/plugins/sdk"
)

// main is never called: the host runs the module as a WASI reactor.
func main() {}

func init() { guest.Register("deny", func() sdk.PluginContext { return &plugin{} }) }

type plugin struct {
	sdk.DefaultPluginContext
	rules []rule
}

func (p *plugin) OnPluginStart(size int) bool {
	rules, ok := guest.Configure(size, parseConfig)
	if !ok {
		return false
	}
	p.rules = rules
	return true
}

func (p *plugin) NewHttpContext(uint32) sdk.HttpContext { return &stream{rules: p.rules} }

type stream struct {
	sdk.DefaultHttpContext
	rules []rule
}

var jsonHeaders = [][2]string{{"content-type", "application/json"}}

func (s *stream) OnHttpRequestHeaders(int, bool) sdk.Action {
	headers, err := sdk.GetHttpRequestHeaders()
	if err != nil {
		// Fail closed: a policy that cannot be evaluated denies.
		sdk.LogErrorf("deny: cannot read request headers, denying: %v", err)
		return guest.Reply(failClosedStatus, jsonHeaders, failClosedBody)
	}
	r := match(s.rules, headers)
	if r == nil {
		return sdk.ActionContinue
	}
	return guest.Reply(r.status, jsonHeaders, r.body)
}
