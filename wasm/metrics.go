package wasm

import (
	"strconv"

	"github.com/VictoriaMetrics/metrics"

	"github.com/sluice-proxy/sluice/internal/exposition"
)

// The HELP texts of the host's families (this file, shared.go) and of
// plugin-defined ones (usermetrics.go).
func init() {
	exposition.Describe(map[string]string{
		"sluice_plugin_errors_total":            "Plugin callback failures by kind (trap, timeout, memory, exit, bad_action, unavailable).",
		"sluice_plugin_call_duration_seconds":   "Histogram of the time one plugin callback ran, in seconds.",
		"sluice_plugin_local_responses_total":   "Answers a plugin sent itself (proxy_send_local_response).",
		"sluice_plugin_instance_restarts_total": "Plugin instances replaced after a failure.",
		"sluice_plugin_http_calls_total":        "HTTP callouts a plugin made, by result (ok, timeout, cancelled, error).",
		"sluice_plugin_redis_calls_total":       "Redis calls a plugin made (proxy_redis_call), by result.",
		"sluice_plugin_log_lines_dropped_total": "Plugin log lines dropped by the log rate limit.",
		"sluice_plugin_stranded_requests_total": "Requests whose plugin instance was discarded or closed while they were in flight, by reason.",
		"sluice_shared_data_keys":               "Keys in a VM's shared data store now, by vm_id.",
		"sluice_shared_data_expired_total":      "Shared data keys removed because their TTL passed, by vm_id.",
		"sluice_shared_data_evicted_total":      "Shared data keys evicted to make room, by vm_id.",
		"sluice_shared_data_refused_total":      "Shared data writes refused because the store was full, by vm_id.",
	})
	exposition.DescribePrefix(UserMetricPrefix, "Metric defined by the plugin named in the plugin label (proxy_define_metric); see that plugin's documentation.")
}

// Error kinds: the "kind" label of sluice_plugin_errors_total and
// CallError.Kind.
const (
	// KindTrap: the guest trapped (unreachable, out-of-bounds access, a Go
	// panic, a failing allocator called from a host function).
	KindTrap = "trap"
	// KindTimeout: a callback ran past PluginConfig.CallTimeout (or a
	// start-up call past HostConfig.StartTimeout).
	KindTimeout = "timeout"
	// KindMemory: the guest failed after its memory hit
	// PluginConfig.MemoryLimit.
	KindMemory = "memory"
	// KindExit: the guest called proc_exit.
	KindExit = "exit"
	// KindBadAction: a callback returned an action outside 0–4.
	KindBadAction = "bad_action"
	// KindUnavailable: the request's instance had been discarded (a
	// stranded request: counted in sluice_plugin_stranded_requests_total,
	// not in errors_total), or no instance was alive to take a new request
	// within HostConfig.StartTimeout.
	KindUnavailable = "unavailable"
)

var errorKinds = [...]string{KindTrap, KindTimeout, KindMemory, KindExit, KindBadAction, KindUnavailable}

// ReasonClosed is the reason label of sluice_plugin_stranded_requests_total
// for requests whose plugin was closed while they were in flight; the
// other reasons are the kinds that discard an instance (trap, timeout,
// memory, exit).
const ReasonClosed = "closed"

// strandReasons are the reason labels of
// sluice_plugin_stranded_requests_total.
var strandReasons = [...]string{KindTrap, KindTimeout, KindMemory, KindExit, ReasonClosed}

// durationBuckets are the upper bounds (seconds) of
// sluice_plugin_call_duration_seconds: callbacks take microseconds.
var durationBuckets = []float64{5e-6, 1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 5e-3, 1e-2, 2.5e-2, 0.1}

// pluginMetrics are one plugin's metrics, created when it loads; the hot
// path only updates them.
type pluginMetrics struct {
	errors         [len(errorKinds)]*metrics.Counter
	duration       *metrics.PrometheusHistogram
	localResponses *metrics.Counter
	restarts       *metrics.Counter
	callouts       [len(calloutResults)]*metrics.Counter
	logDropped     *metrics.Counter
	stranded       [len(strandReasons)]*metrics.Counter
}

// newPluginMetrics creates (or finds, when a plugin of the same name is
// reloaded) the plugin's metrics in set:
//
//	sluice_plugin_errors_total{plugin,kind}
//	sluice_plugin_call_duration_seconds{plugin} (histogram)
//	sluice_plugin_local_responses_total{plugin}
//	sluice_plugin_instance_restarts_total{plugin}
//	sluice_plugin_http_calls_total{plugin,result} (ok, timeout, cancelled, error)
//	sluice_plugin_log_lines_dropped_total{plugin}
//	sluice_plugin_stranded_requests_total{plugin,reason} (trap, timeout, memory, exit, closed)
func newPluginMetrics(set *metrics.Set, plugin string) pluginMetrics {
	l := `plugin="` + escapeLabel(plugin) + `"`
	var m pluginMetrics
	for i, k := range errorKinds {
		m.errors[i] = set.GetOrCreateCounter(`sluice_plugin_errors_total{` + l + `,kind="` + k + `"}`)
	}
	m.duration = set.GetOrCreatePrometheusHistogramExt(`sluice_plugin_call_duration_seconds{`+l+`}`, durationBuckets)
	m.localResponses = set.GetOrCreateCounter(`sluice_plugin_local_responses_total{` + l + `}`)
	m.restarts = set.GetOrCreateCounter(`sluice_plugin_instance_restarts_total{` + l + `}`)
	for i, r := range calloutResults {
		m.callouts[i] = set.GetOrCreateCounter(`sluice_plugin_http_calls_total{` + l + `,result="` + r + `"}`)
	}
	m.logDropped = set.GetOrCreateCounter(`sluice_plugin_log_lines_dropped_total{` + l + `}`)
	for i, r := range strandReasons {
		m.stranded[i] = set.GetOrCreateCounter(`sluice_plugin_stranded_requests_total{` + l + `,reason="` + r + `"}`)
	}
	return m
}

// errorsOf returns the error counter of kind.
func (m *pluginMetrics) errorsOf(kind string) *metrics.Counter {
	for i, k := range errorKinds {
		if k == kind {
			return m.errors[i]
		}
	}
	return m.errors[0]
}

// strandedOf returns the stranded-request counter of reason.
func (m *pluginMetrics) strandedOf(reason string) *metrics.Counter {
	for i, r := range strandReasons {
		if r == reason {
			return m.stranded[i]
		}
	}
	return m.stranded[0]
}

// calloutsOf returns the HTTP call counter of result.
func (m *pluginMetrics) calloutsOf(result string) *metrics.Counter {
	for i, r := range calloutResults {
		if r == result {
			return m.callouts[i]
		}
	}
	return m.callouts[len(m.callouts)-1]
}

// escapeLabel escapes a Prometheus label value.
func escapeLabel(s string) string {
	q := strconv.Quote(s)
	return q[1 : len(q)-1]
}
