// Package wasm runs Proxy-Wasm plugins (ABI v0.2.1; guests built for
// v0.2.0 are accepted too) on wazero and exposes each as a proxy.Filter.
// It is the only Sluice package that imports wazero.
//
//	h, err := wasm.NewHost(ctx, wasm.HostConfig{Logger: log, Metrics: set})
//	p, err := h.Load(ctx, pluginConfig) // *wasm.Plugin, a proxy.Filter
//	...
//	p.Close(); h.Close(ctx)
//
// # Host and plugins
//
// A Host owns one wazero runtime and one compilation cache for the process
// (on disk under the user cache directory by default, so a restart does not
// recompile). Host.Check compiles a plugin and checks it without running it
// (for `sluice -validate`); Host.Load also instantiates it. Both refuse, with
// an error naming the plugin and what is wrong, a module that:
//   - exports neither proxy_abi_version_0_2_1 nor proxy_abi_version_0_2_0
//     (v0.1.0 modules are named as such and refused);
//   - does not export proxy_on_context_create or its memory;
//   - exports a known callback with the wrong signature;
//   - imports a function the host does not provide, or with another
//     signature;
//   - needs more memory at start than PluginConfig.MemoryLimit.
//
// # Instances
//
// A Plugin has a small fixed set of instances (PluginConfig.Instances,
// default GOMAXPROCS). Each runs one callback at a time, guarded by a mutex;
// a request's HTTP context is created on the live instance with the fewest
// pinned requests (ties rotate) and stays there for its whole life, as in
// Envoy where a context lives in one worker's VM. Every instance gets root
// context 1: _initialize (or _start), proxy_on_context_create(1, 0),
// proxy_on_vm_start(vm_config) and proxy_on_configure(config); a false
// result or a failure there fails Load. Per request: NewStream calls
// proxy_on_context_create(id, 1), the phase callbacks follow, and OnDone
// calls proxy_on_log, proxy_on_done and proxy_on_delete (a false from
// proxy_on_done is not waited for: the host has no deferred completion).
//
// An instance that traps, exits, times out or runs out of memory is
// discarded at once: the failing callback returns a *CallError (the proxy
// then applies the failure policy: fail_closed answers 503, fail_open skips
// the plugin), the instance is never called again, and a fresh one is
// created in the background in its slot (retrying with backoff if that
// fails). Other requests on other instances are not affected; requests
// pinned to the discarded instance fail on their next callback
// (KindUnavailable) and their OnDone does not call into it.
//
// # Sandbox
//
// Guests see only the "env" Proxy-Wasm functions and WASI
// ("wasi_snapshot_preview1", and "wasi_unstable" for AssemblyScript) with no
// filesystem, no environment variables, no arguments and no sockets. Their
// stdout (info) and stderr (error) go to the logger line by line; random_get
// reads crypto/rand; clocks are real; sleeping returns at once.
//
// Each callback runs under a deadline (PluginConfig.CallTimeout, default
// 10ms; start-up calls use HostConfig.StartTimeout, default 5s). The
// runtime is built with WithCloseOnContextDone, and every call into an
// instance uses that instance's own reusable context.Context, whose Done
// channel is closed by a per-instance time.AfterFunc timer that is Reset
// before and stopped after each call: no context, timer or closure is
// allocated per call. (wazero itself still starts one goroutine per call
// to watch the context; that is its cost of interruptibility.)
//
// Memory is capped per instance (PluginConfig.MemoryLimit, default 64 MiB)
// by a custom linear-memory allocator (wazero's experimental
// MemoryAllocator) rather than the runtime-wide WithMemoryLimitPages, so
// plugins with different limits share one runtime; growing past the limit
// makes memory.grow return -1, and a failure that follows is reported as
// KindMemory. A module whose initial memory exceeds the limit fails Load.
//
// Guest memory is always accessed through bounds checks done in 64-bit
// arithmetic: a bad pointer or length makes the host function return
// INVALID_MEMORY_ACCESS, never a panic. Results returned through ret_*
// pointers are allocated in the guest with proxy_on_memory_allocate (or
// malloc); empty results are returned as pointer 0, size 0 without
// allocating. Host calls made from inside the guest's allocator get
// INTERNAL_FAILURE.
//
// # Header maps and buffers
//
// Map 0 (request headers) is readable in every HTTP callback and writable
// in proxy_on_context_create, proxy_on_request_headers and
// proxy_on_request_body; changes there take part in route matching (a
// plugin routes by rewriting ":path" or ":authority", or with
// sluice.upstream). Map 2 (response headers) is readable from
// proxy_on_response_headers on and writable in the response callbacks.
// A map that is not available (trailers 1 and 3, gRPC and callout maps
// 4–7, response headers before the response, any map in the root context)
// reads as empty (get_header_map_pairs OK with size 0, get_header_map_size
// 0, get_header_map_value NOT_FOUND) and refuses writes with BAD_ARGUMENT,
// as Envoy does. Map types above 7 are BAD_ARGUMENT.
//
// Buffer 0 (request body, whole) is available in proxy_on_request_body,
// buffer 1 (response body: the chunk, or the whole body after the plugin
// paused earlier chunks) in proxy_on_response_body; both are writable with
// proxy_set_buffer_bytes (replace [start, start+size) with the data; a
// start past the end appends), and the proxy fixes Content-Length. Buffers
// 6 (VM config) and 7 (plugin config) are readable anywhere and read-only
// (BAD_ARGUMENT). Other buffers are NOT_FOUND, unknown types BAD_ARGUMENT.
//
// # Properties
//
// proxy_get_property takes a path of NUL-separated segments
// ("request\x00path"); the dotted form in one segment ("request.path") is
// accepted too. Integers and timestamps are 8 bytes little-endian, as
// Envoy encodes them; maps are in the header-map pair encoding.
//
//	property                        value                               context
//	request.path                    ":path" (with query)                HTTP
//	request.url_path                ":path" without the query           HTTP
//	request.query                   the query, without "?"              HTTP
//	request.host                    ":authority"                        HTTP
//	request.method                  ":method"                           HTTP
//	request.scheme                  ":scheme"                           HTTP
//	request.headers                 the request header map (pairs)      HTTP
//	request.id                      x-request-id                        HTTP
//	request.protocol                "HTTP/1.1"…                         HTTP
//	request.time                    start, int64 Unix nanoseconds       HTTP
//	request.size                    request body length, int64          HTTP
//	request.useragent, .referer     those headers                       HTTP
//	source.address, .port           client "ip:port", port int64        HTTP
//	destination.address, .port      listener "ip:port", port int64      HTTP
//	response.code                   status int64 (NOT_FOUND before)     HTTP
//	response.headers                the response header map (pairs)     HTTP, response phase
//	plugin_name                     PluginConfig.Name                   any
//	plugin_root_id                  "" (Sluice has no root_id setting)  any
//	plugin_vm_id                    PluginConfig.VMID, default Name     any
//	sluice.upstream                 chosen pool; settable (below)       HTTP
//	sluice.active_requests          requests holding a slot, int64      HTTP
//	sluice.max_concurrent_requests  slot count, int64                   HTTP
//
// Unknown names are NOT_FOUND, and every request property is NOT_FOUND in
// the root context. proxy_set_property on sluice.upstream sends the request
// to that pool (Exchange.SetUpstream; an unknown pool is BAD_ARGUMENT); on
// other host-defined names it is BAD_ARGUMENT (read-only); on any other name
// it stores a per-request value (Exchange.SetProperty) that get_property
// reads back, also from other plugins. In the root context set_property is
// NOT_FOUND.
//
// # Implemented and not
//
// Implemented: logging (trace…critical to slog, trace below Debug and
// critical above Error), get_log_level, current time, tick periods
// (proxy_on_tick on the root context of the instance that set it),
// set_effective_context (the root context, the current HTTP context, or
// another HTTP context of the same instance while that request is paused),
// done (always NOT_FOUND: nothing is ever pending), every header-map
// function, buffers, properties, send_local_response (grpc_status is
// ignored), continue_stream/close_stream on HTTP_REQUEST and HTTP_RESPONSE
// (DOWNSTREAM and UPSTREAM are UNIMPLEMENTED; outside an HTTP context
// BAD_ARGUMENT), shared data (per vm_id, at most 16384 keys and 64 MiB; a
// full store answers INTERNAL_FAILURE), and the older names
// proxy_continue_request, proxy_continue_response and
// proxy_clear_route_cache (OK: routes are matched after the request phase).
//
// UNIMPLEMENTED (registered with their exact signatures so any guest
// links, but answering 12): proxy_http_call, proxy_grpc_call,
// proxy_grpc_stream, proxy_grpc_send, proxy_grpc_cancel, proxy_grpc_close,
// proxy_get_status, the shared queues (proxy_register_shared_queue,
// proxy_resolve_shared_queue, proxy_enqueue_shared_queue,
// proxy_dequeue_shared_queue), the metrics functions (proxy_define_metric,
// proxy_record_metric, proxy_increment_metric, proxy_get_metric) and
// proxy_call_foreign_function.
//
// # Metrics
//
// Created in HostConfig.Metrics when a plugin loads:
//
//	sluice_plugin_errors_total{plugin,kind}        kind: trap, timeout, memory, exit, bad_action, unavailable
//	sluice_plugin_call_duration_seconds{plugin}    histogram of every callback
//	sluice_plugin_local_responses_total{plugin}    proxy_send_local_response calls
//	sluice_plugin_instance_restarts_total{plugin}  discarded instances replaced
//
// Rust guests are not built or tested here (no wasm32 Rust toolchain);
// guests from the Go, C and AssemblyScript SDKs are.
package wasm
