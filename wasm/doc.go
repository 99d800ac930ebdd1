// Package wasm runs Proxy-Wasm plugins (ABI v0.2.1; guests built for
// v0.2.0 are accepted too) on wazero and exposes each as a proxy.Filter.
// It is the only Sluice package that imports wazero.
//
//	rc, err := cfg.Resolve() // proxy/config: endpoints parsed once
//	h, err := wasm.NewHost(ctx, wasm.HostConfig{Logger: log, Metrics: set, Upstreams: rc.Upstreams})
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
// default GOMAXPROCS), plus one started spare. Each runs one callback at a time, guarded by a mutex;
// a request's HTTP context is created on the live instance with the fewest
// pinned requests (among equals, the one picked last, whose memory is
// still in the CPU caches) and stays there for its whole life, as in
// Envoy where a context lives in one worker's VM. Every instance gets root
// context 1: its start function (a start section, run by the host after
// instantiation), _initialize (or _start), proxy_on_context_create(1, 0),
// proxy_on_vm_start(vm_config) and proxy_on_configure(config); a false
// result or a failure there fails Load. Per request: NewStream calls
// proxy_on_context_create(id, 1), the phase callbacks follow, and OnDone
// calls proxy_on_log, proxy_on_done and proxy_on_delete (a false from
// proxy_on_done is not waited for: the host has no deferred completion).
//
// An instance that traps, exits, times out or runs out of memory is
// discarded at once: the failing callback returns a *CallError (the proxy
// then applies the failure policy: fail_closed answers 503, fail_open skips
// the plugin), the instance is never called again, the spare takes its
// slot before the failing call returns, and a new spare is built in the
// background (retrying with backoff if that fails). New requests never
// get a discarded instance; if failures outrun the rebuilding and no
// instance is alive, NewStream waits for one up to
// HostConfig.StartTimeout, then fails with KindUnavailable (ErrNoInstance).
// Only requests in flight on the discarded instance are affected, and
// only those that still need a callback the guest exports: such a
// callback fails with KindUnavailable (ErrInstanceDiscarded), a request
// paused on it is never resumed (it fails at the proxy's timeout), and
// each is counted once in sluice_plugin_stranded_requests_total; a
// request past the guest's last exported callback goes on, and OnDone
// never calls into a discarded instance.
//
// # Sandbox
//
// Guests see only the "env" Proxy-Wasm functions and WASI
// ("wasi_snapshot_preview1", and "wasi_unstable" for AssemblyScript) with no
// filesystem, no arguments and no sockets. Their environment holds exactly
// PluginConfig.EnvironmentVariables (Envoy's
// vm_config.environment_variables): the variables of the host's
// environment named in host_env_keys that are set when the plugin loads,
// and key_values; by default it is empty. Their stdout (info) and stderr
// (error) go to the logger line by line; random_get reads crypto/rand;
// clocks are real; sleeping returns at once.
//
// What a plugin logs (proxy_log, stdout and stderr lines together, across
// its instances) is rate-limited by a token bucket
// (PluginConfig.LogLimit, default 100 lines/s with bursts of 200): a line
// over the limit is dropped, counted in
// sluice_plugin_log_lines_dropped_total{plugin}, and summarised in a
// warning at most every 10 s (and when the plugin closes). A proxy_log
// below the logger's level returns OK before copying the message and
// takes no token.
//
// Each callback runs under a deadline (PluginConfig.CallTimeout, default
// 10ms; start-up calls use HostConfig.StartTimeout, default 5s). On Linux
// the deadline is a budget of CPU time of the thread running the call
// (counted once the budget has passed in wall time; the goroutine is then
// locked to its thread for the rest of the call), so a callback that
// merely waits for the CPU under load is not stopped; a call is stopped in
// any case after max(1s, 100×budget) of wall time (at most budget+1min).
// Elsewhere it is wall time. The host stops a call through checks it adds
// to every plugin at load: a countdown at the top of each loop body and at
// the entry of each function that calls another (so recursion, direct,
// mutual or through call_indirect, is bounded like a loop) that calls the
// host function sluice.yield every 1000 steps, where a call whose deadline
// fired ends (and where the Go scheduler can preempt a long-running
// guest). A recursion that only deepens ends in wazero's stack-overflow
// trap if its budget has not run out first. A module's start section is turned into an export,
// "sluice:start", that the host calls first, under the start-up deadline.
// A call allocates nothing: every call into an instance uses that
// instance's own reusable context.Context, and one timer per instance,
// re-armed lazily, serves all its calls.
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
// Maps 6 and 7 (the HTTP call response's headers, with ":status" first,
// and trailers) are readable during proxy_on_http_call_response, whatever
// the effective context. A map that is not available (trailers 1 and 3,
// gRPC maps 4 and 5, maps 6 and 7 outside that callback, response headers
// before the response, any of maps 0–3 in the root context) reads as empty
// (get_header_map_pairs OK with size 0, get_header_map_size 0,
// get_header_map_value NOT_FOUND) and refuses writes with BAD_ARGUMENT, as
// Envoy does. Map types above 7 are BAD_ARGUMENT.
//
// Writes are checked (validField): proxy_add_header_map_value,
// proxy_replace_header_map_value, proxy_set_header_map_pairs (the whole
// map), proxy_send_local_response and proxy_http_call return
// BAD_ARGUMENT, changing nothing, for a name that is not an RFC 9110
// token (a pseudo-header is ':' and a token), a value with a control byte
// other than tab (CR, LF and NUL included) or DEL, a ":method" that is
// not a token, a ":path" that does not start with '/' (or is not "*") or
// holds whitespace or control bytes, an ":authority" that is neither
// empty nor host[:port] (proxy.ValidAuthority; the port need not be
// numeric, so "127.0.0.1:8080-canary" passes), a ":scheme" that is not an
// RFC 3986 scheme, or a ":status" that is not three digits from 100.
// A field equal to one the map holds already is accepted, so a plugin can
// write back the map it read even when the client sent something these
// rules refuse.
//
// Buffer 0 (request body, whole) is available in proxy_on_request_body,
// buffer 1 (response body: the chunk, or the whole body after the plugin
// paused earlier chunks) in proxy_on_response_body; both are writable with
// proxy_set_buffer_bytes (replace [start, start+size) with the data; a
// start past the end appends), and the proxy fixes Content-Length. Buffer 4
// (the HTTP call response body) is readable during
// proxy_on_http_call_response, buffer 9 (a Redis call's reply) during
// proxy_on_redis_call_response. Buffers 6 (VM config) and 7 (plugin
// config) are readable anywhere. Buffers 4, 6, 7 and 9 are read-only
// (BAD_ARGUMENT).
// Other buffers are NOT_FOUND, unknown types BAD_ARGUMENT.
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
//	sluice.upstreams                JSON snapshot of the pools (below)  HTTP
//	sluice.endpoint                 chosen "host:port"; settable        HTTP
//
// Unknown names are NOT_FOUND, and every request property is NOT_FOUND in
// the root context. proxy_set_property on sluice.upstream sends the request
// to that pool (Exchange.SetUpstream; an unknown pool is BAD_ARGUMENT); on
// sluice.endpoint it pins the request to an endpoint, or a comma-separated
// fallback list, of its pool (Exchange.SetEndpoint; an endpoint of no pool,
// or a call after the endpoint was chosen, is BAD_ARGUMENT); on other
// host-defined names it is BAD_ARGUMENT (read-only); on any other name it
// stores a per-request value (Exchange.SetProperty) that get_property reads
// back, also from other plugins. In the root context set_property is
// NOT_FOUND. sluice.upstreams is Exchange.AppendUpstreamsJSON:
//
//	{"pools":{"a":{"policy":"least_queue","healthy":2,"total":3,
//	  "max_in_flight":32,"queued":0,"endpoints":{"127.0.0.1:8001":
//	  {"healthy":true,"ejected":false,"weight":1,"in_flight":0,
//	  "queue_depth":0,"running":0,"kv_cache_usage":0.1},…}},…}}
//
// # Shared data
//
// proxy_get_shared_data / proxy_set_shared_data use one store per vm_id
// (PluginConfig.VMID, default the plugin's name), shared by every
// instance of every plugin with that vm_id and kept for the Host's life
// (a reloaded plugin finds its data). Keys and values are copied in and
// out. Every successful set gives the key a new CAS value (never 0); a set
// with cas 0 is unconditional, one with another cas fails with
// CAS_MISMATCH unless it equals the key's current CAS. The store holds at
// most 16384 keys and 64 MiB; a set that would exceed that is
// INTERNAL_FAILURE. CAS values come from one counter per store (Envoy's
// nextCas), never reused for another value of a key.
//
// Get of a missing key is NOT_FOUND and, a Sluice extension, writes a
// creation CAS into its cas out-parameter (Envoy writes nothing there on
// NOT_FOUND, and the Go, Rust and C++ SDKs ignore it): a value issued to
// no entry, with which a set succeeds only while the key is still missing.
// Two instances that find a key missing and both create it with their
// creation CAS cannot both succeed; with cas 0 (what Envoy-era guests
// pass) the second silently overwrites the first, as in Envoy, where a
// set of a missing key succeeds whatever its cas.
//
// # Bounded shared data (a Sluice extension)
//
// A plugin may bound what it writes; one that does nothing behaves as on
// Envoy. The policy of a write (the longest matching prefix of the
// operator's PluginConfig.SharedData.Prefixes, else of the rules the
// guest set with sluice.shared_data_policy, else the operator's
// SharedData.TTL and EvictOldest; default: none) gives the entry a time
// to live from that write, after which it reads as NOT_FOUND and is
// dropped, and may make it evictable: a write under an evicting policy
// that finds the store full drops evictable entries, least recently
// written first (never others), instead of failing. The TTL clock is
// monotonic. After any entry expired, was evicted or deleted, a set with
// a non-zero cas of a missing key is CAS_MISMATCH when the cas is not
// higher than the highest cas a removed entry had, so a CAS read before
// the removal never succeeds (Envoy creates the key); this is also what
// makes a creation CAS fail once the key was created and removed since
// the get. sluice.shared_data_delete removes a key. Costs: O(1) per
// write and per expired entry (a FIFO per distinct TTL, O(log classes)
// when the soonest entry of a TTL changes). Per store (label vm_id):
// sluice_shared_data_keys, sluice_shared_data_expired_total,
// sluice_shared_data_evicted_total and sluice_shared_data_refused_total
// (writes refused, store full).
//
// # Shared queues
//
// A queue is named by (vm_id, name): proxy_register_shared_queue creates
// or opens it in the caller's vm_id and makes the caller's instance its
// most recent registrant; proxy_resolve_shared_queue finds one by vm_id
// ("" is the caller's own) and name (NOT_FOUND if none). Queue ids are
// Host-wide, so any plugin may enqueue to or dequeue from a resolved id
// (unknown ids are NOT_FOUND; dequeue of an empty queue is EMPTY). Each
// enqueue (a copy; at most 16384 items and 16 MiB per queue, 1024 queues
// per Host, beyond that INTERNAL_FAILURE) owes one proxy_on_queue_ready
// (root context, queue id) to the queue's most recent live registrant:
// one instance, one callback at a time, called from a goroutine of that
// plugin; calls owed while the queue is already empty are skipped. Queues
// live as long as the Host.
//
// # Ticks
//
// proxy_set_tick_period_milliseconds sets the calling instance's period
// (0 stops it). One driver per plugin calls proxy_on_tick on the root
// context once per period (the shortest period asked for), each time on
// the next live instance that asked for ticks: a tick-driven plugin acts
// once per period, not once per instance, and every such instance still
// gets a tick every N periods (N instances), so each can resume the
// requests pinned to it. A replacement instance gets ticks again when its
// start-up asks for them.
//
// # HTTP calls
//
// proxy_http_call(upstream, headers, body, trailers, timeout_ms,
// ret_call_id) sends a request to an upstream pool through
// HostConfig.Callouts (by default an HTTPCallouts over
// HostConfig.Upstreams: net/http, an endpoint of the pool round-robin,
// Host from ":authority", no redirects followed, response bodies over
// 1 MiB fail the call). The headers must hold ":method", ":path" (starting
// with '/') and ":authority", which may be empty, as in Envoy (the call
// then carries the endpoint's own host:port); ":scheme" is optional; every
// field must pass the header write checks above. It returns
// BAD_ARGUMENT for an unknown pool (or none configured), a missing or
// invalid pseudo-header, an invalid header or trailer, or a body over
// MaxCalloutRequestBody (1 MiB); INTERNAL_FAILURE with 1024 calls in
// flight on the instance. timeout_ms 0 means DefaultCalloutTimeout (10 s);
// longer than MaxCalloutTimeout (1 min) is cut to it. Several calls may
// be in flight at once, from any context.
//
// Every accepted call gets exactly one proxy_on_http_call_response(root
// context 1, call id, num_headers, body_size, num_trailers) on the
// instance that made it (unless that instance is discarded or the plugin
// closes first): num_headers counts ":status", and is 0 when the call
// failed, timed out, or was cancelled because the request that made it
// ended. During that callback maps 6 and 7 and buffer 4 hold the reply,
// and proxy_get_status returns the HTTP status code and reason phrase
// ("200", "OK"), or code 0 and "timeout", "cancelled" or the error for a
// failed call (outside the callback it is NOT_FOUND). A request that
// returned PAUSE stays paused until the plugin calls
// proxy_set_effective_context(its context id) then proxy_continue_stream
// (or sends a local response) from the callback, or until the proxy's
// timeout; a reply that arrives before the proxy has started holding the
// request is delivered once it does, so the resume is not lost. Once the
// request has ended, proxy_set_effective_context to it is BAD_ARGUMENT.
//
// # Higress extensions
//
// proxy_redis_init and proxy_redis_call reach the servers of
// HostConfig.Redis (abi_redis.go): a call shares the HTTP calls' table,
// cap and delivery, and its reply arrives in
// proxy_on_redis_call_response(root context 1, call id, status, size),
// the RESP reply in buffer 9 (status 0; 1 unreachable, 2 timeout, with an
// empty buffer; proxy_get_status gives the status and what went wrong).
// proxy_get_upstream_hosts answers pairs of each endpoint of the request's
// pool and its last scraped metrics text; proxy_set_upstream_override_host
// is sluice.endpoint; proxy_inject_encoded_data_to_filter_chain is
// UNIMPLEMENTED (abi_hosts.go). Modules may export
// proxy_abi_version_0_2_100.
//
// # Plugin metrics
//
// proxy_define_metric (counter 0, gauge 1, histogram 2) creates a series
// in HostConfig.Metrics, exported on /metrics; defining the same name and
// type again, from any instance of the plugin, returns the same id (ids
// count from 1 per plugin; other types are BAD_ARGUMENT). Names map as
// follows (metricSeries):
//
//	plugin name                                              series
//	requests_total                                           sluice_wasm_requests_total{plugin="p"}
//	wasmcustom.my_counter                                    sluice_wasm_my_counter{plugin="p"}
//	a.b.c                                                    sluice_wasm_a_b_c{plugin="p"}
//	custom_header_value_counts_value=foo_reporter=wasmgosdk  sluice_wasm_custom_header_value_counts{plugin="p",reporter="wasmgosdk",value="foo"}
//
// That is: Envoy's "wasmcustom." namespace is dropped; tags written in
// Envoy's tag-extraction form "<name>_<tag>=<value>_<tag>=<value>" become
// labels (a tag name runs from the last '_' before an '=' to it; a value
// to the '_' before the next tag name), sorted by name after the
// reserved label plugin; in the base name and tag names every byte other
// than an ASCII letter, digit or '_' becomes '_'; the result is prefixed
// with UserMetricPrefix ("sluice_wasm_"), so plugin metrics never collide
// with Sluice's own. An empty name, one over 256 bytes or not UTF-8, a
// base or tag name without a letter or digit, a tag name starting with a
// digit or "__", a tag named "plugin", a repeated tag, more than 16 tags,
// a control character in a value, or a name defined before with another
// type is BAD_ARGUMENT; more than 1024 series per plugin is
// INTERNAL_FAILURE. Counters take proxy_increment_metric deltas >= 0
// (negative: BAD_ARGUMENT) and proxy_record_metric adds (as Envoy); gauges
// take any delta and record sets them (values are int64); histograms
// (Prometheus histograms: _bucket{le}, _sum, _count, with Envoy's default
// bucket bounds 0.5 to 3,600,000) take record only. Every plugin-defined
// family is exposed with a generic HELP text naming the plugin label. proxy_get_metric returns a counter's value, a gauge's (as
// int64 bits) or a histogram's observation count. Unknown ids are
// NOT_FOUND. Increment, record and get allocate nothing.
//
// # Foreign functions
//
// proxy_call_foreign_function(name, args, ret_results) runs one of these
// host functions (other names are NOT_FOUND, and so are those named in
// HostConfig.HiddenForeignFunctions; wrong arguments BAD_ARGUMENT):
//
//	name                   arguments                 result
//	sluice.upstream_stats  none; HTTP context only   the sluice.upstreams JSON
//	sluice.upstream_loads  a pool's name, ≤ 1 KiB    u32 LE name length, the
//	                       ("": the only pool);      pool's name (empty: several
//	                       HTTP context only         pools and none named), then
//	                                                 per endpoint in rotation: u32
//	                                                 LE address length, address,
//	                                                 f64 LE in flight, f64 LE
//	                                                 queue depth
//	sluice.endpoint_loads  as upstream_loads         the same, with u32 LE F (the
//	                                                 f64 fields per endpoint, now
//	                                                 3) after the name, and the
//	                                                 engine's KV-cache usage (0–1)
//	                                                 third; readers skip fields
//	                                                 they do not know
//	sluice.now_unix_nano   none                      8 bytes, little-endian Unix ns
//	sluice.sha256          the bytes to hash         32-byte SHA-256 digest
//	sluice.random_bytes    n, u32 little-endian      n random bytes (1–4096)
//	sluice.prompt_block_hashes  chunk u32 LE (16–65536), max prompt bytes u32 LE;
//	                       HTTP context only: the request's OpenAI prompt (the
//	                       "messages" or "prompt" value to the body's end) cut
//	                       in chunks: seed, then one chained hash per full
//	                       chunk, u64 LE each (internal/prompthash);
//	                       PARSE_FAILURE when the body does not open with
//	                       scalar members, "model" among them, then the prompt,
//	                       or repeats "model", "messages" or "prompt" after it
//	                       (an engine reads the last); a member repeated inside
//	                       the prompt ends the hashed text where the first is
//	sluice.prompt_prefix_match  chunk and max as prompt_block_hashes, then
//	                       the cache threshold (f64 LE, 0–1), then a key
//	                       prefix (1–1024 bytes); HTTP context only: hashes
//	                       the prompt as prompt_block_hashes and looks up,
//	                       in the plugin's shared data, the keys prefix +
//	                       hash (u64 LE) of its checkpoints
//	                       (prompthash.Checkpoints) of at least MinMatch
//	                       blocks, longest first: u64 seed, u32 blocks, u32
//	                       min, u32 length and name of the request's pool
//	                       (sluice.upstream), then per key found u32
//	                       blocks, u32 length, value (one equal to the
//	                       entry before it left out); PARSE_FAILURE as
//	                       prompt_block_hashes
//	sluice.prompt_prefix_record  from u32 LE, then a value (1–1024 bytes);
//	                       HTTP context only: writes the value under the
//	                       keys of the checkpoints past from (and of at
//	                       least min blocks) of the prompt this context's
//	                       last prompt_prefix_match hashed, with the keys'
//	                       policy, as proxy_set_shared_data with cas 0
//	                       (empty result); BAD_ARGUMENT when no such match
//	                       is on record (another context's ran since)
//	sluice.prompt_prefix_claim  a value (1–1024 bytes); HTTP context only:
//	                       prompt_prefix_record from 0 made one step with a
//	                       second look-up, for a request that starts a
//	                       prefix: when one of those keys holds another
//	                       value (another instance recorded the prefix
//	                       since the match) it writes nothing and returns
//	                       u32 LE that checkpoint's blocks, then its value
//	                       (the longest); else it writes and the result is
//	                       empty; errors as prompt_prefix_record
//	sluice.skip_callbacks  export names, comma-separated, among
//	                       proxy_on_request_headers, proxy_on_request_body,
//	                       proxy_on_response_headers, proxy_on_response_body,
//	                       proxy_on_log, proxy_on_done; at start-up only: the
//	                       calling instance no longer calls them (empty result)
//	sluice.shared_data_delete  cas u32 LE, then key  empty; OK, NOT_FOUND,
//	                       (cas 0: unconditional)    CAS_MISMATCH
//	sluice.shared_data_policy  TTL ms u32 LE (0: none, ≤ 30 days), flags
//	                       u32 LE (bit 0: evict oldest when full), then the key
//	                       prefix (≤ 256 bytes; "" = every key): the policy
//	                       of the calling plugin's later writes of keys with
//	                       that prefix (at most 16 prefixes); empty result
//
// # Implemented and not
//
// Implemented: logging (trace…critical to slog, trace below Debug and
// critical above Error; rate-limited, see Sandbox), get_log_level, current time, ticks,
// set_effective_context (the root context, the current HTTP context, or
// another HTTP context of the same instance while that request is
// paused), done
// (always NOT_FOUND: nothing is ever pending), every header-map function,
// buffers, properties, send_local_response (grpc_status is ignored),
// continue_stream/close_stream on HTTP_REQUEST and HTTP_RESPONSE
// (DOWNSTREAM and UPSTREAM are UNIMPLEMENTED; outside an HTTP context
// BAD_ARGUMENT), shared data, shared queues, HTTP calls and get_status,
// metrics, foreign functions, and the older names proxy_continue_request,
// proxy_continue_response and proxy_clear_route_cache (OK: routes are
// matched after the request phase).
//
// UNIMPLEMENTED (registered with their exact signatures so any guest
// links, but answering 12): the gRPC calls (proxy_grpc_call,
// proxy_grpc_stream, proxy_grpc_send, proxy_grpc_cancel,
// proxy_grpc_close). Sluice has no TCP (L4) filter chain: the stream
// callbacks (proxy_on_new_connection, proxy_on_downstream_data, …) are
// never called, and the host never calls proxy_on_foreign_function,
// proxy_on_request_trailers or proxy_on_response_trailers (requests and
// responses reach plugins without trailers; maps 1 and 3 read as empty).
//
// # Metrics
//
// Created in HostConfig.Metrics when a plugin loads:
//
//	sluice_plugin_errors_total{plugin,kind}        kind: trap, timeout, memory, exit, bad_action, unavailable
//	sluice_plugin_call_duration_seconds{plugin}    histogram of every callback
//	sluice_plugin_local_responses_total{plugin}    proxy_send_local_response calls
//	sluice_plugin_instance_restarts_total{plugin}  discarded instances replaced
//	sluice_plugin_http_calls_total{plugin,result}  proxy_http_call outcomes: ok, timeout, cancelled, error
//	sluice_plugin_log_lines_dropped_total{plugin}  log lines over PluginConfig.LogLimit
//	sluice_plugin_stranded_requests_total{plugin,reason}  requests in flight on a discarded instance that
//	                                               still needed it; reason: trap, timeout, memory, exit, closed
//
// errors_total counts the failing calls themselves; a stranded request is
// counted only in stranded_requests_total, and kind unavailable counts new
// requests that found no live instance.
//
// Rust guests are not built or tested here (no wasm32 Rust toolchain);
// guests from the Go, C and AssemblyScript SDKs are.
package wasm
