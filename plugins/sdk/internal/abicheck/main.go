//go:build wasip1

// Command abicheck is a test guest that links every host call wrapper of the
// sdk package, so internal/plugintest can check each import's Proxy-Wasm
// v0.2.1 signature in the built module (a plugin imports only the host
// functions it reaches).
//
// When loaded with the plugin configuration "exercise" it calls every wrapper
// once from OnPluginStart and logs each result at info level as
// "abicheck: <call>: <error or ok>"; it always accepts the configuration.
// The property abicheck.bogus_pointer is read too: a test host answers it
// with an address it did not get from proxy_on_memory_allocate, which the
// SDK must refuse.
package main

import (
	"fmt"

	"github.com/sluice-proxy/sluice/plugins/sdk"
)

func main() {}

func init() { sdk.SetPluginContext(func(uint32) sdk.PluginContext { return &plugin{} }) }

type plugin struct{ sdk.DefaultPluginContext }

func (p *plugin) OnPluginStart(size int) bool {
	cfg, err := sdk.GetPluginConfiguration()
	report("GetPluginConfiguration", err)
	if string(cfg) != "exercise" {
		return true
	}
	exercise()
	return true
}

func report(call string, err error) {
	if err != nil {
		sdk.LogInfof("abicheck: %s: %v", call, err)
		return
	}
	sdk.LogInfof("abicheck: %s: ok", call)
}

func exercise() {
	_, err := sdk.GetVMConfiguration()
	report("GetVMConfiguration", err)
	report("Log", sdk.Log(sdk.LogLevelDebug, "abicheck"))
	_, err = sdk.GetLogLevel()
	report("GetLogLevel", err)
	_, err = sdk.GetCurrentTime()
	report("GetCurrentTime", err)
	report("SetTickPeriodMilliSeconds", sdk.SetTickPeriodMilliSeconds(0))
	_, err = sdk.GetBufferBytes(sdk.BufferHttpRequestBody, 0, 1)
	report("GetBufferBytes", err)
	report("SetBufferBytes", sdk.SetBufferBytes(sdk.BufferHttpRequestBody, 0, 0, []byte("x")))
	_, err = sdk.GetHttpRequestHeaders()
	report("GetHttpRequestHeaders", err)
	report("ReplaceHttpRequestHeaders", sdk.ReplaceHttpRequestHeaders([][2]string{{"a", "b"}}))
	_, err = sdk.GetHttpRequestHeader("a")
	report("GetHttpRequestHeader", err)
	report("AddHttpRequestHeader", sdk.AddHttpRequestHeader("a", "b"))
	report("SetHttpRequestHeader", sdk.SetHttpRequestHeader("a", "b"))
	report("RemoveHttpRequestHeader", sdk.RemoveHttpRequestHeader("a"))
	report("ResumeHttpRequest", sdk.ResumeHttpRequest())
	report("CloseStream", sdk.CloseStream(sdk.StreamHttpResponse))
	report("SendHttpResponse", sdk.SendHttpResponse(403, nil, []byte("no"), -1))
	_, err = sdk.DispatchHttpCall("pool", [][2]string{{":method", "GET"}, {":path", "/"}, {":authority", "x"}},
		nil, [][2]string{{"t", "v"}}, 1000, func(int, int, int) {})
	report("DispatchHttpCall", err)
	_, err = sdk.GetProperty([]string{"plugin_name"})
	report("GetProperty", err)
	_, err = sdk.GetProperty([]string{"abicheck", "bogus_pointer"})
	report("GetProperty(bogus_pointer)", err)
	report("SetProperty", sdk.SetProperty([]string{"sluice", "x"}, []byte("y")))
	report("SetEffectiveContext", sdk.SetEffectiveContext(1))
	report("Done", sdk.Done())
	report("SetSharedData", sdk.SetSharedData("k", []byte("v"), 0))
	_, _, err = sdk.GetSharedData("k")
	report("GetSharedData", err)
	q, err := sdk.RegisterSharedQueue("q")
	report("RegisterSharedQueue", err)
	_, err = sdk.ResolveSharedQueue("vm", "q")
	report("ResolveSharedQueue", err)
	report("EnqueueSharedQueue", sdk.EnqueueSharedQueue(q, []byte("item")))
	_, err = sdk.DequeueSharedQueue(q)
	report("DequeueSharedQueue", err)
	c, err := sdk.DefineCounterMetric("abicheck_counter")
	report("DefineCounterMetric", err)
	report("Counter.Increment", c.Increment(1))
	_, err = c.Get()
	report("Counter.Get", err)
	g, err := sdk.DefineGaugeMetric("abicheck_gauge")
	report("DefineGaugeMetric", err)
	report("Gauge.Record", g.Record(-1))
	h, err := sdk.DefineHistogramMetric("abicheck_histogram")
	report("DefineHistogramMetric", err)
	report("Histogram.Record", h.Record(1))
	_, err = sdk.CallForeignFunction("f", []byte("args"))
	report("CallForeignFunction", err)
	sdk.LogDebug(fmt.Sprint("abicheck: done"))
}
