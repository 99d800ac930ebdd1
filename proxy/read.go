package proxy

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"io"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"
)

// The request body is read whole before the request takes an admission
// slot (admit): a client still sending holds no slot, only its own
// connection, under client_body_timeout, and its bytes count against
// max_request_body_buffer.

var errBodyBudget = errors.New("proxy: max_request_body_buffer is full")

// bodyReadChunk is the most one body read asks for; the body buffer
// reserves at most this much ahead of the bytes received.
const bodyReadChunk = 32 << 10

// bodyBudget counts the bytes that request bodies still being read may
// hold, server-wide, against max_request_body_buffer. It is safe for
// concurrent use and allocates nothing.
type bodyBudget struct {
	max  int64
	used atomic.Int64
}

// reserve takes n bytes of the budget, or reports false when that would
// pass the cap.
func (b *bodyBudget) reserve(n int) bool {
	if b.used.Add(int64(n)) > b.max {
		b.used.Add(-int64(n))
		return false
	}
	return true
}

// release gives back n reserved bytes.
func (b *bodyBudget) release(n int) { b.used.Add(-int64(n)) }

// readBody reads the request body into rs.body under client_body_timeout
// and the body budget. It answers what it refuses — ambiguous framing
// (400), a body over max_request_body_size (413), a client too slow (408),
// a full body buffer (503) — and then closes the connection, lingering,
// since the rest of the body may still be on its way.
func (rs *requestState) readBody(ctx *fasthttp.RequestCtx) bool {
	s := rs.srv
	req := &ctx.Request
	cl := req.Header.ContentLength()
	// RFC 9112 section 6.3: a request with both Transfer-Encoding and
	// Content-Length may be an attempt at smuggling; a server MAY reject
	// it, and a proxy that forwards it must drop Content-Length. fasthttp
	// parses such a request as chunked and forgets Content-Length, so the
	// raw head is checked (only for chunked requests, a rare case).
	// nginx answers 400 too.
	if cl == -1 && hasHeader(req.Header.RawHeaders(), strContentLengthLower) {
		return rs.refuse(ctx, errBadFraming, lingerFull)
	}
	if cl > s.bodyLimit {
		return rs.refuse(ctx, errTooLarge, lingerFull)
	}
	rs.body = rs.body[:0]
	if cl != 0 {
		if stream := ctx.RequestBodyStream(); stream != nil {
			err := rs.readStream(ctx, stream)
			if err == nil && cl > 0 && len(rs.body) < cl {
				// fasthttp's request stream ends with a plain io.EOF when
				// the client closes before Content-Length bytes: a
				// truncated body, never to be forwarded as whole.
				err = io.ErrUnexpectedEOF
			}
			switch {
			case err == nil:
			case errors.Is(err, errBodyTooLarge):
				return rs.refuse(ctx, errTooLarge, lingerFull)
			case errors.Is(err, errBodyBudget):
				return rs.refuse(ctx, errBodyBufferFull, lingerFull)
			case isTimeout(err):
				return rs.refuse(ctx, errClientTimeout, lingerShort)
			default:
				return rs.refuse(ctx, errBadRequest, lingerFull)
			}
		} else {
			rs.body = append(rs.body, req.Body()...)
		}
	}
	req.SetBodyRaw(rs.body)
	return true
}

// refuse answers kind and closes the connection after the answer, lingering
// as mode says.
func (rs *requestState) refuse(ctx *fasthttp.RequestCtx, kind errorKind, mode uint32) bool {
	rs.srv.router.refuse(refusalOf(kind))
	rs.srv.writeError(ctx, kind)
	lingerOnClose(ctx, mode)
	return false
}

