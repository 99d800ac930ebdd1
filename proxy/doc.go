// Package proxy is Sluice's edge: it takes client requests, admits them,
// runs the plugins (Filter), picks an upstream pool and endpoint, sends,
// streams the answer back and accounts for it. One request walks these
// files in this order:
//
//	client ─► accept.go   handle: probes or serveProxy; pooled state; forward
//	           read.go    request id, body (timeouts, budget); admit: a slot or 429
//	           filter.go  plugins' request phase: headers, then the whole body
//	           select.go  model from the body; route (path, host, headers) → pool
//	           send.go    endpoint (upstream.Pool: policy, queue), retries ─► upstream
//	           respond.go status and headers back, via filter.go's response phase;
//	                      the body streamed to the client through rs.Read
//	           finish.go  slots back, metrics, access log; state back to the pool
//	client ◄─ the response (/health, /ready, /metrics: answered from dispatch)
//
// The walk, file by file. accept.go: fasthttp calls serveEdge, then handle,
// which answers /health, /ready and /metrics (server.go) and sends
// everything else to serveProxy; serveProxy takes a pooled requestState
// (defined there) and forward runs the stages below in order. read.go:
// setRequestID, then readBody reads the whole request body under
// client_body_timeout and the server-wide body budget, and admit takes an
// admission slot from the Router (router.go, with the metric families'
// HELP texts), or answers 429, and registers the client's connection with
// the disconnect watch (disconnect.go) until finish: a client that leaves
// from then on ends the request with 499 at its next step, or at once
// when it waits in a pool's queue or in a plugin's pause. filter.go:
// requestPhase creates each Filter's Stream and calls OnRequestHeaders and
// OnRequestBody with the Exchange (exchange.go, headers.go); a filter may
// answer locally, pause, choose a pool or endpoints, or rewrite the
// request. select.go: findModel reads the OpenAI "model" field
// (internal/jsonspan), GET /v1/models is answered by internal/modellist,
// and choosePool matches the routes (hostPattern, headers, model) or
// takes the filter's choice (UpstreamHosts shows a filter the pool the
// routes would choose); applyAlias rewrites an aliased model. send.go:
// prepareUpstreamRequest strips the hop-by-hop headers
// (internal/hopheaders) and sets the forwarded ones, send takes an
// endpoint from the pool (waiting in its queue), roundTrip sends it with
// the upstream connection attached to the disconnect watch (closed if the
// client goes) and retries another endpoint on a
// connection failure, 502, 503 or 429 before any byte went to the client.
// respond.go: respond copies status and headers, runs the response phase
// (filter.go), and streams the body through requestState.Read, which adds
// the whole chunks already received (internal/coalesce), tracks token
// usage (usage.go) and cuts a broken event stream cleanly.
// finish.go: finish runs exactly once, by the handler or by the body
// stream's Close: the filters' OnDone, the endpoint slot, the admission
// slot (Guard), metrics and the access log, then the state is reset into
// the pool. Errors are answered in OpenAI or TGI shape by errors.go.
//
// Beside the path: server.go builds the Server from a Config (NewServer),
// serves, drains and shuts down, and answers the probes on both
// listeners (AdminHandler for the admin one); tls.go serves clients TLS
// under accept.go's edge connection (CertStore: certificates by SNI,
// reloaded in place); internal/traceparent keeps or generates the W3C
// traceparent (forward calls it right after setRequestID); reload.go
// swaps configuration generations; accesslog.go writes the access-log
// line finish ends with, stamps x-request-id on every answer, and logs
// requests whose head could not be read (handleParseError); config.go
// re-exports package config's types, so that proxy.Config is
// config.Config. The packages under internal/ are the pieces of the path
// that need no request state, each with its own tests. The upstream
// pools — balancers, the FIFO queue, health checks, engine-metrics
// scraping — are package upstream; the request path reads them through
// its methods and they tell readiness through a callback, never a pointer
// back up.
//
// The public API: Server and NewServer; Router with TryAcquire and the
// Guard's Complete, Fail and Release; Health and Metrics; Filter, Stream,
// Action and Exchange for plugins (package wasm implements them).
package proxy
