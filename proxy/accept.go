package proxy

import (
	"bytes"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/sluice-proxy/sluice/proxy/internal/modellist"
	"github.com/sluice-proxy/sluice/proxy/internal/traceparent"
	"github.com/sluice-proxy/sluice/proxy/upstream"
	"github.com/valyala/fasthttp"
)

// The entry handler and the first stage of the path: accept the request,
// answer the probes, take pooled state, and walk the stages in order.

var strContentTypeText = []byte("text/plain; version=0.0.4; charset=utf-8")

// handle dispatches probes and metrics; everything else is proxied.
func (s *Server) handle(ctx *fasthttp.RequestCtx) {
	s.dispatch(ctx)
	s.closeIfDraining(ctx)
}

func (s *Server) dispatch(ctx *fasthttp.RequestCtx) {
	switch string(ctx.Path()) { // no allocation: the compiler special-cases this
	case "/health":
		s.serveHealth(ctx)
		return
	case "/ready":
		s.serveReady(ctx)
		return
	case "/metrics":
		if s.cfg.EnableMetrics && s.cfg.Admin.Enabled() {
			s.writeError(ctx, errNoRoute) // served on the admin listener only (AdminHandler)
			return
		}
		if s.cfg.EnableMetrics {
			ctx.Response.Header.SetContentTypeBytes(strContentTypeText)
			s.WriteMetrics(ctx)
			return
		}
	}
	s.serveProxy(ctx)
}

// serveEdge is the fasthttp handler: the handler of the generation
// serving new requests (reload.go), then the connection's request-line
// scan starts anew for the next request.
func (s *Server) serveEdge(ctx *fasthttp.RequestCtx) {
	s.serveCurrent(ctx)
	headDone(ctx)
}

// serveCurrent runs the request on the current generation, holding a
// reference on it (reload.go).
func (s *Server) serveCurrent(ctx *fasthttp.RequestCtx) {
	g := s.enter()
	g.handle(ctx)
	g.leave()
}

// serveProxy reads the request, takes a slot once the body is read, and
// forwards the request. The slot is released exactly once: by finish when
// the handler ends, or by the response body stream's Close when the body
// is streamed after the handler returns.
func (s *Server) serveProxy(ctx *fasthttp.RequestCtx) {
	rs := s.statePool.Get().(*requestState)
	rs.start = ctx.Time()
	defer rs.endHandler(ctx)
	rs.forward(ctx)
}

// endHandler runs when the handler returns or panics: it answers 500 to a
// panic that happened before the response was handed to fasthttp, and
// finishes the request unless a streamed body now owns it.
func (rs *requestState) endHandler(ctx *fasthttp.RequestCtx) {
	if p := recover(); p != nil {
		rs.srv.log.Error("proxy: panic while serving a request", "panic", p, "request_id", string(rs.reqID))
		rs.ok = false
		if rs.handedOff { // the stream writer owns rs; let it finish
			return
		}
		ctx.Response.Reset()
		ctx.Response.SetStatusCode(fasthttp.StatusInternalServerError)
		ctx.SetConnectionClose()
	}
	rs.stampRequestID(ctx)
	if !rs.handedOff {
		rs.status = ctx.Response.StatusCode()
		if rs.srv.accessLog {
			rs.acc.noteResponse(ctx)
		}
		rs.finish()
	}
}

// forward walks the request through the stages, in the order of the
// package's files: read and admit (read.go), the filters' request phase
// (filter.go), model and pool (select.go), send and retry (send.go),
// which goes on to respond (respond.go); finish.go ends it.
func (rs *requestState) forward(ctx *fasthttp.RequestCtx) {
	s := rs.srv
	req := &ctx.Request
	rs.setRequestID(req)
	rs.trace.Apply(&req.Header)
	if s.accessLog {
		rs.noteRequest(ctx)
	}
	read := rs.readBody(ctx)
	rs.acc.bytesIn = len(rs.body)
	if !read || !rs.admit(ctx) {
		return
	}
	if len(s.filters) > 0 && !rs.requestPhase(ctx) {
		return
	}
	rs.findModel(req)
	if s.models.Enabled() && rs.ex.upstream == "" && modellist.IsRequest(req) {
		rs.ok = true
		s.models.Serve(ctx)
		return
	}
	p, kind := rs.choosePool(ctx)
	if p == nil {
		rs.ok = true // the proxy did its job: nothing serves this request
		if kind == errModelNotFound {
			s.writeModelNotFound(ctx, rs.model.name)
		} else {
			s.writeError(ctx, kind)
		}
		return
	}
	rs.pool = p
	rs.ex.upstream = p.Name()
	rs.applyAlias(req, p)
	rs.prepareUpstreamRequest(ctx)
	rs.send(ctx)
}

