package proxy

import (
	"errors"
	"math"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/sluice-proxy/sluice/proxy/internal/jsonspan"
	"github.com/sluice-proxy/sluice/proxy/upstream"
)

// Exchange is one request and its response as filters see them: the
// extension point through which a Filter reads and changes a request. It is
// owned by the proxy, pooled, and valid from Filter.NewStream until the
// Stream's OnDone returns.
//
// Phase callbacks run on the request's goroutine and may use every method.
// A filter that acts on a paused request from another goroutine (a timer, a
// callout reply) must bracket that work with BeginAsync and EndAsync; all
// other methods are not safe for concurrent use.
type Exchange struct {
	// What a filter may read beyond its request: the pools (SetUpstream,
	// SetEndpoint, AppendUpstreamsJSON) and the admission counts. Set once
	// per pooled state; never the Server.
	pools  *upstream.Pools
	router *Router
	// routeOf is the pool the routes choose for the request as it stands
	// (UpstreamHosts); set once per pooled state.
	routeOf func(*Exchange) *upstream.Pool

	reqHeaders  Headers
	reqBody     []byte
	respHeaders Headers
	respBody    []byte

	requestID   []byte
	start       time.Time
	remoteAddr  net.Addr
	localAddr   net.Addr
	protocol    string
	status      int
	upstream    string
	endpoint    string         // chosen endpoint's "host:port", after selection
	pinned      []int32        // endpoints a filter chose (SetEndpoint), in order
	pinPool     *upstream.Pool // the pool pinned indexes into
	impliedPool bool           // upstream was set by SetEndpoint, not SetUpstream
	props       map[string][]byte

	local     localReply
	hasLocal  bool
	closeConn bool

	mu       sync.Mutex
	paused   bool
	resumeCh chan struct{}
	// failed is set by Fail; read once the pause ends (callFilter).
	failed atomic.Pointer[error]
}

type localReply struct {
	status  int
	details string
	headers Headers
	body    []byte
}

func (ex *Exchange) reset() {
	ex.reqHeaders.Reset()
	ex.reqBody = ex.reqBody[:0]
	ex.respHeaders.Reset()
	ex.respBody = ex.respBody[:0]
	ex.requestID = ex.requestID[:0]
	ex.start = time.Time{}
	ex.remoteAddr, ex.localAddr = nil, nil
	ex.protocol = ""
	ex.status = 0
	ex.upstream, ex.endpoint = "", ""
	ex.pinned, ex.pinPool, ex.impliedPool = ex.pinned[:0], nil, false
	clear(ex.props)
	ex.hasLocal, ex.closeConn = false, false
	ex.local.status, ex.local.details = 0, ""
	ex.local.headers.Reset()
	ex.local.body = ex.local.body[:0]
	ex.paused = false
	ex.failed.Store(nil)
	select { // drain a Resume that raced with the end of a pause
	case <-ex.resumeCh:
	default:
	}
}

// RequestHeaders returns the request's header map, pseudo-headers first.
// Changes are forwarded upstream and take part in route matching when made
// in the request phase.
func (ex *Exchange) RequestHeaders() *Headers { return &ex.reqHeaders }

// ResponseHeaders returns the response's header map, ":status" first. It is
// empty before the response phase.
func (ex *Exchange) ResponseHeaders() *Headers { return &ex.respHeaders }

// RequestBody returns the whole request body (a view, valid until
// SetRequestBody or the end of the request).
func (ex *Exchange) RequestBody() []byte { return ex.reqBody }

// SetRequestBody replaces the request body; b is copied. The forwarded
// Content-Length follows the new body.
func (ex *Exchange) SetRequestBody(b []byte) { ex.reqBody = append(ex.reqBody[:0], b...) }

// ResponseBody returns the response body seen by the current
// OnResponseBody call: the current chunk, or the whole body when an earlier
// pause made the proxy buffer it.
func (ex *Exchange) ResponseBody() []byte { return ex.respBody }

// SetResponseBody replaces what ResponseBody returns; b is copied and is
// what goes to the client.
func (ex *Exchange) SetResponseBody(b []byte) { ex.respBody = append(ex.respBody[:0], b...) }

// RequestID is the request's x-request-id (the client's, or generated).
func (ex *Exchange) RequestID() []byte { return ex.requestID }

// StartTime is when the proxy received the request.
func (ex *Exchange) StartTime() time.Time { return ex.start }

// RemoteAddr is the client's address (the TCP peer).
func (ex *Exchange) RemoteAddr() net.Addr { return ex.remoteAddr }

// LocalAddr is the address the request arrived on.
func (ex *Exchange) LocalAddr() net.Addr { return ex.localAddr }

// Protocol is the request's protocol, such as "HTTP/1.1".
func (ex *Exchange) Protocol() string { return ex.protocol }

// ResponseCode is the response status, or 0 before the response phase.
func (ex *Exchange) ResponseCode() int { return ex.status }

// Upstream is the pool the request goes to: the one a filter chose with
// SetUpstream (or implied with SetEndpoint), else "" until the route is
// chosen after the request phase.
func (ex *Exchange) Upstream() string { return ex.upstream }

