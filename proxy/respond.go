package proxy

import (
	"bytes"
	"errors"
	"io"
	"net"

	"github.com/VictoriaMetrics/metrics"
	"github.com/sluice-proxy/sluice/proxy/internal/coalesce"
	"github.com/sluice-proxy/sluice/proxy/internal/hopheaders"
	"github.com/valyala/fasthttp"
)

// respond sends the upstream's response to the client, through the
// response phase of the filters; the body is streamed when it has no
// length or is an event stream, or whenever no filter needs it whole.
func (rs *requestState) respond(ctx *fasthttp.RequestCtx) {
	s := rs.srv
	up := &rs.resp
	out := &ctx.Response
	up.Header.CopyTo(&out.Header)
	out.Header.ResetConnectionClose()
	hopheaders.StripResponse(&out.Header)
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
	rs.srv.hold() // the stream keeps its generation until finish
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

// Read implements io.Reader for the response body handed to fasthttp.
func (rs *requestState) Read(p []byte) (int, error) {
	n, err := rs.readResponse(p)
	rs.acc.bytesOut += n
	return n, err
}

// readResponse reads the next part of the response body for Read.
func (rs *requestState) readResponse(p []byte) (int, error) {
	if rs.cutErr != nil {
		return rs.readCut(p)
	}
	if !rs.filtered {
		n, err := rs.upBody.Read(p)
		if err == nil && n > 0 && rs.resp.Header.ContentLength() == -1 { // chunked
			n, err = coalesce.ReadBuffered(rs.up.br, rs.upBody, p, n)
		}
		rs.usage.observe(p[:n])
		if err == io.EOF {
			rs.upEOF = true
			rs.usage.eof()
		} else if err != nil {
			rs.upstreamBodyFailed(err)
			return rs.cutStream(p, n, err)
		}
		rs.noteSent(p[:n])
		return n, err
	}
	n, err := rs.readFiltered(p)
	if err != nil && err != io.EOF {
		return rs.cutStream(p, n, err)
	}
	rs.noteSent(p[:n])
	return n, err
}

// upstreamBodyFailed records an error reading the upstream's body (a
// reset or idle timeout mid-response): a failure for passive ejection.
func (rs *requestState) upstreamBodyFailed(err error) {
	rs.upErr = err
	if rs.watch.gone.Load() { // the disconnect watch closed it
		return
	}
	if rs.ep != nil {
		rs.ep.RecordFailure()
	}
}

// A response body that fails after its head went to the client — the
// upstream resets or falls silent past the timeout, or a plugin fails on
// a body chunk — cannot be turned into an error status any more. Sluice
// then ends the response so that the client cannot take it for complete:
//
//   - the connection is aborted without the terminating zero-length chunk
//     of a chunked body (fasthttp writes no terminator when the body
//     reader fails, and closes the connection), so HTTP clients report an
//     unexpected EOF instead of a short, clean answer;
//   - an event stream (text/event-stream, chunked) first gets one error
//     event in its own dialect, which SDKs raise as an API error:
//     OpenAI's `data: {"error":{"message",…,"type","code"}}` and, on TGI's
//     /generate_stream, `data:{"error":"…","error_type":"…"}` (TGI's own
//     error events; huggingface_hub raises them);
//   - sluice_streams_truncated_total{reason="upstream"|"plugin"} counts it.
//
// Other bodies (fixed length, or not an event stream) are only aborted.

// cut reasons, the label of sluice_streams_truncated_total.
const (
	cutUpstream = iota
	cutPlugin
	numCutReasons
)

var cutReasonNames = [numCutReasons]string{cutUpstream: "upstream", cutPlugin: "plugin"}

// stream error event dialects; 0 means no event (not an event stream).
const (
	dialectNone uint8 = iota
	dialectOpenAI
	dialectTGI
)

// cut kinds: what the event says.
const (
	cutKindUpstream = iota
	cutKindTimeout
	cutKindPlugin
	numCutKinds
)

var cutSpecs = [numCutKinds]errorSpec{
	cutKindUpstream: {502, "The upstream connection failed in the middle of the response; it is incomplete",
		"api_error", "bad_gateway", "incomplete_generation"},
	cutKindTimeout: {504, "The upstream sent nothing within the timeout in the middle of the response; it is incomplete",
		"timeout_error", "upstream_timeout", "incomplete_generation"},
	cutKindPlugin: {503, "A plugin failed on the response body; the response is incomplete",
		"api_error", "plugin_failure", "plugin_failure"},
}

// streamCuts holds a server's rendered error events and its truncation
// counters; built once by NewServer, read-only afterwards.
type streamCuts struct {
	// events[dialect][kind] is "\n\n" followed by the event; the prefix
	// ends a partial event the upstream left unterminated, and is skipped
	// when the stream stopped at an event boundary.
	events [3][numCutKinds][]byte
	total  [numCutReasons]*metrics.Counter
}

func (c *streamCuts) init(set *metrics.Set) {
	for k, s := range cutSpecs {
		oa := errorJSON(true, s.message, s.oaType, s.oaCode, s.tgiType)
		tgi := errorJSON(false, s.message, s.oaType, s.oaCode, s.tgiType)
		c.events[dialectOpenAI][k] = append(append([]byte("\n\ndata: "), oa...), "\n\n"...)
		c.events[dialectTGI][k] = append(append([]byte("\n\ndata:"), tgi...), "\n\n"...)
	}
	for r, name := range cutReasonNames {
		c.total[r] = set.GetOrCreateCounter(`sluice_streams_truncated_total{reason="` + name + `"}`)
	}
}

var (
	strGenerateStream = []byte("/generate_stream")
	strLFLF           = []byte("\n\n")
	strCRCR           = []byte("\r\r")
	strLFCRLF         = []byte("\n\r\n") // also the end of CRLF CRLF
)

// streamDialect returns the error event dialect of an event stream
// answering req (the upstream request): TGI's on /generate_stream (and,
// without openai_compat, on TGI's compatibility route "/"), OpenAI's
// elsewhere.
func (s *Server) streamDialect(req *fasthttp.Request) uint8 {
	path := req.URI().Path()
	if bytes.HasSuffix(path, strGenerateStream) || !s.cfg.OpenAICompat && len(path) == 1 && path[0] == '/' {
		return dialectTGI
	}
	return dialectOpenAI
}

// noteSent keeps the last bytes of an event stream that went to the
// client, to tell whether it stopped at an event boundary.
func (rs *requestState) noteSent(b []byte) {
	if rs.sseDialect == dialectNone || len(b) == 0 {
		return
	}
	if len(b) >= len(rs.tail) {
		copy(rs.tail[:], b[len(b)-len(rs.tail):])
		return
	}
	copy(rs.tail[:], rs.tail[len(b):])
	copy(rs.tail[len(rs.tail)-len(b):], b)
}

// atEventBoundary reports whether the stream sent so far ends with a
// blank line (or is empty), so that a new event can start.
func (rs *requestState) atEventBoundary() bool {
	if rs.tail == [4]byte{} { // nothing sent
		return true
	}
	t := rs.tail[:]
	return bytes.HasSuffix(t, strLFLF) || bytes.HasSuffix(t, strCRCR) || bytes.HasSuffix(t, strLFCRLF)
}

// cutStream ends a response body that failed with err after n bytes were
// read into p: it counts the cut, queues the error event of an event
// stream, and returns what Read returns now. Later Reads drain the event,
// then fail with err, so fasthttp aborts the response.
func (rs *requestState) cutStream(p []byte, n int, err error) (int, error) {
	rs.noteSent(p[:n])
	rs.cutErr = err
	reason, kind := cutUpstream, cutKindUpstream
	switch {
	case errors.Is(err, errFilterStopped):
		reason, kind = cutPlugin, cutKindPlugin
	case isTimeout(err):
		kind = cutKindTimeout
	}
	s := rs.srv
	s.streamCuts.total[reason].Inc()
	if rs.upErr == nil {
		rs.upErr = err
	}
	if rs.sseDialect != dialectNone {
		ev := s.streamCuts.events[rs.sseDialect][kind]
		if rs.atEventBoundary() {
			ev = ev[2:]
		}
		rs.cutOut = ev
	}
	s.log.Warn("proxy: response cut after its head was sent", "request_id", string(rs.reqID),
		"reason", cutReasonNames[reason], "error", err)
	if n > 0 {
		return n, nil
	}
	return rs.readCut(p)
}

// readCut serves the pending error event, then the error.
func (rs *requestState) readCut(p []byte) (int, error) {
	if len(rs.cutOut) > 0 {
		k := copy(p, rs.cutOut)
		rs.cutOut = rs.cutOut[k:]
		return k, nil
	}
	return 0, rs.cutErr
}
