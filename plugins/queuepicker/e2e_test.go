//go:build !wasip1

package main

import (
	"strings"
	"testing"
	"time"

	"github.com/sluice-proxy/sluice/internal/pluginenv"
	"github.com/sluice-proxy/sluice/plugins/internal/upstreams"
	"github.com/sluice-proxy/sluice/proxy"
	"github.com/sluice-proxy/sluice/proxy/proxytest"
)

const pluginPkg = "plugins/queuepicker"

const chat = `{"model":"m","messages":[{"role":"user","content":"hi"}]}`

// TestEndToEndPick runs three vLLM-like endpoints whose scraped queues
// differ: the plugin sends every request to the least loaded one, and
// follows the load when it changes. (The pool's own policy, round robin,
// would spread them.) It reads the loads with sluice.endpoint_loads and,
// on a host without that function, from the sluice.upstreams JSON.
func TestEndToEndPick(t *testing.T) {
	for _, c := range []struct {
		name   string
		hidden []string
	}{{"binary loads", nil}, {"json", []string{upstreams.LoadsFunc}}} {
		t.Run(c.name, func(t *testing.T) {
			var urls []string
			var ups []*proxytest.Server
			for i, name := range []string{"e1", "e2", "e3"} {
				up := proxytest.NewServer(proxytest.Options{Name: name})
				t.Cleanup(up.Close)
				if err := up.SetEngineMetrics(proxytest.EngineMetrics{Engine: proxytest.EngineVLLM, Waiting: float64([]int{5, 0, 9}[i])}); err != nil {
					t.Fatal(err)
				}
				ups = append(ups, up)
				urls = append(urls, up.URL)
			}
			cfg := proxy.NewConfig().WithUpstream("vllm", urls...)
			cfg.Upstreams[0].MetricsPath = "/metrics"
			cfg.Upstreams[0].ScrapeInterval = proxy.Duration(20 * time.Millisecond)
			e := pluginenv.StartHiding(t, c.hidden, cfg, pluginenv.PluginConfig(t, pluginPkg, `{"max_endpoints": 2}`))

			resp, body := e.Do(t, "POST", "/v1/chat/completions", chat)
			if resp.StatusCode != 200 {
				t.Fatalf("%d %s\nlogs: %s", resp.StatusCode, body, e.Logs)
			}
			expectRun(t, e, "e2", 10)
			// e2's queue grows past e1's: the picker follows the scraped load.
			if err := ups[1].SetEngineMetrics(proxytest.EngineMetrics{Engine: proxytest.EngineVLLM, Waiting: 20}); err != nil {
				t.Fatal(err)
			}
			expectRun(t, e, "e1", 10)
			// The KV-cache usage counts too (weight 10): e1's queue
			// empties but its cache fills, so e3 (3 + 10·0) beats e1
			// (0 + 10·0.9), which the queues alone would pick.
			if err := ups[0].SetEngineMetrics(proxytest.EngineMetrics{Engine: proxytest.EngineVLLM, Waiting: 0, KVCacheUsage: 0.9}); err != nil {
				t.Fatal(err)
			}
			if err := ups[2].SetEngineMetrics(proxytest.EngineMetrics{Engine: proxytest.EngineVLLM, Waiting: 3}); err != nil {
				t.Fatal(err)
			}
			expectRun(t, e, "e3", 10)
			if m := e.Metric(`sluice_wasm_queuepicker_picked_total{plugin="queuepicker"} `); m == "" || strings.HasSuffix(m, " 0") {
				t.Errorf("picks were not counted: %q", m)
			}
			// Logged once by each instance that met the missing function.
			fallback := "queuepicker: the host has no " + upstreams.LoadsFunc
			if n := strings.Count(e.Logs.String(), fallback); (c.hidden == nil) != (n == 0) {
				t.Errorf("%q logged %d times\nlogs: %s", fallback, n, e.Logs)
			}
		})
	}
}

// expectRun sends requests until n in a row went to endpoint name (the
// first scrapes may not have landed yet).
func expectRun(t *testing.T, e *pluginenv.Env, name string, n int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for run := 0; run < n; {
		resp, body := e.Do(t, "POST", "/v1/chat/completions", chat)
		if resp.StatusCode == 200 && resp.Header.Get("x-upstream-name") == name {
			run++
			continue
		}
		run = 0
		if time.Now().After(deadline) {
			t.Fatalf("requests reach %q (%d %s), want %d in a row to %q\nlogs: %s",
				resp.Header.Get("x-upstream-name"), resp.StatusCode, body, n, name, e.Logs)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestEndToEndBadConfig(t *testing.T) {
	pluginenv.LoadFails(t, pluginPkg, `{"max_endpoints": 17}`,
		"queuepicker: max_endpoints: 17 is not in 1..16")
}
