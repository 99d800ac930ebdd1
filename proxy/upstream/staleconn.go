package upstream

import (
	"errors"
	"syscall"

	"github.com/sluice-proxy/sluice/proxy/internal/peek"
	"github.com/valyala/fasthttp"
)

// Pooled connections the upstream already closed.
//
// fasthttp does not watch idle pooled connections, so one the upstream
// closed while it sat in the pool (its own idle timeout, a restart) is
// found out only when a request is written to it: the write succeeds into
// the socket buffer and the read finds EOF. Once the request is written,
// nothing tells "closed before it arrived" from "read, then the upstream
// crashed", and Sluice never sends a request twice to the same endpoint
// (issue 9). So the check happens before anything is written: the first
// write of a request on a connection that already carried one peeks at
// the socket without blocking (MSG_PEEK|MSG_DONTWAIT: one syscall, no
// allocation; Linux only, elsewhere there is no check). A connection that
// reports EOF or an error is closed and the request goes, unsent, on
// another connection of the same endpoint. That is the one retry that is
// always safe: Go's net/http retries a request on a reused connection for
// any method when nothing was written, and nginx passes a request with a
// non-idempotent method to another server only if it was not sent.
//
// Pending bytes do not count as closed (they are a TLS record, or garbage
// the response parser rejects), so an https upstream that sends
// close_notify before closing is not caught here and the request fails
// with 502 as before. A close that races the write itself is not caught
// either; upstreamIdleConnTimeout, shorter than the usual server idle
// timeouts, keeps that window small.

// errStaleConn is the write error of a request that was not sent because
// its pooled connection was closed by the upstream.
var errStaleConn = errors.New("proxy: pooled upstream connection closed by the upstream; request not sent")

// retryStaleConn is the proxy client's RetryIfErr: it lets fasthttp try
// again only a request that was never sent (errStaleConn). Every other
// failure (timeout, reset, EOF after the request was written) is final
// for this HostClient.Do; package proxy's send.go alone decides on another attempt, on
// another endpoint.
func retryStaleConn(_ *fasthttp.Request, _ int, err error) (resetTimeout, retry bool) {
	return false, errors.Is(err, errStaleConn)
}

// staleCheck peeks at a TCP connection's socket. It is owned by one
// connection, which fasthttp uses for one request at a time.
type staleCheck struct {
	raw    syscall.RawConn // nil: no check on this platform or conn type
	peekFn func(fd uintptr) bool
	buf    [1]byte
	gone   bool
}

func (s *staleCheck) init(c any) {
	sc, ok := c.(syscall.Conn)
	if !ok || !peek.Supported {
		return
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return
	}
	s.raw = raw
	s.peekFn = s.peek // bound once per connection, so each check allocates nothing
}

// peek runs once per check under the connection's poller; it returns true
// so the runtime never waits for readability.
func (s *staleCheck) peek(fd uintptr) bool {
	s.gone = peek.Closed(fd, &s.buf)
	return true
}

// peerClosed reports whether the upstream closed the connection (EOF or a
// socket error), without blocking and without consuming data.
func (s *staleCheck) peerClosed() bool {
	if s.raw == nil {
		return false
	}
	s.gone = false
	if err := s.raw.Read(s.peekFn); err != nil {
		return true
	}
	return s.gone
}
