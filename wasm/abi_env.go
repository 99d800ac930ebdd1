package wasm

import (
	"context"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
)

// hostFunc is one function of the "env" host module. Every one returns an
// i32 proxy_status_t; params are i32 except where the spec says i64.
type hostFunc struct {
	name   string
	params string // one letter per param: 'i' i32, 'I' i64
	fn     api.GoModuleFunc
}

// envFuncs lists every host function of Proxy-Wasm ABI v0.2.1, plus the
// older names some SDKs still import, with their exact signatures. Those
// not implemented (the gRPC calls) return UNIMPLEMENTED, so any guest
// links.
var envFuncs = []hostFunc{
	// Logging, clocks, timers.
	{"proxy_log", "iii", hostLog},
	{"proxy_get_log_level", "i", hostGetLogLevel},
	{"proxy_get_current_time_nanoseconds", "i", hostGetCurrentTime},
	{"proxy_set_tick_period_milliseconds", "i", hostSetTickPeriod},
	// Context lifecycle.
	{"proxy_set_effective_context", "i", hostSetEffectiveContext},
	{"proxy_done", "", hostDone},
	// Buffers.
	{"proxy_get_buffer_bytes", "iiiii", hostGetBufferBytes},
	{"proxy_get_buffer_status", "iii", hostGetBufferStatus},
	{"proxy_set_buffer_bytes", "iiiii", hostSetBufferBytes},
	// HTTP fields.
	{"proxy_get_header_map_pairs", "iii", hostGetHeaderMapPairs},
	{"proxy_set_header_map_pairs", "iii", hostSetHeaderMapPairs},
	{"proxy_get_header_map_value", "iiiii", hostGetHeaderMapValue},
	{"proxy_add_header_map_value", "iiiii", hostAddHeaderMapValue},
	{"proxy_replace_header_map_value", "iiiii", hostReplaceHeaderMapValue},
	{"proxy_remove_header_map_value", "iii", hostRemoveHeaderMapValue},
	{"proxy_get_header_map_size", "ii", hostGetHeaderMapSize},
	// Properties.
	{"proxy_get_property", "iiii", hostGetProperty},
	{"proxy_set_property", "iiii", hostSetProperty},
	// Streams and local replies.
	{"proxy_send_local_response", "iiiiiiii", hostSendLocalResponse},
	{"proxy_continue_stream", "i", hostContinueStream},
	{"proxy_close_stream", "i", hostCloseStream},
	{"proxy_get_status", "iii", hostGetStatus},
	// HTTP and gRPC callouts.
	{"proxy_http_call", "iiiiiiiiii", hostHttpCall},
	{"proxy_grpc_call", "iiiiiiiiiiii", hostUnimplemented},
	{"proxy_grpc_stream", "iiiiiiiii", hostUnimplemented},
	{"proxy_grpc_send", "iiii", hostUnimplemented},
	{"proxy_grpc_cancel", "i", hostUnimplemented},
	{"proxy_grpc_close", "i", hostUnimplemented},
	// Shared data and queues.
	{"proxy_set_shared_data", "iiiii", hostSetSharedData},
	{"proxy_get_shared_data", "iiiii", hostGetSharedData},
	{"proxy_register_shared_queue", "iii", hostRegisterSharedQueue},
	{"proxy_resolve_shared_queue", "iiiii", hostResolveSharedQueue},
	{"proxy_enqueue_shared_queue", "iii", hostEnqueueSharedQueue},
	{"proxy_dequeue_shared_queue", "iii", hostDequeueSharedQueue},
	// Metrics.
	{"proxy_define_metric", "iiii", hostDefineMetric},
	{"proxy_record_metric", "iI", hostRecordMetric},
	{"proxy_increment_metric", "iI", hostIncrementMetric},
	{"proxy_get_metric", "ii", hostGetMetric},
	// Foreign functions.
	{"proxy_call_foreign_function", "iiiiii", hostCallForeignFunction},
	// Higress extensions (abi_redis.go, abi_hosts.go).
	{"proxy_redis_init", "iiiiiii", onInstance((*instance).redisInit)},
	{"proxy_redis_call", "iiiii", onInstance((*instance).redisCall)},
	{"proxy_get_upstream_hosts", "ii", onInstance((*instance).upstreamHosts)},
	{"proxy_set_upstream_override_host", "ii", onInstance((*instance).overrideHost)},
	{"proxy_inject_encoded_data_to_filter_chain", "iii", hostInjectEncodedData},
	// Older names still imported by some SDKs (Envoy keeps them).
	{"proxy_continue_request", "", hostContinueRequest},
	{"proxy_continue_response", "", hostContinueResponse},
	{"proxy_clear_route_cache", "", hostClearRouteCache},
}

// instantiateEnv registers envFuncs as the "env" module of r.
func instantiateEnv(ctx context.Context, r wazero.Runtime) error {
	b := r.NewHostModuleBuilder("env")
	results := []api.ValueType{api.ValueTypeI32}
	for _, f := range envFuncs {
		params := make([]api.ValueType, len(f.params))
		for i := range f.params {
			params[i] = api.ValueTypeI32
			if f.params[i] == 'I' {
				params[i] = api.ValueTypeI64
			}
		}
		b.NewFunctionBuilder().WithGoModuleFunction(f.fn, params, results).Export(f.name)
	}
	_, err := b.Instantiate(ctx)
	return err
}

// activeInstance returns the instance a host function was called from, or
// nil when it cannot serve host calls now: called outside a callback, or
// from inside the guest's allocator (which the host calls while it holds
// views of host state; a nested host call could change that state).
func activeInstance(ctx context.Context) *instance {
	in := instanceOf(ctx)
	if in == nil || in.allocBusy {
		return nil
	}
	return in
}

// callerOf is activeInstance for a host function: when there is no instance
// to serve the call it writes INTERNAL_FAILURE to stack[0] and returns nil,
// and the host function just returns.
func callerOf(ctx context.Context, stack []uint64) *instance {
	in := activeInstance(ctx)
	if in == nil {
		stack[0] = uint64(statusInternalFailure)
	}
	return in
}

func u32(v uint64) uint32 { return api.DecodeU32(v) }

func hostUnimplemented(_ context.Context, _ api.Module, stack []uint64) {
	stack[0] = uint64(statusUnimplemented)
}

func hostClearRouteCache(ctx context.Context, _ api.Module, stack []uint64) {
	// Routes are chosen after the request phase, from the headers as the
	// plugins left them: there is no cache to clear.
	stack[0] = uint64(statusOK)
}
