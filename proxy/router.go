package proxy

import (
	"errors"
	"sync/atomic"

	"github.com/VictoriaMetrics/metrics"
	"github.com/sluice-proxy/sluice/internal/exposition"
	"github.com/sluice-proxy/sluice/internal/version"
)

// ErrResourceExhausted is returned by Router.TryAcquire when every
// admission slot is taken. The server answers it with 429.
var ErrResourceExhausted = errors.New("proxy: resource exhausted: all request slots are in use")

// Router owns the admission slots and the readiness flag: the Go shape of
// the text-generation-inference router's semaphore. Slots are a lock-free
// counter: TryAcquire never waits and never queues.
//
// A Router is safe for concurrent use.
type Router struct {
	max    atomic.Int64 // SetMax changes it on a reload
	active atomic.Int64
	ready  atomic.Bool
	drain  atomic.Bool
	noUp   atomic.Bool // no upstream endpoint is in rotation

	set       *metrics.Set
	total     *metrics.Counter
	completed *metrics.Counter
	failed    *metrics.Counter
	rejected  *metrics.Counter // reason="overloaded"
	byPlugin  *metrics.Counter // reason="plugin"
	// refused while being read, by refusal (refuseReasons)
	refused [numRefusals]*metrics.Counter
}

// Refusals: requests answered before they took a slot because they could
// not be read whole. The reason label of sluice_requests_rejected_total.
const (
	// refusedBadRequest: the client's request was malformed, too large
	// or too slow (400, 408, 413, 414, 431, 501).
	refusedBadRequest = iota
	// refusedBodyBuffer: max_request_body_buffer was full (503).
	refusedBodyBuffer
	numRefusals
)

var refuseReasons = [numRefusals]string{"bad_request", "body_buffer_full"}

// NewRouter returns a Router with cfg.MaxConcurrentRequests slots (the
// default when cfg is nil or the field is not positive), not ready.
func NewRouter(cfg *Config) *Router {
	n := DefaultMaxConcurrentRequests
	if cfg != nil && cfg.MaxConcurrentRequests > 0 {
		n = cfg.MaxConcurrentRequests
	}
	r := &Router{set: metrics.NewSet()}
	r.max.Store(int64(n))
	r.total = r.set.NewCounter("sluice_requests_total")
	r.completed = r.set.NewCounter("sluice_requests_completed_total")
	r.failed = r.set.NewCounter("sluice_requests_failed_total")
	r.rejected = r.set.NewCounter(`sluice_requests_rejected_total{reason="overloaded"}`)
	r.byPlugin = r.set.NewCounter(`sluice_requests_rejected_total{reason="plugin"}`)
	for i, reason := range refuseReasons {
		r.refused[i] = r.set.NewCounter(`sluice_requests_rejected_total{reason="` + reason + `"}`)
	}
	r.set.NewGauge("sluice_active_requests", func() float64 { return float64(r.active.Load()) })
	r.set.NewGauge("sluice_max_concurrent_requests", func() float64 { return float64(r.max.Load()) })
	r.set.NewGauge("sluice_utilization", func() float64 { return r.Metrics().Utilization() })
	r.set.NewGauge("sluice_success_rate", func() float64 { return r.Metrics().SuccessRate() })
	return r
}

// SetReady marks the router ready (or not) to take traffic; /ready follows
// it.
func (r *Router) SetReady(ready bool) { r.ready.Store(ready) }

// IsReady reports whether the router is ready, not draining, and has an
// upstream endpoint in rotation.
func (r *Router) IsReady() bool { return r.ready.Load() && !r.drain.Load() && !r.noUp.Load() }

// setUpstreamsDown records whether every upstream endpoint is out of
// rotation (the Server's pools call it).
func (r *Router) setUpstreamsDown(down bool) { r.noUp.Store(down) }

// StartDrain marks the router as shutting down: IsReady turns false at
// once and Health reports "unhealthy".
func (r *Router) StartDrain() { r.drain.Store(true) }

// TryAcquire takes a slot, or returns ErrResourceExhausted at capacity.
// The returned Guard releases the slot exactly once: call Complete or Fail
// when the outcome is known, and defer Release so that every path
// (including a panic) gives the slot back.
//
// TryAcquire allocates the Guard (a few words) so that a late or repeated
// Release can never touch another request's slot; the server embeds its
// guards in pooled request state instead (see acquireInto).
func (r *Router) TryAcquire() (*Guard, error) {
	if err := r.takeSlot(); err != nil {
		return nil, err
	}
	g := &Guard{r: r}
	g.state.Store(guardHeld)
	return g, nil
}

// acquireInto takes a slot into g, which must not hold one.
func (r *Router) acquireInto(g *Guard) error {
	if err := r.takeSlot(); err != nil {
		return err
	}
	g.r = r
	g.state.Store(guardHeld)
	return nil
}

func (r *Router) takeSlot() error {
	for {
		cur := r.active.Load()
		if cur >= r.max.Load() {
			r.total.Inc()
			r.rejected.Inc()
			return ErrResourceExhausted
		}
		if r.active.CompareAndSwap(cur, cur+1) {
			break
		}
	}
	r.total.Inc()
	return nil
}

