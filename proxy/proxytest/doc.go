// Package proxytest provides a fake LLM inference upstream for tests, the
// `sluice -demo` mode and benchmarks, in the spirit of net/http/httptest.
//
// A Server speaks enough of the OpenAI API (POST /v1/chat/completions,
// POST /v1/completions, GET /v1/models) and of the Hugging Face TGI router
// API (POST /generate, POST /generate_stream) for a proxy in front of it to
// be exercised end to end: JSON replies and SSE streams have the shapes the
// real servers and their SDKs use, tokens can be paced with a per-token
// delay, and failures can be injected at run time (a JSON 500, a connection
// reset before the headers or in the middle of a stream, a request that
// hangs until the client goes away).
//
// The server also answers GET /health (200 `{}`, or 503 after
// SetHealthy(false)), GET /metrics (Prometheus text, either its own counters
// or, after SetEngineMetrics, the queue and KV-cache gauges of vLLM, SGLang
// or TGI with values the test chooses) and, on any other path, a short text
// body naming the method and path, handy for routing tests.
//
// Every response carries x-proxytest-request-id with the value of the
// request's x-request-id header (when it has one) and x-upstream-name with
// Options.Name (when set), so tests can check header propagation and tell
// upstreams apart.
//
// Tests observe what reached the upstream through Requests, InFlight,
// Cancelled and LastRequest. All methods of Server are safe for concurrent
// use; behaviour changed with SetOptions, SetFailMode, SetHealthy or
// SetEngineMetrics applies to requests that arrive afterwards.
//
// The package uses only the standard library and imports no other sluice
// package, so anything may depend on it.
package proxytest
