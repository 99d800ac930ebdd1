package exposition

// LatencyBuckets are the upper bounds, in seconds, of the Prometheus
// histograms of whole-request latencies (sluice_request_duration_seconds,
// sluice_time_to_first_token_seconds, sluice_upstream_queue_wait_seconds):
// from 5 ms (a cached or refused answer) to 10 minutes (a long
// generation), about two buckets per doubling below 10 s and coarser above,
// so histogram_quantile stays within ~30 % where LLM latencies live. vLLM's
// e2e request latency histogram spans 0.3 s to 7,680 s for the same
// reason; Sluice also sees the fast local answers.
var LatencyBuckets = []float64{
	0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 0.75, 1, 1.5, 2, 3, 5, 7.5,
	10, 15, 20, 30, 45, 60, 120, 300, 600,
}

// IntervalBuckets are the upper bounds, in seconds, of
// sluice_stream_event_interval_seconds, the gap between two streamed
// events (inter-token latency): 1 ms to 1 minute, fine between 10 and
// 200 ms where decode steps of a batched engine fall (vLLM's
// time_per_output_token buckets start at 10 ms).
var IntervalBuckets = []float64{
	0.001, 0.0025, 0.005, 0.01, 0.015, 0.02, 0.025, 0.03, 0.04, 0.05, 0.075,
	0.1, 0.15, 0.2, 0.3, 0.5, 0.75, 1, 2.5, 5, 10, 30, 60,
}

// ValueBuckets are the upper bounds of histograms of plugin-defined
// values, whose unit Sluice does not know (proxy_record_metric takes a
// uint64): Envoy's default histogram buckets
// (envoy/config/metrics/v3/stats.proto, histogram_bucket_settings), so a
// plugin ported from Envoy keeps its resolution.
var ValueBuckets = []float64{
	0.5, 1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000,
	60000, 300000, 600000, 1800000, 3600000,
}
