package proxy

import (
	"errors"
	"io"

	"github.com/sluice-proxy/sluice/proxy/upstream"
	"github.com/valyala/fasthttp"
)

// Sending a request to the pool's endpoints, with retries.
//
// Each attempt is one HostClient.Do and reaches the endpoint at most once:
// fasthttp's own retries (up to 5 sends of a GET to the same endpoint
// after a timeout or reset) are off (upstream.go). The one exception is a
// request found unsent on a pooled connection the upstream had closed,
// which goes on a new connection (staleconn.go).
//
// A request is retried, on another endpoint of the same pool, after
//
//   - no response: a connection that could not be made (refused, dial
//     timeout, no free connection), or that failed or was reset before
//     the response headers arrived;
//   - a 502, 503 or 429 answer: the endpoint could not take the request
//     (a gateway in front of the engine failed, the engine is loading or
//     draining, or it sheds load).
//
// It is not retried after a timeout waiting for the headers (the engine
// may still be generating: a second attempt would double the work), after
// other statuses (a 500 may be the request's own fault), nor once the
// response was handed to the client: the loop below decides on the
// headers alone, before respond sends anything, and discards the body of
// a response it retries. Request bodies can always be sent again because
// Sluice reads them whole (up to max_request_body_size) before choosing
// an upstream; no request body is ever streamed to an endpoint.

// maxDiscard bounds the body read from a response being retried, so its
// connection can be reused; a longer body closes the connection instead.
const maxDiscard = 64 << 10

// send chooses an endpoint and forwards the request, retrying as above;
// it answers the client in every case.
func (rs *requestState) send(ctx *fasthttp.RequestCtx) {
	s := rs.srv
	p := rs.pool
	req := &ctx.Request
	rs.watch.setClient(ctx.Conn())
	ep, kind := rs.firstEndpoint()
	if ep == nil {
		req.ResetBody()
		s.writePoolError(ctx, p, kind)
		return
	}
	for attempt := 0; ; attempt++ {
		rs.useEndpoint(ep)
		err := rs.roundTrip(ep, req)
		if err == errClientGone {
			req.ResetBody()
			rs.clientGone(ctx)
			return
		}
		if err != nil {
			ep.RecordFailure()
			s.upstreamMet[p].inc(0)
			if attempt < p.Retries() && retryableError(err) {
				if next := rs.nextEndpoint(); next != nil {
					ep = rs.switchTo(next)
					continue
				}
			}
			req.ResetBody() // rs.body backs it; rs outlives nothing of ctx
			rs.upErr = err
			kind := errBadGateway
			if isTimeout(err) {
				kind = errTimeout
			}
			s.writeError(ctx, kind)
			return
		}
		status := rs.resp.StatusCode()
		s.upstreamMet[p].inc(status)
		if status >= 500 {
			ep.RecordFailure()
		} else {
			ep.RecordSuccess()
		}
		if attempt < p.Retries() && retryableStatus(status) {
			if next := rs.nextEndpoint(); next != nil {
				rs.discardResponse()
				ep = rs.switchTo(next)
				continue
			}
		}
		req.ResetBody()
		rs.status = status
		rs.respond(ctx)
		return
	}
}

// firstEndpoint takes a slot on the endpoint a filter chose or on one the
// policy picks (waiting in the pool's queue if configured).
func (rs *requestState) firstEndpoint() (*upstream.Endpoint, errorKind) {
	p := rs.pool
	var ep *upstream.Endpoint
	var err error
	if ex := &rs.ex; ex.pinPool == p && len(ex.pinned) > 0 {
		ep, err = p.AcquirePinned(ex.pinned)
	} else {
		ep, err = p.Acquire(&rs.waiter)
	}
	switch err {
	case nil:
		return ep, 0
	case upstream.ErrSaturated:
		return nil, errPoolSaturated
	case upstream.ErrQueueTimeout:
		return nil, errQueueTimeout
	}
	return nil, errNoEndpoint
}

// nextEndpoint takes a slot on an endpoint not tried yet: the next one a
// filter listed, or one the policy picks. It never waits.
func (rs *requestState) nextEndpoint() *upstream.Endpoint {
	p := rs.pool
	if ex := &rs.ex; ex.pinPool == p && len(ex.pinned) > 0 {
		ep, _ := p.PickPinned(ex.pinned, rs.tried)
		return ep
	}
	return p.Pick(rs.tried)
}

// useEndpoint makes ep, whose slot the request holds, its current one.
func (rs *requestState) useEndpoint(ep *upstream.Endpoint) {
	rs.ep = ep
	rs.tried = append(rs.tried, ep)
	rs.ex.endpoint = ep.Addr
}

// switchTo gives back the current endpoint's slot for a retry on next.
func (rs *requestState) switchTo(next *upstream.Endpoint) *upstream.Endpoint {
	rs.pool.Release(rs.ep)
	rs.ep = nil
	rs.pool.CountRetry()
	return next
}

// discardResponse drops a response that is being retried: a short body
// is read to its end so the connection goes back to the pool; a longer
// one closes the connection.
func (rs *requestState) discardResponse() {
	eof := false
	if st := rs.resp.BodyStream(); st != nil {
		if cap(rs.chunk) == 0 {
			rs.chunk = make([]byte, 16<<10)
		}
		for total := 0; total < maxDiscard; {
			n, err := st.Read(rs.chunk[:cap(rs.chunk)])
			total += n
			if err != nil {
				eof = err == io.EOF
				break
			}
		}
	}
	_ = rs.resp.CloseBodyStream()
	gone := rs.watch.unwatch()
	rs.releaseUpstream(eof && !gone)
}

// retryableError reports whether a failed exchange got no response at
// all, so that another endpoint may take the request.
func retryableError(err error) bool {
	return !isTimeout(err) || errors.Is(err, fasthttp.ErrDialTimeout)
}

// retryableStatus reports whether status means the endpoint could not
// take the request.
func retryableStatus(status int) bool {
	return status == fasthttp.StatusTooManyRequests || status == fasthttp.StatusBadGateway ||
		status == fasthttp.StatusServiceUnavailable
}
