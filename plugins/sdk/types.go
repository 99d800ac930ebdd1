package sdk

// Action is a plugin's answer to an HTTP callback (proxy_action_t).
type Action uint32

const (
	// ActionContinue lets the host forward the headers or body and go on.
	ActionContinue Action = 0
	// ActionPause stops processing of the stream until the plugin calls
	// ResumeHttpRequest/ResumeHttpResponse, sends a local reply with
	// SendHttpResponse, or the host gives up on the pause.
	ActionPause Action = 1
)

// String returns "continue", "pause" or "action(N)".
func (a Action) String() string {
	switch a {
	case ActionContinue:
		return "continue"
	case ActionPause:
		return "pause"
	}
	return "action(" + utoa(uint64(a)) + ")"
}

// LogLevel is a Proxy-Wasm log level (proxy_log_level_t).
type LogLevel uint32

// Log levels, lowest to highest.
const (
	LogLevelTrace    LogLevel = 0
	LogLevelDebug    LogLevel = 1
	LogLevelInfo     LogLevel = 2
	LogLevelWarn     LogLevel = 3
	LogLevelError    LogLevel = 4
	LogLevelCritical LogLevel = 5
)

var logLevelNames = [...]string{"trace", "debug", "info", "warn", "error", "critical"}

// String returns the level's lower-case name, or "loglevel(N)".
func (l LogLevel) String() string {
	if int(l) < len(logLevelNames) {
		return logLevelNames[l]
	}
	return "loglevel(" + utoa(uint64(l)) + ")"
}

// BufferType names a host buffer (proxy_buffer_type_t).
type BufferType uint32

// Buffer types of ABI v0.2.1.
const (
	BufferHttpRequestBody          BufferType = 0
	BufferHttpResponseBody         BufferType = 1
	BufferDownstreamData           BufferType = 2
	BufferUpstreamData             BufferType = 3
	BufferHttpCallResponseBody     BufferType = 4
	BufferGrpcReceiveBuffer        BufferType = 5
	BufferVMConfiguration          BufferType = 6
	BufferPluginConfiguration      BufferType = 7
	BufferForeignFunctionArguments BufferType = 8
)

// MapType names a host header map (proxy_map_type_t).
type MapType uint32

// Map types of ABI v0.2.1.
const (
	MapHttpRequestHeaders       MapType = 0
	MapHttpRequestTrailers      MapType = 1
	MapHttpResponseHeaders      MapType = 2
	MapHttpResponseTrailers     MapType = 3
	MapGrpcInitialMetadata      MapType = 4
	MapGrpcTrailingMetadata     MapType = 5
	MapHttpCallResponseHeaders  MapType = 6
	MapHttpCallResponseTrailers MapType = 7
)

// StreamType names a stream direction (proxy_stream_type_t).
type StreamType uint32

// Stream types of ABI v0.2.1.
const (
	StreamHttpRequest  StreamType = 0
	StreamHttpResponse StreamType = 1
	StreamDownstream   StreamType = 2
	StreamUpstream     StreamType = 3
)

// MetricType is a host metric kind (proxy_metric_type_t).
type MetricType uint32

// Metric types of ABI v0.2.1.
const (
	MetricCounter   MetricType = 0
	MetricGauge     MetricType = 1
	MetricHistogram MetricType = 2
)

// utoa formats v in decimal without importing strconv into every plugin's
// hot path (it is small and allocation-light).
func utoa(v uint64) string {
	var b [20]byte
	i := len(b)
	for {
		i--
		b[i] = byte('0' + v%10)
		v /= 10
		if v == 0 {
			break
		}
	}
	return string(b[i:])
}