// readStream appends the streamed body to rs.body, at most bodyReadChunk
// per read, each read under client_body_timeout, reserving the budget
// ahead of each read and releasing it all when the body is read (or
// refused): from then on the admission slot bounds the request.
func (rs *requestState) readStream(ctx *fasthttp.RequestCtx, r io.Reader) error {
	s := rs.srv
	b := rs.body
	reserved := 0
	var err error
	for {
		if len(b) == cap(b) {
			b = append(b, 0)[:len(b)]
		}
		w := b[len(b):cap(b)]
		if len(w) > bodyReadChunk {
			w = w[:bodyReadChunk]
		}
		if need := len(b) + len(w) - reserved; need > 0 {
			if !s.bodies.reserve(need) {
				err = errBodyBudget
				break
			}
			reserved += need
		}
		if err = ctx.SetReadDeadline(time.Now().Add(s.bodyTimeout)); err != nil {
			break
		}
		var n int
		n, err = r.Read(w)
		b = b[:len(b)+n]
		if len(b) > s.bodyLimit {
			err = errBodyTooLarge
			break
		}
		if err == io.EOF {
			// The body is read: no read deadline while the request is
			// served (fasthttp sets its own for the next request).
			err = ctx.SetReadDeadline(time.Time{})
			break
		}
		if err != nil {
			break
		}
	}
	s.bodies.release(reserved)
	rs.body = b
	return err
}

// admit takes an admission slot for a request whose body is read, or
// answers 429. An admitted request's client is watched from here until
// finish (disconnect.go).
func (rs *requestState) admit(ctx *fasthttp.RequestCtx) bool {
	if err := rs.srv.router.acquireInto(&rs.guard); err != nil {
		rs.srv.writeError(ctx, errOverloaded)
		return false
	}
	rs.watch.setClient(ctx.Conn())
	rs.watch.begin()
	return true
}

var strContentLengthLower = []byte("content-length")

// hasHeader reports whether the raw header block (lines "Name: value"
// separated by CRLF or LF) has a field named name (lower case), in any
// case.
func hasHeader(raw, name []byte) bool {
	for len(raw) > 0 {
		line := raw
		if i := bytes.IndexByte(raw, '\n'); i >= 0 {
			line, raw = raw[:i], raw[i+1:]
		} else {
			raw = nil
		}
		if c := bytes.IndexByte(line, ':'); c == len(name) && bytes.EqualFold(line[:c], name) {
			return true
		}
	}
	return false
}

// maxRequestIDLen bounds a client-sent x-request-id; longer or non-printable
// ones are replaced.
const maxRequestIDLen = 128

// canonXRequestID is strXRequestID in fasthttp's canonical form, for
// SetCanonical (prepareUpstreamRequest forwards the id with it).
var canonXRequestID = []byte("X-Request-Id")

// setRequestID keeps a sane client x-request-id or generates one.
func (rs *requestState) setRequestID(req *fasthttp.Request) {
	id := req.Header.PeekBytes(strXRequestID)
	if len(id) == 0 || len(id) > maxRequestIDLen || !printable(id) {
		rs.reqID = rs.srv.ids.append(rs.reqID[:0])
	} else {
		rs.reqID = append(rs.reqID[:0], id...)
	}
}

var errBodyTooLarge = errors.New("proxy: request body too large")

// readLimited appends r's content to b, failing with errBodyTooLarge past
// limit bytes.
func readLimited(b []byte, r io.Reader, limit int) ([]byte, error) {
	for {
		if len(b) == cap(b) {
			b = append(b, 0)[:len(b)]
		}
		n, err := r.Read(b[len(b):cap(b)])
		b = b[:len(b)+n]
		if len(b) > limit {
			return b, errBodyTooLarge
		}
		if err == io.EOF {
			return b, nil
		}
		if err != nil {
			return b, err
		}
	}
}

func printable(b []byte) bool {
	for _, c := range b {
		if c < 0x21 || c > 0x7e {
			return false
		}
	}
	return true
}

// requestIDs generates x-request-id values: a random per-process prefix
// and a counter, 32 hex digits, unique within the process and unlikely to
// collide across processes. Safe for concurrent use; no allocation.
type requestIDs struct {
	prefix [16]byte // hex of 8 random bytes
	n      atomic.Uint64
}

func (g *requestIDs) init() {
	var raw [8]byte
	_, _ = rand.Read(raw[:]) // crypto/rand.Read never fails on supported platforms
	hex.Encode(g.prefix[:], raw[:])
}

// append appends a new ID to dst.
func (g *requestIDs) append(dst []byte) []byte {
	v := g.n.Add(1)
	dst = append(dst, g.prefix[:]...)
	const digits = "0123456789abcdef"
	for shift := 60; shift >= 0; shift -= 4 {
		dst = append(dst, digits[(v>>uint(shift))&0xf])
	}
	return dst
}