// requestState is everything one proxied request needs, pooled per Server
// and reset between requests, so the hot path allocates nothing once warm.
// It is owned by the request's handler goroutine and, when the response
// body is streamed, by the fasthttp writer that reads it (as the body's
// io.Reader) until Close.
type requestState struct {
	srv   *Server
	guard Guard
	ex    Exchange
	resp  fasthttp.Response // upstream response
	up    upstreamConn      // the endpoint connection resp reads from
	watch clientWatch       // registration with the disconnect watcher

	streams []Stream // one per filter; nil once the filter is skipped or done
	created int      // streams[:created] were created and need OnDone

	start       time.Time
	pool        *upstream.Pool
	ep          *upstream.Endpoint   // holds a slot of ep until finish
	tried       []*upstream.Endpoint // endpoints this request was sent to
	waiter      upstream.Waiter      // this request's place in a pool's queue
	model       requestModel
	usage       usageTracker
	reqID       []byte
	body        []byte // request body
	bodyAlt     []byte // spare body buffer, for rewrites
	scratch     []byte // X-Forwarded-For and similar
	status      int
	ok          bool // outcome for the guard
	clientClose bool
	handedOff   bool // the response body stream owns finishing
	finished    bool
	upErr       error

	// response body streaming
	upBody    io.Reader
	upEOF     bool
	filtered  bool   // chunks go through the filter chain
	chunk     []byte // read buffer for filtered streams
	out       []byte // filtered output not yet handed to the client
	outOff    int
	eosSent   bool
	pausedAt  int    // first filter that paused the response body, or len(streams)
	bodyBuf   []byte // body buffered for filters at and after pausedAt
	logMethod []byte
	logPath   []byte

	// the access log's other fields and the trace id (accesslog.go, package traceparent)
	acc   accessFields
	trace traceparent.Context

	// a response body cut after its head was sent (respond.go)
	sseDialect uint8   // error event dialect; dialectNone: abort only
	tail       [4]byte // last bytes of the event stream sent
	cutErr     error   // the body failed: drain cutOut, then fail with it
	cutOut     []byte  // rest of the error event to send (shared, read-only)
}

func newRequestState(s *Server) *requestState {
	rs := &requestState{srv: s, waiter: upstream.NewWaiter()}
	rs.ex.pools, rs.ex.router = s.pools, s.router
	rs.ex.routeOf = s.routeOfExchange
	rs.ex.resumeCh = make(chan struct{}, 1)
	rs.watch.initWatch(&s.watch)
	rs.waiter.CancelOn(rs.watch.goneCh) // a gone client leaves the pool's queue
	rs.resp.StreamBody = true
	if n := len(s.filters); n > 0 {
		rs.streams = make([]Stream, n)
	}
	return rs
}

// Lingering close, after nginx's lingering_close: when Sluice answers a
// request it has not read whole (413, 431, 414, 408, 400, 501, 503 for the
// body buffer) it closes the connection, and closing a socket that still
// has unread data makes the kernel send a reset, which on the client's side
// throws away the answer it has not read yet. So Sluice writes the answer,
// shuts down its write side (the client sees the end of the answer) and
// reads and discards what the client still sends, for a bounded time and
// size, before it closes.
const (
	// lingerTime bounds the whole lingering (nginx lingering_time: 30s).
	lingerTime = 30 * time.Second
	// lingerTimeout bounds the wait for each read while lingering (nginx
	// lingering_timeout: 5s): a client that has stopped sending is closed
	// after it.
	lingerTimeout = 5 * time.Second
	// lingerMaxBytes bounds what is discarded; past it the connection is
	// closed (nginx has no byte bound; this keeps a fast uploader from
	// using 30s of a core).
	lingerMaxBytes = 64 << 20
	// lingerTimeAfterTimeout bounds lingering after a 408: a client that
	// timed out is slow or gone, and lingering long would hand a slowloris
	// its connection back.
	lingerTimeAfterTimeout = 2 * time.Second
)

