package proxytest

import (
	"math"
	"net/http"
	"strings"
	"testing"
)

func TestEngineMetrics(t *testing.T) {
	s := newTestServer(t, Options{Model: `org/m"1`})
	c := newClient(t)
	scrape := func() string {
		t.Helper()
		resp, b := do(t, c, http.MethodGet, s.URL+"/metrics", "")
		if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain; version=0.0.4") {
			t.Fatalf("status %d Content-Type %q", resp.StatusCode, resp.Header.Get("Content-Type"))
		}
		return string(b)
	}
	f := func(m EngineMetrics, want string) {
		t.Helper()
		if err := s.SetEngineMetrics(m); err != nil {
			t.Fatal(err)
		}
		if got := scrape(); got != want {
			t.Errorf("%s metrics:\n%s\nwant:\n%s", m.Engine, got, want)
		}
	}
	f(EngineMetrics{Engine: EngineVLLM, Waiting: 3, Running: 7, KVCacheUsage: 0.25}, `# HELP vllm:num_requests_running Number of requests in model execution batches.
# TYPE vllm:num_requests_running gauge
vllm:num_requests_running{model_name="org/m\"1"} 7.0
# HELP vllm:num_requests_waiting Number of requests waiting to be processed.
# TYPE vllm:num_requests_waiting gauge
vllm:num_requests_waiting{model_name="org/m\"1"} 3.0
# HELP vllm:kv_cache_usage_perc KV-cache usage. 1 means 100 percent usage.
# TYPE vllm:kv_cache_usage_perc gauge
vllm:kv_cache_usage_perc{model_name="org/m\"1"} 0.25
`)
	f(EngineMetrics{Engine: "sglang", Model: "s", Waiting: 1e6, Running: 0, KVCacheUsage: 1}, `# HELP sglang:num_running_reqs The number of running requests.
# TYPE sglang:num_running_reqs gauge
sglang:num_running_reqs{model_name="s"} 0.0
# HELP sglang:num_queue_reqs The number of requests in the waiting queue.
# TYPE sglang:num_queue_reqs gauge
sglang:num_queue_reqs{model_name="s"} 1000000.0
# HELP sglang:token_usage The token usage.
# TYPE sglang:token_usage gauge
sglang:token_usage{model_name="s"} 1.0
`)
	f(EngineMetrics{Engine: EngineTGI, Waiting: 12, Running: 2.5, KVCacheUsage: 0.9}, `# HELP tgi_queue_size Current queue size
# TYPE tgi_queue_size gauge
tgi_queue_size 12
# HELP tgi_batch_current_size Current batch size
# TYPE tgi_batch_current_size gauge
tgi_batch_current_size 2.5
`)
	if m := s.Metrics(); m == nil || m.Engine != EngineTGI || m.Waiting != 12 {
		t.Errorf("Metrics() = %+v", m)
	}
	// Engine mode off: the server's own counters.
	do(t, c, http.MethodGet, s.URL+"/x", "")
	f(EngineMetrics{}, `# HELP proxytest_requests_total Requests received, excluding /health and /metrics.
# TYPE proxytest_requests_total counter
proxytest_requests_total 1.0
# HELP proxytest_cancelled_total Requests whose client went away before the response ended.
# TYPE proxytest_cancelled_total counter
proxytest_cancelled_total 0.0
# HELP proxytest_in_flight Requests being answered, excluding /health and /metrics.
# TYPE proxytest_in_flight gauge
proxytest_in_flight 0.0
`)
	if m := s.Metrics(); m != nil {
		t.Errorf("Metrics() after EngineMetrics{} = %+v, want nil", m)
	}
	if s.Scrapes() != 4 || s.Requests() != 1 {
		t.Errorf("Scrapes %d Requests %d, want 4 1", s.Scrapes(), s.Requests())
	}
}

func TestEngineMetricsValidate(t *testing.T) {
	s := newTestServer(t, Options{})
	if err := s.SetEngineMetrics(EngineMetrics{Engine: EngineVLLM, Running: 1}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		m    EngineMetrics
		want string
	}{
		{EngineMetrics{Engine: "trtllm"}, "Engine"},
		{EngineMetrics{Engine: EngineVLLM, Waiting: -1}, "Waiting"},
		{EngineMetrics{Engine: EngineVLLM, Running: math.NaN()}, "Running"},
		{EngineMetrics{Engine: EngineVLLM, Running: math.Inf(1)}, "Running"},
		{EngineMetrics{Engine: EngineSGLang, KVCacheUsage: 1.5}, "KVCacheUsage"},
	} {
		err := s.SetEngineMetrics(tc.m)
		if err == nil || !strings.Contains(err.Error(), "EngineMetrics."+tc.want) {
			t.Errorf("%+v: error %v, want one naming %s", tc.m, err, tc.want)
		}
	}
	if m := s.Metrics(); m == nil || m.Running != 1 {
		t.Errorf("an invalid SetEngineMetrics changed the metrics: %+v", m)
	}
}

func TestPythonFloat(t *testing.T) {
	for v, want := range map[float64]string{
		0: "0.0", 3: "3.0", 0.25: "0.25", 1e6: "1000000.0", 1e-7: "1e-07", 1e16: "1e+16", 0.0001: "0.0001",
	} {
		if got := pythonFloat(v); got != want {
			t.Errorf("pythonFloat(%v) = %q, want %q", v, got, want)
		}
	}
}