// SetUpstream sends the request to the named pool, bypassing route
// matching. It returns ErrUnknownUpstream for a pool that is not configured.
func (ex *Exchange) SetUpstream(name string) error {
	p := ex.pools.ByName(name)
	if p == nil {
		return ErrUnknownUpstream
	}
	if ex.pinPool != nil && ex.pinPool != p { // endpoints of another pool
		ex.pinned, ex.pinPool = ex.pinned[:0], nil
	}
	ex.upstream, ex.impliedPool = name, false
	return nil
}

// ActiveRequests is the number of requests holding a slot now.
func (ex *Exchange) ActiveRequests() int64 { return ex.router.active.Load() }

// MaxConcurrentRequests is the configured slot count.
func (ex *Exchange) MaxConcurrentRequests() int64 { return ex.router.max.Load() }

// Property returns a value a filter stored with SetProperty, for names the
// proxy does not define itself.
func (ex *Exchange) Property(name string) ([]byte, bool) {
	v, ok := ex.props[name]
	return v, ok
}

// SetProperty stores a per-request value under name (copied); filters use
// it to pass data to each other.
func (ex *Exchange) SetProperty(name string, value []byte) {
	if ex.props == nil {
		ex.props = make(map[string][]byte)
	}
	ex.props[name] = append(ex.props[name][:0], value...)
}

// SendLocalResponse answers the client with status, headers and body
// instead of forwarding (or instead of the upstream's response, if called
// in the response phase before anything was sent). The filter chain stops.
// details names the reason in the access log. headers may be nil.
func (ex *Exchange) SendLocalResponse(status int, details string, headers *Headers, body []byte) {
	ex.hasLocal = true
	ex.local.status = status
	ex.local.details = details
	ex.local.headers.Reset()
	if headers != nil {
		ex.local.headers.CopyFrom(headers)
	}
	ex.local.body = append(ex.local.body[:0], body...)
	ex.wake()
}

// CloseStream aborts the request: the client's connection is closed after
// a 503, and the upstream request (if any) is cancelled.
func (ex *Exchange) CloseStream() {
	ex.closeConn = true
	ex.SendLocalResponse(503, "closed_by_filter", nil, nil)
}

// Resume continues a request paused by a filter. Calling it when the
// request is not paused is a no-op.
func (ex *Exchange) Resume() { ex.wake() }

// Fail ends a filter's pause with err, at once: the request goes on as if
// the paused callback had returned err, so the filter's failure policy
// applies (fail open: on without the filter; fail closed: 503). A filter
// calls it for a request it paused and can no longer resume, for example
// when the plugin instance holding the request's state died; without it
// the request would wait out the pause timeout. Fail takes no lock, so it
// may be called from any goroutine, between BeginAsync and EndAsync too,
// but only for a request paused (or pausing) on that filter: one that
// resumed or ended must be left alone, as with Resume.
func (ex *Exchange) Fail(err error) {
	ex.failed.Store(&err)
	ex.wake()
}

// BeginAsync must be called before a filter touches the Exchange from a
// goroutine other than the request's (to deliver a timer or callout reply
// to a paused request). It reports false when the request is no longer
// paused (it resumed, timed out, or ended): the filter must then leave the
// Exchange alone. On true, the caller must call EndAsync when done; the
// request cannot time out or end in between.
func (ex *Exchange) BeginAsync() bool {
	ex.mu.Lock()
	if !ex.paused {
		ex.mu.Unlock()
		return false
	}
	return true
}

// EndAsync ends the work begun by a successful BeginAsync.
func (ex *Exchange) EndAsync() { ex.mu.Unlock() }

func (ex *Exchange) wake() {
	select {
	case ex.resumeCh <- struct{}{}:
	default:
	}
}

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
// ErrEndpointChosen. It keeps no reference to spec but in the error it
// returns (SetEndpointBytes relies on it).
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
	ps := ex.pools
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

// SetEndpointBytes is SetEndpoint for a spec in a buffer the caller
// reuses (a Wasm guest's memory): it keeps no reference to spec and
// copies it only into the error when it fails, so that a routing plugin
// costs the host no allocation per request.
func (ex *Exchange) SetEndpointBytes(spec []byte) error {
	err := ex.SetEndpoint(unsafe.String(unsafe.SliceData(spec), len(spec)))
	if e, ok := err.(*unknownEndpointError); ok {
		e.spec = strings.Clone(e.spec)
	}
	return err
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
	return appendPoolsJSON(dst, ex.pools)
}

func appendPoolsJSON(b []byte, ps *upstream.Pools) []byte {
	b = append(b, `{"pools":{`...)
	for i, p := range ps.List() {
		if i > 0 {
			b = append(b, ',')
		}
		b = jsonspan.AppendString(b, p.Name())
		b = append(b, `:{"policy":`...)
		b = jsonspan.AppendString(b, p.Policy())
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
			b = jsonspan.AppendString(b, ep.Addr)
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
