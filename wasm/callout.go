package wasm

import (
	"context"
	"errors"
	"time"

	"github.com/sluice-proxy/sluice/proxy"
	"github.com/tetratelabs/wazero/api"
)

// HTTP callouts: proxy_http_call sends a request to an upstream pool on a
// goroutine; the reply comes back as proxy_on_http_call_response on the
// root context of the instance that made the call, one callback at a time
// like every other call into that instance.

// Callouts sends the HTTP requests plugins make with proxy_http_call. The
// Host uses it from many goroutines at once: implementations must be safe
// for concurrent use. HTTPCallouts is the implementation over the proxy's
// upstream pools; HostConfig.Callouts can replace it.
type Callouts interface {
	// HasPool reports whether pool names an upstream pool callouts can
	// reach. proxy_http_call to any other name fails with BAD_ARGUMENT.
	HasPool(pool string) bool
	// Do sends req to an endpoint of pool and returns the whole response.
	// ctx carries the call's timeout and is cancelled when the request
	// that made the call ends or the plugin closes; Do must return soon
	// after. The host owns req until Do returns and the response after.
	Do(ctx context.Context, pool string, req *CalloutRequest) (*CalloutResponse, error)
}

// CalloutRequest is one proxy_http_call. Header and Trailer hold the
// fields the plugin sent, lower-cased, without pseudo-headers.
type CalloutRequest struct {
	Method    string // ":method"
	Path      string // ":path", with the query
	Authority string // ":authority": the Host header; "": the endpoint's host
	Scheme    string // ":scheme" if the plugin sent one, else ""
	Header    proxy.Headers
	Body      []byte
	Trailer   proxy.Headers
}

// CalloutResponse is the reply to a CalloutRequest. Header and Trailer
// hold lower-cased names and no pseudo-headers: the host presents
// StatusCode to the plugin as ":status".
type CalloutResponse struct {
	StatusCode int
	// Reason is the status line's reason phrase ("OK"), returned with the
	// code by proxy_get_status.
	Reason  string
	Header  proxy.Headers
	Body    []byte
	Trailer proxy.Headers
}

// Callout limits.
const (
	// DefaultCalloutTimeout applies to a proxy_http_call with timeout 0.
	DefaultCalloutTimeout = 10 * time.Second
	// MaxCalloutTimeout caps the timeout a plugin asks for.
	MaxCalloutTimeout = time.Minute
	// MaxCalloutRequestBody caps the body of a proxy_http_call (larger is
	// BAD_ARGUMENT).
	MaxCalloutRequestBody = 1 << 20
	// maxCalloutsPerInstance caps the calls in flight from one instance
	// (more is INTERNAL_FAILURE).
	maxCalloutsPerInstance = 1024
	// maxStatusMessage caps the failure text proxy_get_status returns.
	maxStatusMessage = 256
)

// Waits between attempts to deliver a reply to a request that returned
// PAUSE but that the proxy has not started holding yet.
const (
	minDeliverWait = 20 * time.Microsecond
	maxDeliverWait = time.Millisecond
)

// callout is one HTTP call in flight, owned by its instance (in.callouts,
// guarded by in.mu) until its reply is delivered.
type callout struct {
	id       uint32
	streamID uint32 // HTTP context that made the call; 0: the root context
	cancel   context.CancelFunc

	// The reply, written by the call's goroutine before it takes in.mu to
	// deliver it, read by host functions during the callback.
	headers  proxy.Headers // map 6: ":status", then the response headers
	trailers proxy.Headers // map 7
	body     []byte        // buffer 4
	code     uint32        // proxy_get_status: HTTP status, 0 on failure
	message  []byte        // reason phrase, or what went wrong
	// redis: a proxy_redis_call (abi_redis.go). body is then the RESP
	// reply (buffer 9) and code the call's status; the reply goes to
	// proxy_on_redis_call_response.
	redis bool
}

// Callout results: the "result" label of sluice_plugin_http_calls_total.
const (
	calloutOK        = "ok"
	calloutTimeout   = "timeout"
	calloutCancelled = "cancelled"
	calloutError     = "error"
)

var calloutResults = [...]string{calloutOK, calloutTimeout, calloutCancelled, calloutError}

func hostHttpCall(ctx context.Context, mod api.Module, stack []uint64) {
	in := callerOf(ctx, stack)
	if in == nil {
		return
	}
	stack[0] = uint64(in.httpCall(mod, stack))
}

