package proxy

import (
	"errors"
	"math"
	"strconv"
	"strings"

	"github.com/sluice-proxy/sluice/proxy/upstream"
)

// ErrUnknownEndpoint is returned by Exchange.SetEndpoint for an endpoint
// that is not in the request's pool (or in no pool).
var ErrUnknownEndpoint = errors.New("proxy: unknown endpoint")

// ErrEndpointChosen is returned by Exchange.SetEndpoint once the endpoint
// has been chosen (in the response phase).
var ErrEndpointChosen = errors.New("proxy: the endpoint is already chosen")

// SetEndpoint sends the request to a given endpoint, bypassing the pool's
// load-balancing policy, as the Gateway API Inference Extension's
// endpoint picker does with x-gateway-destination-endpoint. spec is
// "host:port" (or the endpoint's URL as configured), or a comma-separated
// list of them: fallbacks, tried in order. The pick still respects health
// (an endpoint out of rotation is skipped, unless the whole pool is) and
// the per-endpoint cap; retries move on along the list. When no listed
// endpoint can take the request it gets 429 (all listed at their cap) or
// 503; it is never queued and never sent elsewhere.
//
// Every listed endpoint must belong to the pool set with SetUpstream or,
// without one, to a single pool, which SetEndpoint then selects (the
// first in configuration order that holds them all). Otherwise nothing
// changes and the error wraps ErrUnknownEndpoint. An empty spec clears an
// earlier choice. Call it in the request phase: afterwards it returns
// ErrEndpointChosen.
func (ex *Exchange) SetEndpoint(spec string) error {
	if ex.endpoint != "" {
		return ErrEndpointChosen
	}
	if strings.TrimSpace(spec) == "" {
		if ex.pinPool != nil && ex.upstream == ex.pinPool.Name() && ex.impliedPool {
			ex.upstream = ""
		}
		ex.pinned, ex.pinPool, ex.impliedPool = ex.pinned[:0], nil, false
		return nil
	}
	ps := ex.srv.pools
	if ex.upstream != "" && !ex.impliedPool {
		p := ps.ByName(ex.upstream)
		if bad, ok := ex.pinTo(p, spec); !ok {
			return &unknownEndpointError{spec: bad, pool: p.Name()}
		}
		return nil
	}
	for _, p := range ps.List() {
		if _, ok := ex.pinTo(p, spec); ok {
			ex.upstream, ex.impliedPool = p.Name(), true
			return nil
		}
	}
	return &unknownEndpointError{spec: spec}
}

// unknownEndpointError names what SetEndpoint refused.
type unknownEndpointError struct{ spec, pool string }

func (e *unknownEndpointError) Error() string {
	if e.pool != "" {
		return ErrUnknownEndpoint.Error() + " " + strconv.Quote(e.spec) + " in upstream pool " +
			strconv.Quote(e.pool) + " (want the host:port of one of its endpoints)"
	}
	return ErrUnknownEndpoint.Error() + ": no upstream pool holds every endpoint of " + strconv.Quote(e.spec)
}

func (e *unknownEndpointError) Unwrap() error { return ErrUnknownEndpoint }

// pinTo resolves spec against p. On failure it leaves the earlier pin
// untouched and returns the entry that is not in p.
func (ex *Exchange) pinTo(p *upstream.Pool, spec string) (bad string, ok bool) {
	n := len(ex.pinned)
	rest := spec
	for rest != "" {
		var item string
		item, rest, _ = strings.Cut(rest, ",")
		item = strings.TrimSpace(item)
		i := -1
		if item != "" {
			i = p.EndpointIndex(item)
		}
		if i < 0 {
			ex.pinned = ex.pinned[:n]
			return item, false
		}
		ex.pinned = append(ex.pinned, int32(i))
	}
	ex.pinned = append(ex.pinned[:0], ex.pinned[n:]...)
	ex.pinPool = p
	return "", true
}

// Endpoint is the "host:port" of the endpoint the request was sent to
// (the last one, after retries), or "" before it is chosen.
func (ex *Exchange) Endpoint() string { return ex.endpoint }

// AppendUpstreamsJSON appends a JSON snapshot of every pool to dst, for
// endpoint pickers. The shape, with pools and endpoints in configuration
// order:
//
//	{"pools":{"a":{"policy":"least_queue","healthy":2,"total":3,
//	  "max_in_flight":32,"queued":0,
//	  "endpoints":{"127.0.0.1:8001":{"healthy":true,"ejected":false,
//	    "weight":1,"in_flight":0,"queue_depth":0,"running":0,
//	    "kv_cache_usage":0.1}, …}}, …}}
//
// "healthy" is true when the endpoint is in rotation (passes its active
// checks, not ejected); "max_in_flight" is the pool's per-endpoint cap;
// "queued" counts requests waiting for an endpoint of the pool;
// queue_depth, running and kv_cache_usage are the last values scraped
// from the engine (0 without metrics_path). Values are read one by one,
// so a snapshot under load is approximate. It allocates only when dst
// must grow.
func (ex *Exchange) AppendUpstreamsJSON(dst []byte) []byte {
	return appendPoolsJSON(dst, ex.srv.pools)
}

func appendPoolsJSON(b []byte, ps *upstream.Pools) []byte {
	b = append(b, `{"pools":{`...)
	for i, p := range ps.List() {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendJSONString(b, p.Name())
		b = append(b, `:{"policy":`...)
		b = appendJSONString(b, p.Policy())
		b = append(b, `,"healthy":`...)
		b = strconv.AppendInt(b, int64(p.Healthy()), 10)
		b = append(b, `,"total":`...)
		b = strconv.AppendInt(b, int64(len(p.Endpoints())), 10)
		b = append(b, `,"max_in_flight":`...)
		b = strconv.AppendInt(b, p.MaxBatch(), 10)
		b = append(b, `,"queued":`...)
		b = strconv.AppendInt(b, int64(p.Queued()), 10)
		b = append(b, `,"endpoints":{`...)
		for j, ep := range p.Endpoints() {
			if j > 0 {
				b = append(b, ',')
			}
			b = appendJSONString(b, ep.Addr)
			b = append(b, `:{"healthy":`...)
			b = strconv.AppendBool(b, ep.Up())
			b = append(b, `,"ejected":`...)
			b = strconv.AppendBool(b, ep.Ejected())
			b = append(b, `,"weight":`...)
			b = strconv.AppendInt(b, int64(ep.Weight), 10)
			b = append(b, `,"in_flight":`...)
			b = strconv.AppendInt(b, ep.InFlight(), 10)
			b = append(b, `,"queue_depth":`...)
			b = appendJSONFloat(b, ep.QueueDepth())
			b = append(b, `,"running":`...)
			b = appendJSONFloat(b, ep.Running())
			b = append(b, `,"kv_cache_usage":`...)
			b = appendJSONFloat(b, ep.KVCacheUsage())
			b = append(b, '}')
		}
		b = append(b, "}}"...)
	}
	return append(b, "}}"...)
}

// appendJSONFloat appends v as a JSON number (0 for NaN and infinities,
// which JSON cannot carry).
func appendJSONFloat(b []byte, v float64) []byte {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		v = 0
	}
	return strconv.AppendFloat(b, v, 'g', -1, 64)
}
