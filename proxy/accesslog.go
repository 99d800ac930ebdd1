package proxy

import (
	"context"
	"log/slog"
	"net"
	"net/netip"
	"time"

	"github.com/valyala/fasthttp"
)

// The access log: one line, message "access" at level info, for every
// request Sluice answers — proxied, answered by a plugin, refused (429,
// 413, 408, 503…), cut by the client (499) — and for every request whose
// head could not be read (431, 414, 408, 400, 501). The fields and their
// units are listed in the README ("Operating Sluice", "Logs"). Durations
// are float milliseconds with microsecond resolution, the unit in the key
// (duration_ms, ttft_ms); sizes are bytes.
//
// With log.access off nothing on this page runs: the request path only
// tests Server.accessLog. With it on, the line is built in finish (after
// the slots are released) and handed to the logger's handler (text or
// JSON), which formats and writes it; BenchmarkAccessLog measures the
// cost.

// accessFields are what the access log needs that the rest of the request
// state does not keep. They are filled only while the access log is on,
// except bytesIn and bytesOut, kept either way (a store; an addition per
// body read).
// (The request line is in requestState.logMethod and logPath.)
type accessFields struct {
	client   []byte // the peer's "ip:port"
	bytesIn  int    // request body bytes read from the client
	bytesOut int    // response body bytes handed to the client connection
	pack     []byte // the line's strings, packed (strings)
	refused  string // what a request fasthttp could not read was refused for
}

func (a *accessFields) reset() {
	a.client = a.client[:0]
	a.bytesIn, a.bytesOut = 0, 0
	a.refused = ""
}

// noteRequest records the request line and the peer for the log line.
func (rs *requestState) noteRequest(ctx *fasthttp.RequestCtx) {
	rs.logMethod = append(rs.logMethod[:0], ctx.Request.Header.Method()...)
	rs.logPath = append(rs.logPath[:0], ctx.Request.Header.RequestURI()...)
	rs.acc.client = appendAddrPort(rs.acc.client[:0], ctx.RemoteAddr())
}

// noteResponse records the size of a response body set on ctx (one not
// streamed through requestState.Read, which counts as it goes).
func (a *accessFields) noteResponse(ctx *fasthttp.RequestCtx) {
	if !ctx.Request.Header.IsHead() {
		a.bytesOut = len(ctx.Response.Body())
	}
}

// appendAddrPort appends addr as "ip:port" ("[ip6]:port"), without
// allocating for TCP peers.
func appendAddrPort(dst []byte, addr net.Addr) []byte {
	if tcp, ok := addr.(*net.TCPAddr); ok {
		if ip, ok := netip.AddrFromSlice(tcp.IP); ok {
			return netip.AddrPortFrom(ip.Unmap(), uint16(tcp.Port)).AppendTo(dst)
		}
	}
	if addr == nil {
		return dst
	}
	return append(dst, addr.String()...)
}

// stampRequestID gives the answer the request's x-request-id unless it
// has one (a plugin may have rewritten it): every answer carries one,
// 429s and other refusals included, as Envoy's
// always_set_request_id_in_response does.
func (rs *requestState) stampRequestID(ctx *fasthttp.RequestCtx) {
	if ctx.Response.Header.PeekBytes(strXRequestID) == nil {
		ctx.Response.Header.SetBytesKV(strXRequestID, rs.reqID)
	}
}

// maxAccessAttrs is the most attributes an access line has.
const maxAccessAttrs = 20