// httpCall implements proxy_http_call(upstream, headers, body, trailers,
// timeout_ms, ret_call_id). in.mu must be held.
func (in *instance) httpCall(mod api.Module, stack []uint64) status {
	a := in.args(mod, stack)
	pool, hdrs, body, trls := a.bytes(0), a.bytes(2), a.bytes(4), a.bytes(6)
	timeout := time.Duration(u32(stack[8])) * time.Millisecond
	retID := a.retU32(9)
	if !a.ok {
		return statusInvalidMemoryAccess
	}
	co := in.p.host.currentCallouts()
	if co == nil || len(body) > MaxCalloutRequestBody {
		return statusBadArgument
	}
	poolName := string(pool)
	if !co.HasPool(poolName) {
		return statusBadArgument
	}
	req := new(CalloutRequest)
	if !decodeCalloutHeaders(req, hdrs) || !decodeTrailers(&req.Trailer, trls) {
		return statusBadArgument
	}
	if len(in.callouts) >= maxCalloutsPerInstance {
		return statusInternalFailure
	}
	req.Body = append([]byte(nil), body...)
	if timeout == 0 {
		timeout = DefaultCalloutTimeout
	}
	timeout = min(timeout, MaxCalloutTimeout)

	c := new(callout)
	return in.startCall(a.mem, retID, c, timeout, func(ctx context.Context) { in.runCallout(ctx, co, c, poolName, req) })
}

// startCall enters c in the instance's table of calls in flight under a
// new id, which it writes to the guest at retID, and runs run on a tracked
// goroutine with a context that ends after timeout or when the plugin
// closes (c.cancel cancels it). HTTP and Redis calls share it, so they
// share ids, the cap and the delivery (deliverCallout). in.mu must be held.
func (in *instance) startCall(mem guestMemory, retID uint32, c *callout, timeout time.Duration, run func(context.Context)) status {
	c.id = in.newCallID()
	if in.eff != nil {
		c.streamID = in.eff.id
	}
	ctx, cancel := context.WithTimeout(in.p.ctx, timeout)
	c.cancel = cancel
	if !writeGuestU32(mem, retID, c.id) {
		cancel()
		return statusInvalidMemoryAccess
	}
	in.callouts[c.id] = c
	if !in.p.goTracked(func() { run(ctx) }) {
		delete(in.callouts, c.id)
		cancel()
		return statusInternalFailure
	}
	return statusOK
}

// newCallID returns a call id not in use on the instance (never 0).
func (in *instance) newCallID() uint32 {
	for {
		in.nextCallID++
		if id := in.nextCallID; id != 0 && in.callouts[id] == nil {
			return id
		}
	}
}

// runCallout is the goroutine of one HTTP call: it sends the request, then
// delivers the reply (or the failure) to the instance.
func (in *instance) runCallout(ctx context.Context, co Callouts, c *callout, pool string, req *CalloutRequest) {
	resp, err := co.Do(ctx, pool, req)
	result := c.setReply(ctx, resp, err)
	c.cancel()
	in.p.metrics.calloutsOf(result).Inc()
	if result != calloutOK && result != calloutCancelled {
		in.p.log.Debug("wasm: HTTP call failed", "pool", pool, "path", req.Path, "error", err)
	}
	in.deliverCallout(c)
}

// setReply records the outcome of the call and returns its result label.
func (c *callout) setReply(ctx context.Context, resp *CalloutResponse, err error) string {
	if err == nil && resp == nil {
		err = errors.New("wasm: Callouts.Do returned no response and no error")
	}
	if err != nil {
		result, msg := calloutError, err.Error()
		switch {
		case errors.Is(ctx.Err(), context.DeadlineExceeded):
			result, msg = calloutTimeout, "timeout"
		case ctx.Err() != nil:
			result, msg = calloutCancelled, "cancelled"
		}
		if len(msg) > maxStatusMessage {
			msg = msg[:maxStatusMessage]
		}
		c.message = []byte(msg)
		return result
	}
	c.code = uint32(resp.StatusCode)
	c.message = []byte(resp.Reason)
	var buf [3]byte
	c.headers.Add(hdrStatus, appendStatus(buf[:0], resp.StatusCode))
	for i := 0; i < resp.Header.Len(); i++ {
		k, v := resp.Header.At(i)
		c.headers.Add(k, v)
	}
	c.trailers.CopyFrom(&resp.Trailer)
	c.body = resp.Body
	return calloutOK
}

var hdrStatus = []byte(":status")

// appendStatus appends a three-digit status code (out-of-range codes are
// clamped to 0 or 999).
func appendStatus(dst []byte, code int) []byte {
	code = max(0, min(code, 999))
	return append(dst, byte('0'+code/100), byte('0'+code/10%10), byte('0'+code%10))
}

