package proxy

import (
	"bytes"
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/valyala/fasthttp"
)

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

// edgeListener wraps each accepted TCP connection in an edgeConn. Other
// connections (a TLS or Unix listener handed to Serve) pass through.
type edgeListener struct {
	net.Listener
	stop   <-chan struct{} // closed by Shutdown: lingering ends early
	linger *lingerBounds
}

// Accept implements net.Listener.
func (l *edgeListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	if tc, ok := c.(*net.TCPConn); ok {
		return &edgeConn{TCPConn: tc, stop: l.stop, bounds: l.linger}, nil
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
}

// Read implements net.Conn. Until the current request line has ended, the
// bytes read are scanned for its '\n' (bytes.IndexByte: a few ns a read);
// the handler starts the scan anew for the next request (headDone). A
// pipelined request whose bytes came in with the previous one's counts as
// having its line ended, so an oversized one gets 431 rather than 414.
func (c *edgeConn) Read(p []byte) (int, error) {
	n, err := c.TCPConn.Read(p)
	if !c.lineDone && n > 0 {
		c.lineDone = bytes.IndexByte(p[:n], '\n') >= 0
	}
	return n, err
}

// headDone records that a request head was read whole: the next bytes
// belong to the next request's line.
func headDone(ctx *fasthttp.RequestCtx) {
	if c, ok := ctx.Conn().(*edgeConn); ok {
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

// serveEdge is the fasthttp handler: the server's handler, then the
// connection's request-line scan starts anew for the next request.
func (s *Server) serveEdge(ctx *fasthttp.RequestCtx) {
	s.handle(ctx)
	headDone(ctx)
}

// lingerOnClose asks ctx's connection, when it is an edgeConn, to linger
// when it is closed, and marks the response as the connection's last.
func lingerOnClose(ctx *fasthttp.RequestCtx, mode uint32) {
	ctx.SetConnectionClose()
	if c, ok := ctx.Conn().(*edgeConn); ok {
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
		if c, ok := ctx.Conn().(*edgeConn); ok && !c.lineDone {
			kind = errURITooLong
		}
	case isTimeout(err):
		kind, mode = errClientTimeout, lingerShort
	case errors.Is(err, fasthttp.ErrDuplicateContentLength):
		kind = errBadFraming
	case errors.Is(err, fasthttp.ErrUnsupportedTransferEncoding):
		kind = errTransferCoding
	}
	s.writeError(ctx, kind)
	lingerOnClose(ctx, mode)
}

var (
	_ net.Listener = (*edgeListener)(nil)
	_ net.Conn     = (*edgeConn)(nil)
	_ syscall.Conn = (*edgeConn)(nil)
)