// Lingering modes of an edgeConn.
const (
	lingerNone uint32 = iota
	lingerFull
	lingerShort
)

// lingerBounds are the limits of one lingering close.
type lingerBounds struct {
	time, timeout, afterTimeout time.Duration
	maxBytes                    int
}

// defaultLinger are the bounds the server uses.
var defaultLinger = lingerBounds{time: lingerTime, timeout: lingerTimeout, afterTimeout: lingerTimeAfterTimeout, maxBytes: lingerMaxBytes}

// edgeListener wraps each accepted TCP connection in an edgeConn, and
// that in a tlsEdgeConn when the server has TLS (tls.go). Other
// connections (a TLS or Unix listener handed to Serve) pass through, or
// get TLS alone.
type edgeListener struct {
	net.Listener
	stop   <-chan struct{} // closed by Shutdown: lingering ends early
	linger *lingerBounds
	tls    *tls.Config // nil: plain HTTP
}

// Accept implements net.Listener.
func (l *edgeListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	tc, ok := c.(*net.TCPConn)
	switch {
	case ok && l.tls != nil:
		ec := &edgeConn{TCPConn: tc, stop: l.stop, bounds: l.linger, underTLS: true}
		return &tlsEdgeConn{Conn: tls.Server(ec, l.tls), edge: ec}, nil
	case ok:
		return &edgeConn{TCPConn: tc, stop: l.stop, bounds: l.linger}, nil
	case l.tls != nil:
		return tls.Server(c, l.tls), nil
	}
	return c, nil
}

// edgeConn is a client connection. It adds two things to *net.TCPConn:
// whether the current request line has ended (so that a head too large
// can be answered 414 rather than 431), and the lingering close. It is
// allocated once per connection, never per request; it keeps every method
// of *net.TCPConn, SyscallConn included (the disconnect watcher polls the
// raw fd through it).
//
// Read and the line flag belong to the connection's serving goroutine;
// Close may also be called by Server.Shutdown on an idle connection, so
// the lingering mode and the closed flag are atomics.
type edgeConn struct {
	*net.TCPConn
	stop     <-chan struct{}
	bounds   *lingerBounds
	linger   atomic.Uint32
	closed   atomic.Bool
	lineDone bool // a '\n' was read since the current head started
	underTLS bool // the tlsEdgeConn above scans the plaintext instead
}

// Read implements net.Conn. Until the current request line has ended, the
// bytes read are scanned for its '\n' (bytes.IndexByte: a few ns a read);
// the handler starts the scan anew for the next request (headDone). A
// pipelined request whose bytes came in with the previous one's counts as
// having its line ended, so an oversized one gets 431 rather than 414.
func (c *edgeConn) Read(p []byte) (int, error) {
	n, err := c.TCPConn.Read(p)
	if !c.underTLS {
		c.scanLine(p[:n])
	}
	return n, err
}

// scanLine records whether b, the next bytes of the request, end the
// current request line.
func (c *edgeConn) scanLine(b []byte) {
	if !c.lineDone && len(b) > 0 {
		c.lineDone = bytes.IndexByte(b, '\n') >= 0
	}
}

// edgeOf returns the edgeConn of a client connection, under its TLS if
// any; nil for other connections.
func edgeOf(c net.Conn) *edgeConn {
	switch c := c.(type) {
	case *edgeConn:
		return c
	case *tlsEdgeConn:
		return c.edge
	}
	return nil
}

