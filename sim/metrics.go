package sim

import (
	"net/http"
	"strconv"
)

// ttftBuckets are vLLM V1's bucket bounds for
// vllm:time_to_first_token_seconds (vllm/v1/metrics/loggers.py).
var ttftBuckets = []float64{0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5,
	0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0, 40.0, 80.0, 160.0, 640.0, 2560.0}

// histogram is a Prometheus histogram with fixed buckets; the engine's
// mutex guards it.
type histogram struct {
	bounds []float64
	counts []uint64 // per bucket, not cumulative; last is +Inf
	sum    float64
	count  uint64
}

func newHistogram(bounds []float64) histogram {
	return histogram{bounds: bounds, counts: make([]uint64, len(bounds)+1)}
}

func (h *histogram) observe(v float64) {
	i := 0
	for i < len(h.bounds) && v > h.bounds[i] {
		i++
	}
	h.counts[i]++
	h.sum += v
	h.count++
}

// serveMetrics writes the engine's metrics in the Prometheus text format
// under vLLM's names, each with the model_name label as vLLM sets it.
// Sluice's scraper reads vllm:num_requests_waiting,
// vllm:num_requests_running and vllm:kv_cache_usage_perc from it (see
// proxy/upstream/engine_metrics.go), so a pool of simulated engines looks like vLLM.
func (e *Engine) serveMetrics(w http.ResponseWriter) {
	e.mu.Lock()
	st := Stats{
		Running: len(e.running), Waiting: len(e.waiting),
		KVUsage:       float64(e.kv.used()) / float64(len(e.kv.blocks)),
		PrefixQueries: e.prefixQueries, PrefixHits: e.prefixHits,
		PromptTokens: e.promptTokens, GenerationTokens: e.generationTokens,
		Preemptions: e.preemptions, RequestsFinished: e.finished,
	}
	stop := e.finishedStop
	h := histogram{bounds: e.ttft.bounds, counts: append([]uint64(nil), e.ttft.counts...), sum: e.ttft.sum, count: e.ttft.count}
	e.mu.Unlock()

	lbl := `{model_name=` + e.modelJSON + `}`
	b := make([]byte, 0, 4096)
	metric := func(name, typ, help string, v string) {
		b = append(b, "# HELP "+name+" "+help+"\n# TYPE "+name+" "+typ+"\n"...)
		if typ == "counter" {
			name += "_total"
		}
		b = append(b, name+lbl+" "+v+"\n"...)
	}
	i64 := func(v int64) string { return strconv.FormatInt(v, 10) }
	metric("vllm:num_requests_running", "gauge", "Number of requests in model execution batches.", itoa(st.Running))
	metric("vllm:num_requests_waiting", "gauge", "Number of requests waiting to be processed.", itoa(st.Waiting))
	metric("vllm:kv_cache_usage_perc", "gauge", "KV-cache usage. 1 means 100 percent usage.",
		strconv.FormatFloat(st.KVUsage, 'g', -1, 64))
	metric("vllm:prefix_cache_queries", "counter", "Prefix cache queries, in terms of number of queried tokens.", i64(st.PrefixQueries))
	metric("vllm:prefix_cache_hits", "counter", "Prefix cache hits, in terms of number of cached tokens.", i64(st.PrefixHits))
	metric("vllm:prompt_tokens", "counter", "Number of prefill tokens processed.", i64(st.PromptTokens))
	metric("vllm:generation_tokens", "counter", "Number of generation tokens processed.", i64(st.GenerationTokens))
	metric("vllm:num_preemptions", "counter", "Cumulative number of preemption from the engine.", i64(st.Preemptions))

	b = append(b, "# HELP vllm:request_success_total Count of successfully processed requests.\n"+
		"# TYPE vllm:request_success_total counter\n"...)
	b = append(b, `vllm:request_success_total{finished_reason="length",model_name=`+e.modelJSON+`} `+i64(st.RequestsFinished-stop)+"\n"...)
	b = append(b, `vllm:request_success_total{finished_reason="stop",model_name=`+e.modelJSON+`} `+i64(stop)+"\n"...)

	const ttft = "vllm:time_to_first_token_seconds"
	b = append(b, "# HELP "+ttft+" Histogram of time to first token in seconds (simulated).\n# TYPE "+ttft+" histogram\n"...)
	var cum uint64
	for i, ub := range h.bounds {
		cum += h.counts[i]
		b = append(b, ttft+`_bucket{le="`+strconv.FormatFloat(ub, 'g', -1, 64)+`",model_name=`+e.modelJSON+`} `+
			strconv.FormatUint(cum, 10)+"\n"...)
	}
	b = append(b, ttft+`_bucket{le="+Inf",model_name=`+e.modelJSON+`} `+strconv.FormatUint(h.count, 10)+"\n"...)
	b = append(b, ttft+"_sum"+lbl+" "+strconv.FormatFloat(h.sum, 'g', -1, 64)+"\n"...)
	b = append(b, ttft+"_count"+lbl+" "+strconv.FormatUint(h.count, 10)+"\n"...)

	w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
	_, _ = w.Write(b)
}

func itoa(n int) string { return strconv.Itoa(n) }