// logAccess writes the access-log line of a finished request. Optional
// fields appear only when known: trace_id, upstream, endpoint and
// attempts once the request reached a pool, model when the body named
// one, prompt_tokens and completion_tokens when the answer reported
// usage, ttft_ms for a streamed answer, error when one ended the request.
func (s *Server) logAccess(rs *requestState, elapsed time.Duration) {
	ctx := context.Background()
	if !s.log.Enabled(ctx, slog.LevelInfo) {
		return
	}
	// The line's byte-slice fields become strings with one copy.
	var str [numAccessStrings]string
	rs.acc.strings(&str, rs)
	var buf [maxAccessAttrs]slog.Attr
	a := append(buf[:0],
		slog.String("request_id", str[strRequestID]))
	if str[strTraceID] != "" {
		a = append(a, slog.String("trace_id", str[strTraceID]))
	}
	a = append(a,
		slog.String("client_addr", str[strClient]),
		slog.String("method", str[strMethod]),
		slog.String("path", str[strPath]),
		slog.Int("status", rs.status),
		slog.Bool("ok", rs.ok),
		slog.Float64("duration_ms", millis(elapsed)),
		slog.Int("bytes_in", rs.acc.bytesIn),
		slog.Int("bytes_out", rs.acc.bytesOut),
	)
	if rs.pool != nil {
		a = append(a, slog.String("upstream", rs.pool.Name()))
	}
	if n := len(rs.tried); n > 0 {
		a = append(a, slog.String("endpoint", rs.tried[n-1].Addr), slog.Int("attempts", n))
	}
	if rs.model.has {
		a = append(a, slog.String("model", str[strModel]))
	}
	if u := &rs.usage; u.haveUsage {
		a = append(a, slog.Uint64("prompt_tokens", u.prompt), slog.Uint64("completion_tokens", u.completion))
	}
	if u := &rs.usage; u.firstSeen {
		a = append(a, slog.Float64("ttft_ms", millis(u.ttft)))
	}
	if rs.upErr != nil {
		a = append(a, slog.String("error", rs.upErr.Error()))
	} else if rs.acc.refused != "" {
		a = append(a, slog.String("error", rs.acc.refused))
	}
	// What Logger.LogAttrs does, minus runtime.Callers for a source
	// position that would always be this line.
	r := slog.NewRecord(time.Now(), slog.LevelInfo, "access", 0)
	r.AddAttrs(a...)
	_ = s.log.Handler().Handle(ctx, r)
}

// The access line's fields held as bytes, in the order strings packs them.
const (
	strRequestID = iota
	strTraceID
	strClient
	strMethod
	strPath
	strModel
	numAccessStrings
)

// strings sets str to the byte-slice fields of rs's line, all copied into
// one string (one allocation instead of one per field; the handler may
// keep the strings, so they must not share rs's reused buffers).
func (a *accessFields) strings(str *[numAccessStrings]string, rs *requestState) {
	parts := [numAccessStrings][]byte{
		strRequestID: rs.reqID, strTraceID: rs.trace.TraceID(), strClient: a.client,
		strMethod: rs.logMethod, strPath: rs.logPath, strModel: rs.model.name,
	}
	a.pack = a.pack[:0]
	for _, p := range parts {
		a.pack = append(a.pack, p...)
	}
	all := string(a.pack)
	off := 0
	for i, p := range parts {
		str[i] = all[off : off+len(p)]
		off += len(p)
	}
}

// millis is d in milliseconds, at microsecond resolution.
func millis(d time.Duration) float64 { return float64(d/time.Microsecond) / 1000 }

// answerUnread finishes the answer to a request fasthttp could not read
// (handleParseError) for reason kind: a new request id — fasthttp resets
// a request it failed to read, so the client's id is gone — and the
// access-log line, with the client's address, the status and, as error,
// the answer's code (request_header_too_large…). There is no
// method, path or trace id (nothing was forwarded), and duration_ms is 0:
// fasthttp records a request's time only once its head is read.
func (s *Server) answerUnread(ctx *fasthttp.RequestCtx, kind errorKind) {
	rs := s.statePool.Get().(*requestState)
	rs.reqID = s.ids.append(rs.reqID[:0])
	ctx.Response.Header.SetBytesKV(strXRequestID, rs.reqID)
	if s.accessLog {
		rs.acc.client = appendAddrPort(rs.acc.client[:0], ctx.RemoteAddr())
		rs.acc.noteResponse(ctx)
		rs.status = ctx.Response.StatusCode()
		rs.acc.refused = errorSpecs[kind].oaCode
		s.logAccess(rs, 0)
	}
	rs.reset()
	s.statePool.Put(rs)
}
