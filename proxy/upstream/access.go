package upstream

import (
	"math"

	"github.com/VictoriaMetrics/metrics"
	"github.com/valyala/fasthttp"
)

// What the request path reads of the pools. Every method is safe for
// concurrent use and allocates nothing.

// List returns the pools in configuration order (read-only).
func (ps *Pools) List() []*Pool { return ps.list }

// ByName returns the named pool, or nil.
func (ps *Pools) ByName(name string) *Pool { return ps.m[name] }

// Metrics returns the set holding the pools' and endpoints' metrics: the
// gauges, and the counters and histograms unless Options.Cumulative
// holds them.
func (ps *Pools) Metrics() *metrics.Set { return ps.set }

// Name is the pool's configured name.
func (p *Pool) Name() string { return p.name }

// Index is the pool's position in the configuration.
func (p *Pool) Index() int { return p.idx }

// Endpoints returns the pool's endpoints in configuration order
// (read-only); an endpoint's position is its index for PickPinned.
func (p *Pool) Endpoints() []*Endpoint { return p.endpoints }

// Retries is how many times a request may be sent again.
func (p *Pool) Retries() int { return p.retries }

// MaxBatch is the cap of requests in flight per endpoint.
func (p *Pool) MaxBatch() int64 { return p.maxBatch }

// Policy is the load-balancing policy's name (config.LB…).
func (p *Pool) Policy() string { return lbPolicyNames[p.policy] }

// Healthy counts the endpoints in rotation.
func (p *Pool) Healthy() int { return int(p.upCount.Load()) }

// Queued counts the requests waiting for an endpoint.
func (p *Pool) Queued() int { return int(p.queue.n.Load()) }

// CountRetry counts one retry (sluice_upstream_retries_total).
func (p *Pool) CountRetry() { p.met.retries.Inc() }

// Serves reports whether the pool serves model (its models, "*", or an
// alias).
func (p *Pool) Serves(model []byte) bool {
	if p.anyModel {
		return true
	}
	if _, ok := p.models[string(model)]; ok {
		return true
	}
	_, ok := p.aliases[string(model)]
	return ok
}

// Pool is the endpoint's pool.
func (ep *Endpoint) Pool() *Pool { return ep.pool }

// Index is the endpoint's position in its pool.
func (ep *Endpoint) Index() int { return ep.idx }

// HostClient is the client that proxied requests to ep use.
func (ep *Endpoint) HostClient() *fasthttp.HostClient { return ep.hc }

// InFlight counts the requests holding a slot on ep.
func (ep *Endpoint) InFlight() int64 { return ep.inFlight.Load() }

// Up reports whether ep is in rotation.
func (ep *Endpoint) Up() bool { return ep.up.Load() }

// Ejected reports whether passive ejection took ep out of rotation.
func (ep *Endpoint) Ejected() bool { return ep.ejected.Load() }

// Failures counts ep's consecutive failures (passive ejection).
func (ep *Endpoint) Failures() int { return int(ep.fails.Load()) }

// QueueDepth, Running and KVCacheUsage are the load ep's engine last
// reported (0 until a scrape succeeds).
func (ep *Endpoint) QueueDepth() float64 { return math.Float64frombits(ep.waiting.Load()) }

// Running is the engine's count of running requests.
func (ep *Endpoint) Running() float64 { return math.Float64frombits(ep.running.Load()) }

// KVCacheUsage is the engine's KV-cache usage, 0 to 1.
func (ep *Endpoint) KVCacheUsage() float64 { return math.Float64frombits(ep.kvUsage.Load()) }

// FailsActiveChecks reports whether active health checks took ep out of
// rotation.
func (ep *Endpoint) FailsActiveChecks() bool {
	ep.mu.Lock()
	defer ep.mu.Unlock()
	return ep.activeDown
}
