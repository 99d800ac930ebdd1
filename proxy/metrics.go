package proxy

import (
	"github.com/VictoriaMetrics/metrics"
	"github.com/sluice-proxy/sluice/internal/exposition"
	"github.com/sluice-proxy/sluice/internal/version"
)

// The HELP texts of the families package proxy creates (router.go,
// server.go, usage.go, disconnect.go, respond.go, send.go). A family
// added without a text here fails TestScrapeHelpComplete.
func init() {
	exposition.Describe(map[string]string{
		"sluice_requests_total":                           "Requests on the proxy path (not /health, /ready, /metrics), counted when they take a slot or are turned away: completed + failed + rejected (429) + refused while being read.",
		"sluice_requests_completed_total":                 "Admitted requests that completed (the answer was sent whole, whatever its status).",
		"sluice_requests_failed_total":                    "Admitted requests that failed (upstream error, timeout, cut stream, client gone).",
		"sluice_requests_rejected_total":                  "Requests turned away by reason: overloaded (429, every slot taken), bad_request or body_buffer_full (refused while being read, before taking a slot), plugin (answered by a plugin, also counted as completed or failed).",
		"sluice_responses_total":                          "Answers to the proxy path by HTTP status code, Sluice's own (429, 408, 413...) included; 499 is a client that left first.",
		"sluice_active_requests":                          "Requests holding an admission slot now.",
		"sluice_max_concurrent_requests":                  "Admission slots (max_concurrent_requests).",
		"sluice_utilization":                              "Share of admission slots in use, 0 to 1.",
		"sluice_success_rate":                             "Share of finished requests that completed, since start: completed / (completed + failed + rejected overloaded + refused).",
		"sluice_request_duration_seconds":                 "Histogram of the time from a request's first byte to the end of its answer, in seconds (streams included).",
		"sluice_time_to_first_token_seconds":              "Histogram of the time from a request's first byte to the first content token of its answer, in seconds, by model.",
		"sluice_stream_event_interval_seconds":            "Histogram of the gap between two streamed events of an answer (inter-token latency), in seconds, by model.",
		"sluice_tokens_total":                             "LLM tokens by model and kind (prompt, completion), from the usage the upstream reported.",
		"sluice_responses_without_usage_total":            "Successful LLM answers that reported no token usage, by model.",
		"sluice_upstream_requests_total":                  "Requests sent to an upstream pool by the status code it answered; code 0 is no answer (connection error or timeout).",
		"sluice_client_disconnects_total":                 "Clients that closed their connection before their answer ended, by phase (admitted, queued, paused by a plugin, waiting for the head, streaming).",
		"sluice_streams_truncated_total":                  "Answers cut after their head was sent, by reason (upstream, plugin).",
		"sluice_build_info":                               "The running build: version, commit and Go version as labels; always 1.",
		"sluice_tls_certificate_expiry_timestamp_seconds": "NotAfter of each certificate served to clients (tls), as Unix seconds, by cert_file; re-read on reload.",
	})
}

// refusalOf is the refusal reason (sluice_requests_rejected_total) of a
// request answered kind before it took a slot.
func refusalOf(kind errorKind) int {
	if kind == errBodyBufferFull {
		return refusedBodyBuffer
	}
	return refusedBadRequest
}

// newResponseCodes creates sluice_responses_total{code}: every answer on
// the proxy path by status code (Envoy's downstream_rq_<code>).
func newResponseCodes(set *metrics.Set) *codeCounters {
	return &codeCounters{set: set, prefix: "sluice_responses_total{"}
}

// registerBuildInfo creates sluice_build_info{version,commit,goversion} 1,
// the usual info-metric shape (Prometheus's own prometheus_build_info).
func registerBuildInfo(set *metrics.Set) {
	in := version.Get()
	set.GetOrCreateGauge(`sluice_build_info{version="`+escapeLabel(in.Version)+`",commit="`+escapeLabel(in.Commit)+
		`",goversion="`+escapeLabel(in.GoVersion)+`"}`, func() float64 { return 1 })
}
