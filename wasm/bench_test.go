package wasm

import (
	"testing"

	"github.com/sluice-proxy/sluice/proxy"
)

// BenchmarkHeadersPluginRequest measures one request's callback path
// (context create, request headers, response headers, log/done/delete)
// through the Go headers plugin, without the proxy.
func BenchmarkHeadersPluginRequest(b *testing.B) {
	h := newTestHost(b)
	p := loadGo(b, h, "plugins/headers", "headers",
		`{"request": {"set": {"x-added": "1"}}, "response": {"set": {"x-resp": "yes"}}}`,
		func(pc *proxy.PluginConfig) { pc.Instances = 1 })
	ex := newExchange("/bench", "user-agent", "bench")
	ex.ResponseHeaders().AddString(":status", "200")
	ex.ResponseHeaders().AddString("content-type", "text/plain")
	b.ReportAllocs()
	for b.Loop() {
		st, err := p.NewStream(ex)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := st.OnRequestHeaders(true); err != nil {
			b.Fatal(err)
		}
		if _, err := st.OnResponseHeaders(true); err != nil {
			b.Fatal(err)
		}
		st.OnDone()
	}
}
