package proxy

import (
	"bufio"
	"crypto/tls"
	"io"
	"net"
	"time"

	"github.com/sluice-proxy/sluice/proxy/upstream"
	"github.com/valyala/fasthttp"
)

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
// holds until finish. While it waits, the client's connection is watched:
// errClientGone means the client went away and the upstream connection was
// closed. A request that got no answer is sent again on a new connection
// as HostClient.Do would: up to MaxIdemponentCallAttempts attempts (5 when
// unset) when RetryIfErr, or else RetryIf (default: GET, HEAD, PUT), allow.
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
	if rs.watch.gone.Load() { // gone during an earlier attempt
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

	cc, err := hc.AcquireConn(0, req.ConnectionClose())
	if err != nil {
		return false, err
	}
	conn := cc.Conn()
	u := &rs.up
	u.hc, u.cc, u.conn, u.close = hc, cc, conn, req.ConnectionClose()
	rs.watch.watch(conn)
	resp.ParseNetConn(conn)

	if hc.WriteTimeout > 0 {
		if err = conn.SetWriteDeadline(time.Now().Add(hc.WriteTimeout)); err != nil {
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
		if rs.watch.unwatch() {
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
	gone := rs.watch.unwatch()
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

// clientGone ends a request whose client left before the response head:
// no error body, status 499 for the log, the connection closed after it,
// and the endpoint not blamed (no failure, no upstream code counted).
func (rs *requestState) clientGone(ctx *fasthttp.RequestCtx) {
	rs.upErr = errClientGone
	ctx.Response.SetStatusCode(statusClientClosedRequest)
	ctx.SetConnectionClose()
}
