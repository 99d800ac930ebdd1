package proxytest

import (
	"fmt"
	"math"
	"net/http"
	"strconv"
	"strings"
)

// Engine names an inference engine whose Prometheus metrics a Server
// imitates on GET /metrics.
type Engine string

const (
	// EngineVLLM serves vllm:num_requests_waiting, vllm:num_requests_running
	// and vllm:kv_cache_usage_perc, labelled with model_name.
	EngineVLLM Engine = "vllm"
	// EngineSGLang serves sglang:num_queue_reqs, sglang:num_running_reqs and
	// sglang:token_usage, labelled with model_name.
	EngineSGLang Engine = "sglang"
	// EngineTGI serves tgi_queue_size and tgi_batch_current_size, without
	// labels. TGI has no KV-cache gauge, so KVCacheUsage is not served.
	EngineTGI Engine = "tgi"
)

// EngineMetrics are the load gauges GET /metrics reports in the style of
// Engine. The zero value (Engine "") turns engine mode off: /metrics then
// serves the server's own counters (proxytest_requests_total,
// proxytest_cancelled_total, proxytest_in_flight).
type EngineMetrics struct {
	Engine Engine
	// Model is the model_name label. Default: Options.Model at scrape time.
	Model string
	// Waiting is the number of queued requests.
	Waiting float64
	// Running is the number of requests in the running batch.
	Running float64
	// KVCacheUsage is the KV-cache (SGLang: token pool) usage, 0 to 1.
	KVCacheUsage float64
}

// Validate reports the first field of m that has no meaning, by name.
func (m EngineMetrics) Validate() error {
	switch m.Engine {
	case "", EngineVLLM, EngineSGLang, EngineTGI:
	default:
		return fmt.Errorf("proxytest: EngineMetrics.Engine is %q, want %q, %q or %q (or \"\" for none)",
			m.Engine, EngineVLLM, EngineSGLang, EngineTGI)
	}
	for _, f := range []struct {
		name string
		v    float64
	}{{"Waiting", m.Waiting}, {"Running", m.Running}, {"KVCacheUsage", m.KVCacheUsage}} {
		if math.IsNaN(f.v) || math.IsInf(f.v, 0) || f.v < 0 {
			return fmt.Errorf("proxytest: EngineMetrics.%s is %v, must be a finite number >= 0", f.name, f.v)
		}
	}
	if m.KVCacheUsage > 1 {
		return fmt.Errorf("proxytest: EngineMetrics.KVCacheUsage is %v, must be <= 1", m.KVCacheUsage)
	}
	return nil
}

// SetEngineMetrics makes GET /metrics report m from the next scrape on;
// EngineMetrics{} turns engine mode off. It returns an error naming the
// bad field, and changes nothing, when m is invalid.
func (s *Server) SetEngineMetrics(m EngineMetrics) error {
	if err := m.Validate(); err != nil {
		return err
	}
	if m.Engine == "" {
		s.engine.Store(nil)
		return nil
	}
	s.engine.Store(&m)
	return nil
}

// Metrics returns a copy of the engine metrics being served, or nil when
// engine mode is off.
func (s *Server) Metrics() *EngineMetrics {
	m := s.engine.Load()
	if m == nil {
		return nil
	}
	c := *m
	return &c
}

// serveMetrics answers GET /metrics in the Prometheus text format 0.0.4.
func (s *Server) serveMetrics(w http.ResponseWriter, r *http.Request, opts *Options) {
	if !allowMethod(w, r, http.MethodGet, http.MethodHead) {
		return
	}
	var b strings.Builder
	if m := s.engine.Load(); m != nil {
		model := m.Model
		if model == "" {
			model = opts.Model
		}
		writeEngineMetrics(&b, m, model)
	} else {
		writeGauge(&b, "proxytest_requests_total", "counter", "Requests received, excluding /health and /metrics.", "", pythonFloat(float64(s.requests.Load())))
		writeGauge(&b, "proxytest_cancelled_total", "counter", "Requests whose client went away before the response ended.", "", pythonFloat(float64(s.cancelled.Load())))
		writeGauge(&b, "proxytest_in_flight", "gauge", "Requests being answered, excluding /health and /metrics.", "", pythonFloat(float64(s.inFlight.Load())))
	}
	w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
	w.Header().Set("Content-Length", strconv.Itoa(b.Len()))
	_, _ = w.Write([]byte(b.String()))
}

// writeEngineMetrics writes m as the engine it imitates would: vLLM and
// SGLang (Python prometheus_client) with a model_name label and float
// values such as "3.0"; TGI (Rust metrics exporter) without labels and
// with values such as "3".
func writeEngineMetrics(b *strings.Builder, m *EngineMetrics, model string) {
	labels := `{model_name="` + escapeLabel(model) + `"}`
	switch m.Engine {
	case EngineVLLM:
		writeGauge(b, "vllm:num_requests_running", "gauge", "Number of requests in model execution batches.", labels, pythonFloat(m.Running))
		writeGauge(b, "vllm:num_requests_waiting", "gauge", "Number of requests waiting to be processed.", labels, pythonFloat(m.Waiting))
		writeGauge(b, "vllm:kv_cache_usage_perc", "gauge", "KV-cache usage. 1 means 100 percent usage.", labels, pythonFloat(m.KVCacheUsage))
	case EngineSGLang:
		writeGauge(b, "sglang:num_running_reqs", "gauge", "The number of running requests.", labels, pythonFloat(m.Running))
		writeGauge(b, "sglang:num_queue_reqs", "gauge", "The number of requests in the waiting queue.", labels, pythonFloat(m.Waiting))
		writeGauge(b, "sglang:token_usage", "gauge", "The token usage.", labels, pythonFloat(m.KVCacheUsage))
	case EngineTGI:
		writeGauge(b, "tgi_queue_size", "gauge", "Current queue size", "", rustFloat(m.Waiting))
		writeGauge(b, "tgi_batch_current_size", "gauge", "Current batch size", "", rustFloat(m.Running))
	}
}

func writeGauge(b *strings.Builder, name, typ, help, labels, value string) {
	b.WriteString("# HELP " + name + " " + help + "\n")
	b.WriteString("# TYPE " + name + " " + typ + "\n")
	b.WriteString(name + labels + " " + value + "\n")
}

// pythonFloat formats v as Python's repr does for the values served here
// (finite, >= 0): "3.0", "0.25", "1e-07", "1e+16".
func pythonFloat(v float64) string {
	if v != 0 && (v < 1e-4 || v >= 1e16) {
		return strconv.FormatFloat(v, 'g', -1, 64)
	}
	s := strconv.FormatFloat(v, 'f', -1, 64)
	if !strings.Contains(s, ".") {
		s += ".0"
	}
	return s
}

// rustFloat formats v as Rust's Display for f64 does: "3", "0.25".
func rustFloat(v float64) string { return strconv.FormatFloat(v, 'f', -1, 64) }

// escapeLabel escapes a label value for the Prometheus text format.
func escapeLabel(s string) string {
	return strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`).Replace(s)
}
