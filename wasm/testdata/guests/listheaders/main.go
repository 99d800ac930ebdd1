//go:build wasip1

// Command listheaders is a test guest written the way plugins built with
// the widely used third-party Go SDKs for Envoy are written: every request
// reads all request headers as a list, logs one formatted line per header
// at info, replaces one header and adds a response header. It is what
// BenchmarkListHeadersGuest measures, so the cost of that style (the
// header list, the host's allocations in the guest, formatting log lines
// the host may drop) is visible.
//
// Plugin configuration: "quiet" skips the per-header log lines.
//
// Every response carries x-formatted: the number of log arguments the SDK
// formatted so far (a fmt.Stringer counts its calls), so a test can check
// that lines the host drops are never formatted.
package main

import (
	"strconv"

	"github.com/sluice-proxy/sluice/plugins/sdk"
)

// formatted counts counter.String calls: log arguments actually formatted.
var formatted int

type counter struct{}

func (counter) String() string { formatted++; return "" }

func main() {}

func init() { sdk.SetPluginContext(func(uint32) sdk.PluginContext { return &plugin{} }) }

type plugin struct {
	sdk.DefaultPluginContext
	quiet bool
}

func (p *plugin) OnPluginStart(int) bool {
	cfg, _ := sdk.GetPluginConfiguration()
	p.quiet = string(cfg) == "quiet"
	return true
}

func (p *plugin) NewHttpContext(uint32) sdk.HttpContext { return &httpCtx{quiet: p.quiet} }

type httpCtx struct {
	sdk.DefaultHttpContext
	quiet bool
}

func (h *httpCtx) OnHttpRequestHeaders(int, bool) sdk.Action {
	hs, err := sdk.GetHttpRequestHeaders()
	if err != nil {
		sdk.LogCriticalf("listheaders: cannot read request headers: %v", err)
		return sdk.ActionContinue
	}
	for _, kv := range hs {
		if !h.quiet {
			sdk.LogInfof("request header --> %s: %s%v", kv[0], kv[1], counter{})
		}
	}
	if err := sdk.SetHttpRequestHeader("x-bench", "1"); err != nil {
		sdk.LogCriticalf("listheaders: cannot replace a header: %v", err)
	}
	return sdk.ActionContinue
}

func (h *httpCtx) OnHttpResponseHeaders(int, bool) sdk.Action {
	if err := sdk.AddHttpResponseHeader("x-formatted", strconv.Itoa(formatted)); err != nil {
		sdk.LogCriticalf("listheaders: cannot add a response header: %v", err)
	}
	if err := sdk.AddHttpResponseHeader("x-listheaders-resp", "1"); err != nil {
		sdk.LogCriticalf("listheaders: cannot add a response header: %v", err)
	}
	return sdk.ActionContinue
}
