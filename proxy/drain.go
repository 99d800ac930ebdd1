package proxy

import (
	"strconv"

	"github.com/valyala/fasthttp"
)

// Draining. Shutdown (server.go) runs the sequence; these are its parts
// on the request path.
//
// While the server drains, every answer carries Connection: close, so a
// client on a keep-alive connection finishes the request it sent and
// then opens its next connection elsewhere (Envoy's drain sends
// Connection: close the same way). During drain_delay idle keep-alive
// connections stay open and a request arriving on one is answered; when
// the listener closes, fasthttp closes the connections that are idle at
// that moment and never one a request has started on (nginx closes idle
// keep-alive connections at once on a graceful shutdown: drain_delay 0).
// A request a client sends just as its idle connection is closed meets a
// closed connection, the race every keep-alive close has (RFC 9112
// section 9.3.1: clients retry such requests on a new connection).

// StartDrain begins draining without stopping anything: /ready answers
// 503 from now on and every answer carries Connection: close. Shutdown
// calls it first; it is idempotent and safe for concurrent use.
func (s *Server) StartDrain() { s.router.StartDrain() }

// closeIfDraining adds Connection: close to the answer the handler built
// while the server drains.
func (s *Server) closeIfDraining(ctx *fasthttp.RequestCtx) {
	if s.router.drain.Load() {
		ctx.SetConnectionClose()
	}
}

// ShutdownError is what Shutdown returns when its context ended with
// requests still running.
type ShutdownError struct {
	// Running is the number of requests holding an admission slot at the
	// deadline: the ones the caller cuts by exiting.
	Running int64
	// Connections is the number of client connections still open then
	// (requests still being read included).
	Connections int
	// Err is the context's error.
	Err error
}

func (e *ShutdownError) Error() string {
	return "proxy: shutdown: " + strconv.FormatInt(e.Running, 10) + " requests still running: " + e.Err.Error()
}

func (e *ShutdownError) Unwrap() error { return e.Err }
