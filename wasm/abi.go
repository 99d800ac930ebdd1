package wasm

// Proxy-Wasm ABI v0.2.1 constants. Values follow the specification
// (github.com/proxy-wasm/spec, abi-versions/v0.2.1).

// status is proxy_status_t, the i32 every host function returns.
type status uint32

const (
	statusOK                  status = 0
	statusNotFound            status = 1
	statusBadArgument         status = 2
	statusSerializationFailed status = 3
	statusParseFailure        status = 4
	statusInvalidMemoryAccess status = 6
	statusEmpty               status = 7
	statusCASMismatch         status = 8
	statusInternalFailure     status = 10
	statusUnimplemented       status = 12
)

// mapType is proxy_map_type_t.
type mapType uint32

const (
	mapRequestHeaders          mapType = 0
	mapRequestTrailers         mapType = 1
	mapResponseHeaders         mapType = 2
	mapResponseTrailers        mapType = 3
	mapGRPCInitialMetadata     mapType = 4
	mapGRPCTrailingMetadata    mapType = 5
	mapHTTPCallResponseHeaders mapType = 6
	mapHTTPCallResponseTrailer mapType = 7
)

// bufferType is proxy_buffer_type_t.
type bufferType uint32

const (
	bufferRequestBody      bufferType = 0
	bufferResponseBody     bufferType = 1
	bufferDownstreamData   bufferType = 2
	bufferUpstreamData     bufferType = 3
	bufferHTTPCallResponse bufferType = 4
	bufferGRPCMessage      bufferType = 5
	bufferVMConfig         bufferType = 6
	bufferPluginConfig     bufferType = 7
	bufferForeignArgs      bufferType = 8
	// bufferRedisCallResponse is the Higress extension's buffer 9: the
	// RESP reply in proxy_on_redis_call_response.
	bufferRedisCallResponse bufferType = 9
)

// streamType is proxy_stream_type_t.
const (
	streamHTTPRequest  = 0
	streamHTTPResponse = 1
	streamDownstream   = 2
	streamUpstream     = 3
)

// Log levels (proxy_log_level_t).
const (
	logTrace    = 0
	logDebug    = 1
	logInfo     = 2
	logWarn     = 3
	logError    = 4
	logCritical = 5
)

// Actions a guest callback returns (proxy_action_t). Envoy's SDKs may also
// return 2–4 (ContinueAndEndStream/StopIterationAndBuffer/…); they are
// treated as pause. Anything else is a misbehaving guest.
const (
	actionContinue = 0
	actionPause    = 1
	actionMaxPause = 4
)

// Exports the host looks for.
const (
	exportABI020 = "proxy_abi_version_0_2_0"
	exportABI021 = "proxy_abi_version_0_2_1"
	// exportABI02100 marks a module built with Higress's SDK (v0.2.1 plus
	// its extensions: abi_redis.go, abi_hosts.go).
	exportABI02100      = "proxy_abi_version_0_2_100"
	exportABI010        = "proxy_abi_version_0_1_0"
	exportMemoryAlloc   = "proxy_on_memory_allocate"
	exportMalloc        = "malloc"
	exportInitialize    = "_initialize"
	exportStart         = "_start"
	exportMain          = "main"
	exportContextCreate = "proxy_on_context_create"
)

// callback identifies a guest export the host calls.
type callback uint8

const (
	cbContextCreate callback = iota
	cbVMStart
	cbConfigure
	cbRequestHeaders
	cbRequestBody
	cbResponseHeaders
	cbResponseBody
	cbLog
	cbDone
	cbDelete
	cbTick
	cbHttpCallResponse
	cbQueueReady
	cbRedisCallResponse
	numCallbacks
)

// callbackSpec is the export name and signature of a callback: params i32
// count and whether it returns an i32.
var callbackSpecs = [numCallbacks]struct {
	name    string
	params  int
	returns bool
}{
	cbContextCreate:    {exportContextCreate, 2, false},
	cbVMStart:          {"proxy_on_vm_start", 2, true},
	cbConfigure:        {"proxy_on_configure", 2, true},
	cbRequestHeaders:   {"proxy_on_request_headers", 3, true},
	cbRequestBody:      {"proxy_on_request_body", 3, true},
	cbResponseHeaders:  {"proxy_on_response_headers", 3, true},
	cbResponseBody:     {"proxy_on_response_body", 3, true},
	cbLog:              {"proxy_on_log", 1, false},
	cbDone:             {"proxy_on_done", 1, true},
	cbDelete:           {"proxy_on_delete", 1, false},
	cbTick:             {"proxy_on_tick", 1, false},
	cbHttpCallResponse: {"proxy_on_http_call_response", 5, false},
	cbQueueReady:       {"proxy_on_queue_ready", 2, false},
	// Higress extension: (plugin_context_id, callout_id, status, size).
	cbRedisCallResponse: {"proxy_on_redis_call_response", 4, false},
}

func (c callback) String() string { return callbackSpecs[c].name }
