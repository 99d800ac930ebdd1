package proxy

import (
	"bufio"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/netip"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/sluice-proxy/sluice/proxy/internal/hopheaders"
	"github.com/sluice-proxy/sluice/proxy/upstream"
	"github.com/valyala/fasthttp"
)

var (
	strXRequestID      = []byte("x-request-id")
	strXForwardedFor   = []byte("X-Forwarded-For")
	strXForwardedProto = []byte("X-Forwarded-Proto")
	strHTTP            = []byte("http")
	strHTTPS           = []byte("https")
	strEventStream     = []byte("text/event-stream")
	strXAccelBuffering = []byte("X-Accel-Buffering")
	strNo              = []byte("no")
	strCommaSpace      = []byte(", ")
)

// prepareUpstreamRequest turns the client's request into the upstream's:
// hop-by-hop headers stripped, X-Forwarded-* set, x-request-id set.
func (rs *requestState) prepareUpstreamRequest(ctx *fasthttp.RequestCtx) {
	h := &ctx.Request.Header
	rs.clientClose = h.ConnectionClose()
	h.ResetConnectionClose()
	hopheaders.StripRequest(h)
	trust := rs.srv.cfg.TrustForwardedHeaders
	rs.scratch = rs.scratch[:0]
	if trust {
		if prior := h.PeekBytes(strXForwardedFor); len(prior) > 0 {
			rs.scratch = append(append(rs.scratch, prior...), strCommaSpace...)
		}
	}
	rs.scratch = appendRemoteIP(rs.scratch, ctx.RemoteAddr())
	// SetCanonical: the names are written in fasthttp's canonical form,
	// so the per-call copy and normalisation of SetBytesKV is skipped
	// (issue 12; the request's header names are normalised as it is read).
	h.SetCanonical(strXForwardedFor, rs.scratch)
	if !trust || len(h.PeekBytes(strXForwardedProto)) == 0 {
		proto := strHTTP
		if ctx.IsTLS() {
			proto = strHTTPS
		}
		h.SetCanonical(strXForwardedProto, proto)
	}
	h.SetCanonical(canonXRequestID, rs.reqID)
}

// appendRemoteIP appends the IP of addr without allocating.
func appendRemoteIP(dst []byte, addr net.Addr) []byte {
	if tcp, ok := addr.(*net.TCPAddr); ok {
		if ip, ok := netip.AddrFromSlice(tcp.IP); ok {
			return ip.Unmap().AppendTo(dst)
		}
	}
	return append(dst, addr.String()...)
}

