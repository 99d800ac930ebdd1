//go:build wasip1

// Command deny is a Proxy-Wasm plugin that answers requests matching
// configured rules with an OpenAI-style error instead of forwarding them.
// See README.md for the configuration.
package main

import "github.com/sluice-proxy/sluice/plugins/sdk"

// main is never called: the host runs the module as a WASI reactor.
func main() {}

func init() { sdk.SetVMContext(vm{}) }

type vm struct{ sdk.DefaultVMContext }

func (vm) NewPluginContext(uint32) sdk.PluginContext { return &plugin{} }

type plugin struct {
	sdk.DefaultPluginContext
	rules []rule
}

func (p *plugin) OnPluginStart(size int) bool {
	var data []byte
	if size > 0 {
		var err error
		data, err = sdk.GetPluginConfiguration()
		if err != nil {
			sdk.LogCriticalf("deny: cannot read the plugin configuration: %v", err)
			return false
		}
	}
	rules, err := parseConfig(data)
	if err != nil {
		sdk.LogCritical(err.Error())
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
		return reply(failClosedStatus, failClosedBody)
	}
	r := match(s.rules, headers)
	if r == nil {
		return sdk.ActionContinue
	}
	return reply(r.status, r.body)
}

// reply sends the local response and pauses the stream. If the host refuses
// the local response, the request is reset rather than let through.
func reply(status uint32, body []byte) sdk.Action {
	if err := sdk.SendHttpResponse(status, jsonHeaders, body, -1); err != nil {
		sdk.LogErrorf("deny: sending the %d reply failed, closing the request: %v", status, err)
		if err := sdk.CloseStream(sdk.StreamHttpRequest); err != nil {
			sdk.LogErrorf("deny: closing the request failed: %v", err)
		}
	}
	return sdk.ActionPause
}