// headDone records that a request head was read whole: the next bytes
// belong to the next request's line.
func headDone(ctx *fasthttp.RequestCtx) {
	if c := edgeOf(ctx.Conn()); c != nil {
		c.lineDone = false
	}
}

// SyscallConn implements syscall.Conn with the TCP connection's.
func (c *edgeConn) SyscallConn() (syscall.RawConn, error) { return c.TCPConn.SyscallConn() }

// lingerOnClose makes Close linger: lingerFull after an answer to a request
// whose rest may still be on its way, lingerShort after a timeout.
func (c *edgeConn) lingerOnClose(mode uint32) { c.linger.Store(mode) }

// Close implements net.Conn: it closes once, lingering first when asked to.
func (c *edgeConn) Close() error {
	if c.closed.Swap(true) {
		return nil
	}
	switch c.linger.Load() {
	case lingerFull:
		c.drain(c.bounds.time)
	case lingerShort:
		c.drain(c.bounds.afterTimeout)
	}
	return c.TCPConn.Close()
}

var lingerBufs = sync.Pool{New: func() any { return new([16 << 10]byte) }}

// drain shuts down the write side and discards what the client sends until
// it closes, stops sending for bounds.timeout, total has passed,
// bounds.maxBytes were read, or the server shuts down (noticed between
// reads).
func (c *edgeConn) drain(total time.Duration) {
	if c.TCPConn.CloseWrite() != nil {
		return
	}
	buf := lingerBufs.Get().(*[16 << 10]byte)
	defer lingerBufs.Put(buf)
	end := time.Now().Add(total)
	for read := 0; read < c.bounds.maxBytes; {
		select {
		case <-c.stop:
			return
		default:
		}
		now := time.Now()
		if !now.Before(end) {
			return
		}
		d := now.Add(c.bounds.timeout)
		if d.After(end) {
			d = end
		}
		if err := c.TCPConn.SetReadDeadline(d); err != nil {
			return
		}
		n, err := c.TCPConn.Read(buf[:])
		read += n
		if err != nil {
			return
		}
	}
}

// lingerOnClose asks ctx's connection, when it is an edgeConn, to linger
// when it is closed, and marks the response as the connection's last.
func lingerOnClose(ctx *fasthttp.RequestCtx, mode uint32) {
	ctx.SetConnectionClose()
	if c := edgeOf(ctx.Conn()); c != nil {
		c.lingerOnClose(mode)
	}
}

// handleParseError answers requests fasthttp could not read whole: a head
// past max_request_header_size (431, or 414 when its request line did not
// end), a head or prefetched body past client_header_timeout (408),
// ambiguous framing (400), a transfer coding other than chunked (501), a
// body over max_request_body_size (413), anything else malformed (400).
// fasthttp closes the connection after the answer; it lingers first.
func (s *Server) handleParseError(ctx *fasthttp.RequestCtx, err error) {
	kind := errBadRequest
	mode := lingerFull
	var small *fasthttp.ErrSmallBuffer
	switch {
	case errors.Is(err, fasthttp.ErrBodyTooLarge):
		kind = errTooLarge
	case errors.As(err, &small):
		kind = errHeaderTooLarge
		if c := edgeOf(ctx.Conn()); c != nil && !c.lineDone {
			kind = errURITooLong
		}
	case isTimeout(err):
		kind, mode = errClientTimeout, lingerShort
	case errors.Is(err, fasthttp.ErrDuplicateContentLength):
		kind = errBadFraming
	case errors.Is(err, fasthttp.ErrUnsupportedTransferEncoding):
		kind = errTransferCoding
	}
	g := s.enter() // the current config's error shape and log settings (Reload)
	s.router.refuse(refusalOf(kind))
	g.responses.inc(errorSpecs[kind].status)
	g.writeError(ctx, kind)
	g.answerUnread(ctx, kind)
	g.leave()
	lingerOnClose(ctx, mode)
}

var (
	_ net.Listener = (*edgeListener)(nil)
	_ net.Conn     = (*edgeConn)(nil)
	_ syscall.Conn = (*edgeConn)(nil)
)