// Sending a request to the pool's endpoints, with retries.
//
// Each attempt is one HostClient.Do and reaches the endpoint at most once:
// fasthttp's own retries (up to 5 sends of a GET to the same endpoint
// after a timeout or reset) are off (upstream/pools.go). The one exception is a
// request found unsent on a pooled connection the upstream had closed,
// which goes on a new connection (upstream/staleconn.go).
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
	var ep *upstream.Endpoint
	kind := errNoEndpoint
	if !rs.watch.gone.Load() { // a client gone already takes no endpoint
		ep, kind = rs.firstEndpoint()
	}
	if ep == nil {
		req.ResetBody()
		if rs.watch.gone.Load() { // gone before, or while queued
			rs.clientGone(ctx)
			return
		}
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
			s.logTLSFailure(ep, err)
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
// policy picks (waiting in the pool's queue if configured; a client that
// leaves meanwhile ends the wait, upstream.ErrCancelled, and send answers
// 499).
func (rs *requestState) firstEndpoint() (*upstream.Endpoint, errorKind) {
	p := rs.pool
	var ep *upstream.Endpoint
	var err error
	if ex := &rs.ex; ex.pinPool == p && len(ex.pinned) > 0 {
		ep, err = p.AcquirePinned(ex.pinned)
	} else {
		rs.watch.setPhase(phaseQueued) // a pick that needs no wait is quick
		ep, err = p.Acquire(&rs.waiter)
		rs.watch.setPhase(phaseAdmitted)
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
	gone := rs.watch.detach()
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

// One exchange with an endpoint, on a connection the request holds.
//
// Sluice does not call HostClient.Do: Do hides which pooled connection
// carries a request, so nothing could close that connection when the
// client goes away while the engine is still thinking (the disconnect
// watch, disconnect.go). roundTrip does what fasthttp's default transport
// does with the HostClient's exported pieces (AcquireConn, AcquireWriter,
// AcquireReader, ReleaseConn, CloseConn), and keeps the connection in the
// request state: the watch can close it, and finish gives it back to the
// pool only when the body was read to its end and nothing went wrong.

// upstreamConn is the endpoint connection a request holds, from the
// request write until its response body is closed. Owned by the request.
type upstreamConn struct {
	hc    *fasthttp.HostClient
	cc    any // *fasthttp.clientConn (unexported type); see connCall
	conn  net.Conn
	br    *bufio.Reader
	close bool // the request asked to close the connection
}

// roundTrip sends req on a connection of ep and reads the response head
// into rs.resp; a body is left streaming from the connection, which rs
// holds until finish. While it waits, the connection is attached to the
// client's watch: errClientGone means the client went away (and the
// connection, if attached, was closed). A request that got no answer is
// sent again on a new connection as HostClient.Do would: up to
// MaxIdemponentCallAttempts attempts (5 when unset) when RetryIfErr, or
// else RetryIf (default: GET, HEAD, PUT), allow.
func (rs *requestState) roundTrip(ep *upstream.Endpoint, req *fasthttp.Request) error {
	hc := ep.HostClient()
	maxAttempts := hc.MaxIdemponentCallAttempts
	if maxAttempts <= 0 {
		maxAttempts = fasthttp.DefaultMaxIdemponentCallAttempts
	}
	for attempts := 1; ; attempts++ {
		retry, err := rs.exchange(hc, req)
		if err != nil && err != errClientGone && retry && attempts < maxAttempts && mayRetry(hc, req, attempts, err) {
			continue
		}
		if err == io.EOF {
			err = fasthttp.ErrConnectionClosed
		}
		return err
	}
}

// mayRetry is HostClient.Do's choice to send a request again after an
// attempt that got no answer.
func mayRetry(hc *fasthttp.HostClient, req *fasthttp.Request, attempts int, err error) bool {
	switch {
	case hc.RetryIfErr != nil:
		_, retry := hc.RetryIfErr(req, attempts, err)
		return retry
	case hc.RetryIf != nil:
		return hc.RetryIf(req)
	}
	return isIdempotent(req)
}

// exchange is one attempt of roundTrip; retry reports whether the request
// may be sent again (no answer was read).
func (rs *requestState) exchange(hc *fasthttp.HostClient, req *fasthttp.Request) (retry bool, err error) {
	if rs.watch.gone.Load() { // gone during an earlier attempt, or before
		return false, errClientGone
	}
	resp := &rs.resp
	skipBody, streamBody := resp.SkipBody, resp.StreamBody || hc.StreamResponseBody
	resp.Reset()
	resp.SkipBody, resp.StreamBody = skipBody, streamBody
	req.URI().DisablePathNormalizing = hc.DisablePathNormalizing
	if hc.Name != "" && len(req.Header.UserAgent()) == 0 {
		req.Header.SetUserAgent(hc.Name)
	}

	// Waiting from the dial on: nginx checks the client while it connects
	// to the upstream too.
	rs.watch.setPhase(phaseWaiting)
	cc, err := hc.AcquireConn(0, req.ConnectionClose())
	if err != nil {
		return false, err
	}
	conn := cc.Conn()
	u := &rs.up
	u.hc, u.cc, u.conn, u.close = hc, cc, conn, req.ConnectionClose()
	if !rs.watch.attach(conn) { // gone since the check above
		rs.releaseUpstream(false)
		return false, errClientGone
	}
	resp.ParseNetConn(conn)

	if hc.WriteTimeout > 0 {
		if err = upstream.SetWriteTimeout(conn, hc.WriteTimeout); err != nil {
			return true, rs.dropUpstream(err)
		}
	}
	retire := hc.MaxConnDuration > 0 && time.Since(cc.CreatedTime()) > hc.MaxConnDuration && !u.close
	if retire { // ask the upstream to close a connection past its age
		req.SetConnectionClose()
		u.close = true
	}
	bw := hc.AcquireWriter(conn)
	err = req.Write(bw)
	if err == nil {
		err = bw.Flush()
	}
	hc.ReleaseWriter(bw)
	if retire {
		req.Header.ResetConnectionClose()
	}
	if x, ok := err.(interface{ Timeout() bool }); ok && x.Timeout() {
		err = fasthttp.ErrTimeout
	}
	if err != nil {
		return true, rs.dropUpstream(err)
	}

	if hc.ReadTimeout > 0 {
		if err = conn.SetReadDeadline(time.Now().Add(hc.ReadTimeout)); err != nil {
			return true, rs.dropUpstream(err)
		}
	}
	if req.Header.IsHead() {
		resp.SkipBody = true
	}
	if hc.DisableHeaderNamesNormalizing {
		resp.Header.DisableNormalizing()
	}
	u.br = hc.AcquireReader(conn)
	if err = resp.ReadLimitBody(u.br, hc.MaxResponseBodySize); err != nil {
		return err != fasthttp.ErrBodyTooLarge, rs.dropUpstream(err)
	}
	if resp.BodyStream() == nil {
		// No body (HEAD, 204, 304) or a buffered one: the connection is
		// free at once.
		rs.watch.setPhase(phaseStreaming)
		if rs.watch.detach() {
			rs.releaseUpstream(false)
			return false, errClientGone
		}
		rs.releaseUpstream(true)
		return false, nil
	}
	rs.watch.setPhase(phaseStreaming)
	return false, nil
}

// dropUpstream closes the connection of a failed attempt and returns err,
// or errClientGone when the failure came from the disconnect watch closing
// it.
func (rs *requestState) dropUpstream(err error) error {
	gone := rs.watch.detach()
	rs.releaseUpstream(false)
	if gone {
		return errClientGone
	}
	return err
}

// releaseUpstream gives the held connection back: to the pool when reuse
// is true and neither side asked to close it, else closed. The response
// body stream must be closed already. Idempotent.
func (rs *requestState) releaseUpstream(reuse bool) {
	u := &rs.up
	if u.hc == nil {
		return
	}
	if u.br != nil {
		u.hc.ReleaseReader(u.br)
	}
	if reuse && !u.close && !rs.resp.ConnectionClose() {
		connCall((*fasthttp.HostClient).ReleaseConn, u.hc, u.cc)
	} else {
		connCall((*fasthttp.HostClient).CloseConn, u.hc, u.cc)
	}
	*u = upstreamConn{}
}

// connCall calls a HostClient connection method with cc, which holds the
// *fasthttp.clientConn AcquireConn returned: the type is not exported, so
// it is named by inference from the method expression.
func connCall[C any](f func(*fasthttp.HostClient, C), hc *fasthttp.HostClient, cc any) {
	f(hc, cc.(C))
}

func isIdempotent(req *fasthttp.Request) bool {
	return req.Header.IsGet() || req.Header.IsHead() || req.Header.IsPut()
}

// closeUpstreamConn closes c's socket at once. For TLS the socket under
// the tls.Conn is closed: tls.Conn.Close would first write a close_notify
// alert, which may block.
func closeUpstreamConn(c net.Conn) {
	if tc, ok := c.(*tls.Conn); ok {
		c = tc.NetConn()
	}
	_ = c.Close()
}

// endUpstream ends the request's use of its endpoint connection, once the
// response body stream is closed: the disconnect watch stops, the
// connection goes back to the pool if its body was read to the end, and a
// gone client turns the outcome into 499.
func (rs *requestState) endUpstream() {
	gone := rs.watch.unwatch()
	rs.releaseUpstream(rs.upEOF && rs.upErr == nil && !gone)
	if gone {
		rs.ok = false
		rs.status = statusClientClosedRequest
		rs.upErr = errClientGone
	}
}

// clientGone ends a request whose client left before its response was
// handed to fasthttp (queued, paused, waiting on the engine, or while the
// response phase ran): no error body, status 499 for the log, the
// connection closed after it, and the endpoint not blamed (no failure, no
// upstream code counted).
func (rs *requestState) clientGone(ctx *fasthttp.RequestCtx) {
	rs.upErr = errClientGone
	rs.ok = false
	ctx.Response.Reset()
	ctx.Response.SetStatusCode(statusClientClosedRequest)
	ctx.SetConnectionClose()
}

// codeCounters holds counters of one family by status code: a pool's
// sluice_upstream_requests_total{upstream,code} or the server's
// sluice_responses_total{code}. A counter is created the first time its
// code is seen (status codes are few), then found with one atomic load.
type codeCounters struct {
	set    *metrics.Set
	prefix string // the series up to the code label: `family{…,` or `family{`
	codes  [600]atomic.Pointer[metrics.Counter]
}

func newUpstreamCodes(set *metrics.Set, pool string) *codeCounters {
	return &codeCounters{set: set, prefix: `sluice_upstream_requests_total{upstream="` + escapeLabel(pool) + `",`}
}

// inc counts one answer with status code (0 = no answer: a connection
// error or timeout).
func (u *codeCounters) inc(code int) {
	if code < 0 || code >= len(u.codes) {
		code = 0
	}
	c := u.codes[code].Load()
	if c == nil {
		c = u.set.GetOrCreateCounter(u.prefix + `code="` + strconv.Itoa(code) + `"}`)
		u.codes[code].Store(c)
	}
	c.Inc()
}

// escapeLabel escapes a Prometheus label value.
func escapeLabel(s string) string {
	q := strconv.Quote(s)
	return q[1 : len(q)-1]
}