// deliverCallout calls proxy_on_http_call_response (for a Redis call:
// proxy_on_redis_call_response) for c on the root context. If the call came from a request that returned PAUSE but that
// the proxy does not hold yet (the reply beat the proxy to its wait), it
// waits for the pause, so that the plugin's proxy_continue_stream is not
// lost. A reply for a dead instance or a closing plugin is dropped.
func (in *instance) deliverCallout(c *callout) {
	wait := minDeliverWait
	for {
		in.mu.Lock()
		if in.dead.Load() || in.p.closing() {
			delete(in.callouts, c.id)
			in.mu.Unlock()
			return
		}
		if s := in.streams[c.streamID]; s != nil && s.awaiting {
			if !s.ex.BeginAsync() {
				in.mu.Unlock()
				select {
				case <-in.p.done:
				case <-time.After(wait):
				}
				wait = min(2*wait, maxDeliverWait)
				continue
			}
			s.ex.EndAsync()
		}
		delete(in.callouts, c.id)
		in.callout = c
		cb, args := cbHttpCallResponse, [5]uint64{rootContextID, uint64(c.id), uint64(c.headers.Len()), uint64(len(c.body)), uint64(c.trailers.Len())}
		if c.redis {
			cb, args = cbRedisCallResponse, [5]uint64{rootContextID, uint64(c.id), uint64(c.code), uint64(len(c.body))}
		}
		_, err := in.callArgs(cb, nil, args, in.p.callTimeout)
		in.callout = nil
		in.mu.Unlock()
		if err != nil {
			in.p.log.Warn("wasm: "+cb.String()+" failed", "error", err)
		}
		return
	}
}

// closing reports whether Close has started.
func (p *Plugin) closing() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

func hostGetStatus(ctx context.Context, mod api.Module, stack []uint64) {
	in := callerOf(ctx, stack)
	if in == nil {
		return
	}
	mem := in.memOf(mod)
	retCode, retPtr, retSize := u32(stack[0]), u32(stack[1]), u32(stack[2])
	if !checkRetPair(mem, retPtr, retSize) || !inBounds(mem.Size(), retCode, 4) {
		stack[0] = uint64(statusInvalidMemoryAccess)
		return
	}
	c := in.callout
	if c == nil {
		// Only proxy_on_http_call_response and
		// proxy_on_redis_call_response have a status to report (the gRPC
		// calls are not implemented).
		stack[0] = uint64(statusNotFound)
		return
	}
	st := in.returnBytes(ctx, mod, c.message, retPtr, retSize)
	stack[0] = uint64(thenWriteU32(st, mem, retCode, c.code))
}

// decodeCalloutHeaders fills req from the serialized headers of a
// proxy_http_call: ":method", ":path" (starting with '/') and ":authority"
// are required, ":scheme" optional, other pseudo-headers ignored. Every
// field must pass validField. ":authority" must be present but may be
// empty, as in Envoy: the call then carries the endpoint's own host
// (CalloutRequest.Authority ""). It reports false for a malformed map, a
// missing or invalid pseudo-header, or an invalid field.
func decodeCalloutHeaders(req *CalloutRequest, data []byte) bool {
	hasAuthority := false
	ok := eachPair(data, func(k, v []byte) bool {
		if !validField(k, v) {
			return false
		}
		if k[0] != ':' {
			req.Header.Add(k, v)
			return true
		}
		switch {
		case equalFoldASCII(k, ":method"):
			req.Method = string(v)
		case equalFoldASCII(k, ":path"):
			if v[0] != '/' { // "*" has no place in a URL
				return false
			}
			req.Path = string(v)
		case equalFoldASCII(k, ":authority"):
			req.Authority, hasAuthority = string(v), true
		case equalFoldASCII(k, ":scheme"):
			req.Scheme = string(v)
		}
		return true
	})
	return ok && req.Method != "" && req.Path != "" && hasAuthority
}

// decodeTrailers fills h from serialized trailers (empty data: none).
func decodeTrailers(h *proxy.Headers, data []byte) bool {
	return eachPair(data, func(k, v []byte) bool {
		if !isToken(k) || !isFieldValue(v) {
			return false
		}
		h.Add(k, v)
		return true
	})
}

// calloutsInFlight counts the HTTP calls whose reply has not been
// delivered or dropped yet (for tests).
func (p *Plugin) calloutsInFlight() int {
	n := 0
	for i := range p.slots {
		if in := p.slots[i].inst.Load(); in != nil {
			in.mu.Lock()
			n += len(in.callouts)
			in.mu.Unlock()
		}
	}
	return n
}
