package wasm

import (
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/sluice-proxy/sluice/internal/plugintest"
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
		benchRequest(b, p, ex)
	}
}

// BenchmarkGuestRequest compares guests from three toolchains doing the
// same work as the benchmark harness's headers-only case: one request
// through the callbacks each exports, adding "x-bench: 1" to the request.
// The host logs at Info, as Sluice does by default (the AssemblyScript SDK
// logs every request at debug level).
func BenchmarkGuestRequest(b *testing.B) {
	h := newTestHostWith(b, func(c *HostConfig) {
		c.Logger = slog.New(slog.NewTextHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelInfo}))
	})
	guests := []struct {
		name string
		load func(b *testing.B) *Plugin
	}{
		{"go", func(b *testing.B) *Plugin {
			return loadGo(b, h, "plugins/headers", "headers", `{"request":{"add":{"x-bench":"1"}}}`,
				func(pc *proxy.PluginConfig) { pc.Instances = 1 })
		}},
		{"c", func(b *testing.B) *Plugin {
			return h.mustLoad(b, proxy.PluginConfig{Name: "c", Path: plugintest.BuildC(b, "../plugins/c"),
				Config: proxy.RawConfig("headers-only"), Instances: 1})
		}},
		{"assemblyscript", func(b *testing.B) *Plugin {
			return h.mustLoad(b, proxy.PluginConfig{Name: "as", Path: plugintest.BuildAS(b, "../plugins/assemblyscript"),
				Config: proxy.RawConfig("headers-only"), Instances: 1})
		}},
	}
	for _, g := range guests {
		b.Run(g.name, func(b *testing.B) {
			p := g.load(b)
			defer p.Close()
			ex := newExchange("/bench", "user-agent", "bench")
			ex.ResponseHeaders().AddString(":status", "200")
			b.ReportAllocs()
			for b.Loop() {
				ex.RequestHeaders().DelString("x-bench")
				benchRequest(b, p, ex)
			}
		})
		// The same request with each step timed: where a guest spends.
		b.Run(g.name+"/phases", func(b *testing.B) {
			p := g.load(b)
			defer p.Close()
			ex := newExchange("/bench", "user-agent", "bench")
			ex.ResponseHeaders().AddString(":status", "200")
			var phase [4]time.Duration
			for b.Loop() {
				ex.RequestHeaders().DelString("x-bench")
				t0 := monoNow()
				st, err := p.NewStream(ex)
				if err != nil {
					b.Fatal(err)
				}
				t1 := monoNow()
				if _, err := st.OnRequestHeaders(true); err != nil {
					b.Fatal(err)
				}
				t2 := monoNow()
				if _, err := st.OnResponseHeaders(true); err != nil {
					b.Fatal(err)
				}
				t3 := monoNow()
				st.OnDone()
				t4 := monoNow()
				phase[0] += t1 - t0
				phase[1] += t2 - t1
				phase[2] += t3 - t2
				phase[3] += t4 - t3
			}
			for i, name := range []string{"ns/create", "ns/req-headers", "ns/resp-headers", "ns/done"} {
				b.ReportMetric(float64(phase[i].Nanoseconds())/float64(b.N), name)
			}
		})
	}
}

// BenchmarkCallbackOverhead measures one callback round trip that does no
// work in the guest: "wat" is a hand-written guest whose callback returns
// at once (the host's and wazero's share), "go" the Go SDK's
// proxy_on_log on a context it already logged (the Go runtime's
// go:wasmexport entry and exit, plus one map lookup in the SDK). The
// difference is what every callback costs inside a Go guest before the
// plugin's own code runs.
func BenchmarkCallbackOverhead(b *testing.B) {
	h := newTestHost(b)
	run := func(b *testing.B, p *Plugin, cb callback, a1, a2 uint64) {
		st, err := p.NewStream(newExchange("/x"))
		if err != nil {
			b.Fatal(err)
		}
		defer st.OnDone()
		s := st.(*stream)
		in := s.inst
		b.ReportAllocs()
		for b.Loop() {
			in.mu.Lock()
			_, err := in.call(cb, s, uint64(s.id), a1, a2, p.callTimeout)
			in.mu.Unlock()
			if err != nil {
				b.Fatal(err)
			}
		}
	}
	b.Run("wat", func(b *testing.B) {
		// spin's proxy_on_request_headers loops num_headers×2000 times:
		// with 0 headers it returns at once.
		p := h.mustLoad(b, proxy.PluginConfig{Name: "spin", Path: "testdata/cpu/spin.wasm", Instances: 1})
		defer p.Close()
		run(b, p, cbRequestHeaders, 0, 1)
	})
	b.Run("go", func(b *testing.B) {
		p := loadGo(b, h, "plugins/headers", "headers", `{}`, func(pc *proxy.PluginConfig) { pc.Instances = 1 })
		defer p.Close()
		run(b, p, cbLog, 0, 0)
	})
}

// benchRequest runs one request through p's stream callbacks (request
// headers, response headers, done).
func benchRequest(b testing.TB, p *Plugin, ex *proxy.Exchange) {
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

// BenchmarkGuestLoop measures a guest's tight loop (the spin fixture: a
// counter decremented to zero, 2000 iterations per request header) and
// reports the cost of one iteration, stop check included.
func BenchmarkGuestLoop(b *testing.B) {
	const headers = 64
	benchGuestCPU(b, "spin", headers, headers*2000, "ns/iter")
}

// BenchmarkGuestRecursion measures a guest's function calls with no loop
// (the recurse fixture: fan(16), 2^17 - 1 calls of a function that calls
// itself twice) and reports the cost of one call, its entry stop check
// included.
func BenchmarkGuestRecursion(b *testing.B) {
	const headers = 16
	benchGuestCPU(b, "recurse", headers, 1<<(headers+1)-1, "ns/call")
}

// benchGuestCPU runs requests with the given number of headers through the
// CPU fixture testdata/cpu/<name>.wasm and reports the time per unit of
// guest work, perRequest units being done per request.
func benchGuestCPU(b *testing.B, name string, headers int, perRequest float64, unit string) {
	h := newTestHost(b)
	p := h.mustLoad(b, proxy.PluginConfig{Name: name, Path: "testdata/cpu/" + name + ".wasm", Instances: 1,
		CallTimeout: proxy.Duration(time.Second)})
	defer p.Close()
	ex := spinExchange(headers)
	b.ReportAllocs()
	for b.Loop() {
		benchRequest(b, p, ex)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/perRequest, unit)
}
