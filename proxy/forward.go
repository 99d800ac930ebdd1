package proxy

import (
	"bytes"
	"errors"
	"io"
	"net"
	"net/netip"

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

	// hopHeaders are meaningful for one connection only and never forwarded
	// (RFC 9110 section 7.6.1; the list net/http/httputil uses).
	hopHeaders = [][]byte{
		[]byte("Connection"), []byte("Proxy-Connection"), []byte("Keep-Alive"),
		[]byte("Proxy-Authenticate"), []byte("Proxy-Authorization"), []byte("Te"),
		[]byte("Trailer"), []byte("Transfer-Encoding"), []byte("Upgrade"),
	}
)

// maxRequestIDLen bounds a client-sent x-request-id; longer or non-printable
// ones are replaced.
const maxRequestIDLen = 128

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
	if !rs.handedOff {
		rs.status = ctx.Response.StatusCode()
		rs.finish()
	}
}

func (rs *requestState) forward(ctx *fasthttp.RequestCtx) {
	s := rs.srv
	req := &ctx.Request
	rs.setRequestID(req)
	if s.accessLog {
		rs.logMethod = append(rs.logMethod[:0], req.Header.Method()...)
		rs.logPath = append(rs.logPath[:0], req.Header.RequestURI()...)
	}
	if !rs.readBody(ctx) || !rs.admit(ctx) {
		return
	}
	if len(s.filters) > 0 && !rs.requestPhase(ctx) {
		return
	}
	rs.findModel(req)
	if s.models.enabled && rs.ex.upstream == "" && isModelsList(req) {
		rs.ok = true
		s.serveModels(ctx)
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
	rs.prepareUpstreamRequest(ctx)
	rs.applyAlias(req, p)
	rs.send(ctx)
}

// choosePool returns the pool a filter chose, or the route's.
func (rs *requestState) choosePool(ctx *fasthttp.RequestCtx) (*upstream.Pool, errorKind) {
	s := rs.srv
	req := &ctx.Request
	if len(s.filters) == 0 {
		return s.selectPool(req.URI().Path(), req.Header.Host(), (*fasthttpHeaders)(&req.Header), &rs.model)
	}
	if rs.ex.upstream != "" {
		return s.pools.ByName(rs.ex.upstream), 0
	}
	return s.selectPool(req.URI().Path(), req.Header.Host(), (*exchangeHeaders)(&rs.ex.reqHeaders), &rs.model)
}

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

// prepareUpstreamRequest turns the client's request into the upstream's:
// hop-by-hop headers stripped, X-Forwarded-* set, x-request-id set.
func (rs *requestState) prepareUpstreamRequest(ctx *fasthttp.RequestCtx) {
	h := &ctx.Request.Header
	rs.clientClose = h.ConnectionClose()
	h.ResetConnectionClose()
	for _, k := range hopHeaders {
		h.DelBytes(k)
	}
	trust := rs.srv.cfg.TrustForwardedHeaders
	rs.scratch = rs.scratch[:0]
	if trust {
		if prior := h.PeekBytes(strXForwardedFor); len(prior) > 0 {
			rs.scratch = append(append(rs.scratch, prior...), strCommaSpace...)
		}
	}
	rs.scratch = appendRemoteIP(rs.scratch, ctx.RemoteAddr())
	h.SetBytesKV(strXForwardedFor, rs.scratch)
	if !trust || len(h.PeekBytes(strXForwardedProto)) == 0 {
		proto := strHTTP
		if ctx.IsTLS() {
			proto = strHTTPS
		}
		h.SetBytesKV(strXForwardedProto, proto)
	}
	h.SetBytesKV(strXRequestID, rs.reqID)
}

// respond sends the upstream's response to the client, through the
// response phase of the filters; the body is streamed when it has no
// length or is an event stream, or whenever no filter needs it whole.
func (rs *requestState) respond(ctx *fasthttp.RequestCtx) {
	s := rs.srv
	up := &rs.resp
	out := &ctx.Response
	up.Header.CopyTo(&out.Header)
	out.Header.ResetConnectionClose()
	for _, k := range hopHeaders {
		out.Header.DelBytes(k)
	}
	out.Header.SetBytesKV(strXRequestID, rs.reqID)
	if rs.clientClose {
		ctx.SetConnectionClose()
	}
	sse := bytes.HasPrefix(up.Header.ContentType(), strEventStream)
	if sse {
		out.Header.SetBytesKV(strXAccelBuffering, strNo)
	}
	if len(s.filters) > 0 && !rs.responseHeaderPhase(ctx) {
		return
	}
	if rs.model.has && rs.status >= 200 && rs.status < 300 && len(up.Header.ContentEncoding()) == 0 {
		rs.usage.begin(s.modelMet.lookup(rs.model.name), rs.start, sse)
	}
	stream := up.BodyStream()
	if stream == nil { // no body: HEAD, 204, 304
		rs.ok = true
		return
	}
	size := up.Header.ContentLength()
	if size < 0 {
		size = -1
	}
	rs.upBody = stream
	if len(s.filters) > 0 {
		if size >= 0 && !sse {
			rs.bufferedResponseBody(ctx)
			return
		}
		rs.filtered = true
		rs.pausedAt = len(rs.streams)
		size = -1
	}
	if sse && size < 0 {
		rs.sseDialect = s.streamDialect(&ctx.Request)
	}
	rs.handedOff = true
	rs.status = out.StatusCode()
	// A stream's headers go out at once, as the upstream sent them, so the
	// client sees the answer start before the first event.
	out.ImmediateHeaderFlush = size < 0
	out.SetBodyStream(rs, size)
}

func isTimeout(err error) bool {
	if errors.Is(err, fasthttp.ErrTimeout) {
		return true
	}
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func printable(b []byte) bool {
	for _, c := range b {
		if c < 0x21 || c > 0x7e {
			return false
		}
	}
	return true
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

// fasthttpHeaders and exchangeHeaders adapt header lookups for route
// matching.
type fasthttpHeaders fasthttp.RequestHeader

func (h *fasthttpHeaders) get(name []byte) ([]byte, bool) {
	v := (*fasthttp.RequestHeader)(h).PeekBytes(name)
	return v, v != nil
}

type exchangeHeaders Headers

func (h *exchangeHeaders) get(name []byte) ([]byte, bool) { return (*Headers)(h).Get(name) }
