package upstream

import (
	"math"
	"strings"
	"testing"

	"github.com/sluice-proxy/sluice/proxy/internal/testhttp"
	"github.com/sluice-proxy/sluice/proxy/proxytest"
)

// scrapeText fetches what a proxytest upstream serves on /metrics for m.
func scrapeText(t *testing.T, up *proxytest.Server, m proxytest.EngineMetrics) string {
	t.Helper()
	if err := up.SetEngineMetrics(m); err != nil {
		t.Fatal(err)
	}
	_, b := testhttp.Get(t, up.URL+"/metrics")
	return string(b)
}

func TestParseEngineMetricsEngines(t *testing.T) {
	up := startUpstream(t, proxytest.Options{Model: `we"ird}model`})
	for _, tc := range []struct {
		engine proxytest.Engine
		hasKV  bool
	}{{proxytest.EngineVLLM, true}, {proxytest.EngineSGLang, true}, {proxytest.EngineTGI, false}} {
		text := scrapeText(t, up, proxytest.EngineMetrics{Engine: tc.engine, Waiting: 7, Running: 3, KVCacheUsage: 0.25})
		l, err := parseEngineMetrics([]byte(text))
		if err != nil {
			t.Fatalf("%s: %v\n%s", tc.engine, err, text)
		}
		if l.Waiting != 7 || l.Running != 3 || !l.HasWaiting || !l.HasRunning {
			t.Fatalf("%s: %+v\n%s", tc.engine, l, text)
		}
		if tc.hasKV && (l.KVCacheUsage != 0.25 || !l.HasKVCache) || !tc.hasKV && l.HasKVCache {
			t.Fatalf("%s: KV %+v", tc.engine, l)
		}
	}
}

func TestParseEngineMetrics(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want engineLoad
	}{
		{"sums label sets", `
vllm:num_requests_waiting{model_name="a"} 2.0
vllm:num_requests_waiting{model_name="b"} 3.0 1700000000000
vllm:num_requests_running{model_name="a",engine="0"} 1
vllm:num_requests_running{model_name="a",engine="1"} 4
`, engineLoad{Waiting: 5, Running: 5, HasWaiting: true, HasRunning: true}},
		{"kv is the max, older name too", `
vllm:gpu_cache_usage_perc{model_name="a"} 0.5
vllm:kv_cache_usage_perc{model_name="b"} 0.75
`, engineLoad{KVCacheUsage: 0.75, HasKVCache: true}},
		{"labels with braces, quotes and escapes", `sglang:num_queue_reqs{name="a}b\"c\\",x="{"} 9`,
			engineLoad{Waiting: 9, HasWaiting: true}},
		{"ignores NaN, Inf, negatives; clamps usage", `
tgi_queue_size NaN
tgi_queue_size +Inf
tgi_queue_size -1
tgi_batch_current_size 2
sglang:token_usage 1.5
`, engineLoad{Running: 2, KVCacheUsage: 1, HasRunning: true, HasKVCache: true}},
		{"other metrics, comments, exemplars, CRLF", "# HELP x\r\n# TYPE x gauge\r\nx{a=\"}\"} junk junk\r\n" +
			"vllm:num_requests_waiting_by_reason{reason=\"x\"} 100\r\n" +
			"trtllm_num_requests_waiting 4 # {trace_id=\"abc\"} 1.0\r\n\r\n",
			engineLoad{Waiting: 4, HasWaiting: true}},
		{"nothing known", "process_cpu_seconds_total 12\n", engineLoad{}},
		{"empty", "", engineLoad{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseEngineMetrics([]byte(tc.in))
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Fatalf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestParseEngineMetricsRejects(t *testing.T) {
	for _, in := range []string{
		"vllm:num_requests_waiting{model_name=\"a\" 3\n",
		"vllm:num_requests_waiting three\n",
		"vllm:num_requests_waiting\n",
		"ok 1\nvllm:num_requests_running{a=\"b\"}3\n",
	} {
		_, err := parseEngineMetrics([]byte(in))
		if err == nil || !strings.Contains(err.Error(), "vllm:num_requests_") || !strings.Contains(err.Error(), "line") {
			t.Errorf("parseEngineMetrics(%q) = %v, want an error naming the line and metric", in, err)
		}
	}
}

// FuzzParseEngineMetrics checks the parser never panics and that what it
// returns is sane.
func FuzzParseEngineMetrics(f *testing.F) {
	f.Add([]byte("vllm:num_requests_waiting{model_name=\"m\"} 3.0\nvllm:kv_cache_usage_perc 0.5\n"))
	f.Add([]byte("tgi_queue_size 1\ntgi_batch_current_size 2\n"))
	f.Add([]byte("sglang:num_queue_reqs{a=\"\\\"}\"} 1e3 123\n# EOF\n"))
	f.Add([]byte("vllm:num_requests_running{"))
	f.Add([]byte("tgi_queue_size -Inf\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		l, err := parseEngineMetrics(b)
		if err != nil {
			return
		}
		for _, v := range []float64{l.Waiting, l.Running, l.KVCacheUsage} {
			if math.IsNaN(v) || v < 0 {
				t.Fatalf("bad value in %+v", l)
			}
		}
		if l.KVCacheUsage > 1 {
			t.Fatalf("KV usage %v > 1", l.KVCacheUsage)
		}
	})
}