// refuse counts a request answered before it took a slot because it
// could not be read whole (reason: refusedBadRequest or
// refusedBodyBuffer).
func (r *Router) refuse(reason int) {
	r.total.Inc()
	r.refused[reason].Inc()
}

// MetricsSet returns the set holding the router's Prometheus metrics.
func (r *Router) MetricsSet() *metrics.Set { return r.set }

// Health is the router's state as /health reports it.
type Health struct {
	// Status is "healthy" (ready), "starting" (not ready yet) or
	// "unhealthy" (draining, or no upstream can take traffic).
	Status                string `json:"status"`
	ActiveRequests        int64  `json:"active_requests"`
	MaxConcurrentRequests int64  `json:"max_concurrent_requests"`
}

// Health statuses.
const (
	StatusHealthy   = "healthy"
	StatusStarting  = "starting"
	StatusUnhealthy = "unhealthy"
)

// Health returns the current health.
func (r *Router) Health() Health {
	h := Health{Status: StatusStarting, ActiveRequests: r.active.Load(), MaxConcurrentRequests: r.max.Load()}
	switch {
	case r.drain.Load(), r.noUp.Load():
		h.Status = StatusUnhealthy
	case r.ready.Load():
		h.Status = StatusHealthy
	}
	return h
}

// Metrics is a snapshot of the router's counters. Every request on the
// proxy path (not /health, /ready, /metrics) is counted once in Total,
// when it takes a slot or is turned away, so once traffic stops
//
//	Total == Completed + Failed + Rejected + Refused
//
// (TGI's tgi_request_count likewise counts every request, overloaded and
// invalid ones included). RejectedByPlugin counts admitted requests a
// plugin answered itself; they are also in Completed or Failed.
type Metrics struct {
	// Total: every request (sluice_requests_total).
	Total uint64
	// Completed, Failed: outcomes of the requests that took a slot.
	Completed, Failed uint64
	// Rejected: answered 429 because every slot was taken
	// (sluice_requests_rejected_total{reason="overloaded"}).
	Rejected uint64
	// Refused: answered before taking a slot because the request could
	// not be read whole: 400, 408, 413, 414, 431, 501 (reason
	// "bad_request") or 503 with the body buffer full
	// ("body_buffer_full"). Requests fasthttp could not parse count here.
	Refused          uint64
	RejectedByPlugin uint64
	Active, Max      int64
}

// Metrics returns a snapshot of the counters. Counters are read one by one,
// so a snapshot taken under load may be off by the requests in flight.
func (r *Router) Metrics() Metrics {
	return Metrics{
		Total:            r.total.Get(),
		Completed:        r.completed.Get(),
		Failed:           r.failed.Get(),
		Rejected:         r.rejected.Get(),
		Refused:          r.refused[refusedBadRequest].Get() + r.refused[refusedBodyBuffer].Get(),
		RejectedByPlugin: r.byPlugin.Get(),
		Active:           r.active.Load(),
		Max:              r.max.Load(),
	}
}

// SuccessRate is the share of finished requests that completed:
// completed / (completed + failed + rejected + refused), or 1 with no
// finished request. A 429 or a refused request is not a success (as in
// TGI, where tgi_request_failure counts overloaded and validation
// errors, and in Envoy, where they are 4xx/5xx answers); the reason
// label of sluice_requests_rejected_total tells them apart.
func (m Metrics) SuccessRate() float64 {
	done := m.Completed + m.Failed + m.Rejected + m.Refused
	if done == 0 {
		return 1
	}
	return float64(m.Completed) / float64(done)
}

// Utilization is active / max slots, in [0, 1].
func (m Metrics) Utilization() float64 {
	if m.Max == 0 {
		return 0
	}
	return float64(m.Active) / float64(m.Max)
}

// The HELP texts of the families package proxy creates (here,
// server.go, usage.go, disconnect.go, respond.go, send.go, tls.go). A family
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

const (
	guardFree uint32 = iota
	guardHeld
	guardReleased
)

// Guard holds one admission slot. The first of Complete, Fail or Release
// gives the slot back and records the outcome; later calls are no-ops.
// Release without an outcome counts the request as failed, so
//
//	g, err := router.TryAcquire()
//	if err != nil { … 429 … }
//	defer g.Release()
//	… work, which may panic …
//	g.Complete()
//
// frees the slot exactly once on every path. A Guard is safe for concurrent
// use.
type Guard struct {
	r     *Router
	state atomic.Uint32
}

// Complete releases the slot and counts the request as completed.
func (g *Guard) Complete() { g.finish(true) }

// Fail releases the slot and counts the request as failed.
func (g *Guard) Fail() { g.finish(false) }

// Release releases the slot if Complete or Fail has not, counting the
// request as failed.
func (g *Guard) Release() { g.finish(false) }

// Held reports whether the guard still holds its slot.
func (g *Guard) Held() bool { return g.state.Load() == guardHeld }

func (g *Guard) finish(ok bool) {
	if g == nil || !g.state.CompareAndSwap(guardHeld, guardReleased) {
		return
	}
	if ok {
		g.r.completed.Inc()
	} else {
		g.r.failed.Inc()
	}
	g.r.active.Add(-1)
}
