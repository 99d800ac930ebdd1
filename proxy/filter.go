package proxy

import (
	"errors"
	"io"
	"strconv"
	"time"

	"github.com/valyala/fasthttp"
)

// Action is a filter's answer to a phase callback.
type Action uint8

const (
	// ActionContinue lets the request go on to the next filter or phase.
	ActionContinue Action = iota
	// ActionPause stops the request until the filter calls Exchange.Resume,
	// sends a local response, or the pause times out (Config.Timeout).
	//
	// In the response-body phase, pausing on a chunk before the end of the
	// stream means "buffer": the proxy accumulates the body and calls the
	// filter again with the whole body at end of stream, as Envoy does.
	ActionPause
)

// String returns the action's name.
func (a Action) String() string {
	switch a {
	case ActionContinue:
		return "continue"
	case ActionPause:
		return "pause"
	}
	return "unknown"
}

// Filter is one configured extension (for example one Proxy-Wasm plugin).
// It builds a Stream per request. Filters run in configuration order.
//
// A Filter is safe for concurrent use: NewStream is called from many
// request goroutines at once.
type Filter interface {
	// Name is the configured name, used in logs, metrics and errors.
	Name() string
	// FailOpen reports the failure policy: true skips the filter for a
	// request whose stream failed, false (fail closed) answers that request
	// with 503.
	FailOpen() bool
	// NewStream starts the filter's work on one request. The Exchange is
	// valid until Stream.OnDone returns; the filter must not keep it after.
	NewStream(ex *Exchange) (Stream, error)
	// Close releases the filter's resources. No Stream is used after Close.
	Close() error
}

// Stream is one filter's view of one request. The proxy calls its methods
// from one goroutine at a time, in phase order, and calls OnDone exactly
// once on every path (local reply, error, client gone, panic).
//
// A callback that returns an error has failed (the guest trapped, timed out
// or misbehaved); the proxy applies the filter's failure policy and calls no
// further phase callbacks on that stream, but still calls OnDone.
type Stream interface {
	OnRequestHeaders(endOfStream bool) (Action, error)
	OnRequestBody(endOfStream bool) (Action, error)
	OnResponseHeaders(endOfStream bool) (Action, error)
	OnResponseBody(endOfStream bool) (Action, error)
	// OnDone ends the stream (Proxy-Wasm: log, done, delete).
	OnDone()
}

// ErrUnknownUpstream is returned by Exchange.SetUpstream for a pool name
// that is not configured.
var ErrUnknownUpstream = errors.New("proxy: unknown upstream")

var (
	hdrMethod    = []byte(":method")
	hdrPath      = []byte(":path")
	hdrAuthority = []byte(":authority")
	hdrScheme    = []byte(":scheme")
	hdrStatus    = []byte(":status")
)

// phase selects a Stream callback.
type phase uint8

const (
	phaseRequestHeaders phase = iota
	phaseRequestBody
	phaseResponseHeaders
	phaseResponseBody
)

// maxBufferedResponse bounds a response body buffered for filters.
const maxBufferedResponse = 64 << 20

// filterFailed logs filter i's error and ends its stream (OnDone); it
// reports whether the filter fails open, so the chain goes on without it.
func (rs *requestState) filterFailed(i int, err error) (failOpen bool) {
	f := rs.srv.filters[i]
	rs.srv.log.Warn("proxy: filter failed", "filter", f.Name(), "request_id", string(rs.reqID), "error", err)
	st := rs.streams[i]
	rs.streams[i] = nil
	st.OnDone()
	return f.FailOpen()
}

// callFilter runs one phase callback of filter i. It returns false when
// the chain must stop: a local reply was set, or the filter failed closed
// (then the 503 is already written).
func (rs *requestState) callFilter(ctx *fasthttp.RequestCtx, i int, ph phase, eos bool) (Action, bool) {
	st := rs.streams[i]
	if st == nil {
		return ActionContinue, true
	}
	if rs.watch.gone.Load() { // no more callbacks for a gone client (Envoy)
		rs.clientGone(ctx)
		return ActionContinue, false
	}
	var act Action
	var err error
	switch ph {
	case phaseRequestHeaders:
		act, err = st.OnRequestHeaders(eos)
	case phaseRequestBody:
		act, err = st.OnRequestBody(eos)
	case phaseResponseHeaders:
		act, err = st.OnResponseHeaders(eos)
	default:
		act, err = st.OnResponseBody(eos)
	}
	if err != nil {
		return rs.callbackFailed(ctx, i, err)
	}
	if act == ActionPause && !rs.ex.hasLocal {
		resumed := rs.waitResume()
		if rs.watch.gone.Load() { // the client left while paused
			rs.clientGone(ctx)
			return ActionContinue, false
		}
		if !resumed {
			rs.srv.writeError(ctx, errTimeout)
			return ActionContinue, false
		}
		if failed := rs.ex.failed.Swap(nil); failed != nil {
			return rs.callbackFailed(ctx, i, *failed) // Exchange.Fail
		}
	}
	if rs.ex.hasLocal {
		rs.sendLocal(ctx)
		return ActionContinue, false
	}
	return act, true
}

// waitResume blocks until the paused request is resumed, the timeout
// passes, or the client goes away (the disconnect watch's gone channel:
// the caller then sees watch.gone); it reports false on timeout.
func (rs *requestState) waitResume() bool {
	ex := &rs.ex
	ex.mu.Lock()
	ex.paused = true
	ex.mu.Unlock()
	prev := rs.watch.phase.Load()
	rs.watch.setPhase(phasePaused)
	t := time.NewTimer(rs.srv.timeout)
	resumed := true
	select {
	case <-ex.resumeCh:
	case <-t.C:
		resumed = false
	case <-rs.watch.goneCh:
	}
	t.Stop()
	rs.watch.setPhase(prev)
	ex.mu.Lock() // waits for an async filter callback in progress
	ex.paused = false
	ex.mu.Unlock()
	return resumed || ex.hasLocal
}

// callbackFailed applies filter i's failure policy to err, the failure
// of one of its callbacks (or of its pause: Exchange.Fail). It returns
// what callFilter returns.
func (rs *requestState) callbackFailed(ctx *fasthttp.RequestCtx, i int, err error) (Action, bool) {
	if rs.filterFailed(i, err) {
		return ActionContinue, true
	}
	rs.failClosed(ctx)
	return ActionContinue, false
}

func (rs *requestState) failClosed(ctx *fasthttp.RequestCtx) {
	rs.ok = false
	ctx.Response.ResetBody()
	rs.srv.writeError(ctx, errPluginFailure)
}

// sendLocal writes a filter's local reply and counts it as a plugin
// rejection. The request counts as completed: the proxy did what the
// policy asked.
func (rs *requestState) sendLocal(ctx *fasthttp.RequestCtx) {
	lr := &rs.ex.local
	resp := &ctx.Response
	resp.Reset()
	resp.SetStatusCode(lr.status)
	for i := 0; i < lr.headers.Len(); i++ {
		k, v := lr.headers.At(i)
		if len(k) > 0 && k[0] == ':' {
			continue
		}
		resp.Header.AddBytesKV(k, v)
	}
	resp.Header.SetBytesKV(strXRequestID, rs.reqID)
	resp.SetBody(lr.body)
	if rs.ex.closeConn {
		ctx.SetConnectionClose()
		rs.ok = false
	} else {
		rs.ok = true
	}
	rs.srv.router.byPlugin.Inc()
}

// requestPhase creates the filter streams and runs the request headers and
// body callbacks; it writes the request back into ctx when a filter changed
// it. It returns false when the request was answered.
func (rs *requestState) requestPhase(ctx *fasthttp.RequestCtx) bool {
	s := rs.srv
	ex := &rs.ex
	loadRequestExchange(ex, ctx, rs)
	for i, f := range s.filters {
		st, err := f.NewStream(ex)
		if err != nil {
			s.log.Warn("proxy: filter could not start", "filter", f.Name(), "error", err)
			if f.FailOpen() {
				continue
			}
			rs.failClosed(ctx)
			return false
		}
		rs.streams[i] = st
		rs.created = i + 1
	}
	rs.created = len(s.filters)
	eos := len(rs.body) == 0
	for i := range rs.streams {
		if _, ok := rs.callFilter(ctx, i, phaseRequestHeaders, eos); !ok {
			return false
		}
	}
	if !eos {
		// The filters see the body read (rs.body) itself, not a copy; what
		// the Exchange holds after them (SetRequestBody writes in place or
		// grows it) is the body sent.
		ex.reqBody = rs.body
		for i := range rs.streams {
			if _, ok := rs.callFilter(ctx, i, phaseRequestBody, true); !ok {
				return false
			}
		}
		rs.body = ex.reqBody
		ctx.Request.SetBodyRaw(rs.body)
	}
	if ex.reqHeaders.Modified() {
		storeRequestHeaders(&ctx.Request, &ex.reqHeaders)
	}
	return true
}

// loadRequestExchange fills ex from the client's request.
func loadRequestExchange(ex *Exchange, ctx *fasthttp.RequestCtx, rs *requestState) {
	req := &ctx.Request
	h := &ex.reqHeaders
	h.Add(hdrMethod, req.Header.Method())
	h.Add(hdrPath, req.Header.RequestURI())
	h.Add(hdrAuthority, req.Header.Host())
	if ctx.IsTLS() {
		h.Add(hdrScheme, strHTTPS)
	} else {
		h.Add(hdrScheme, strHTTP)
	}
	for k, v := range req.Header.All() {
		if equalFold(k, hostHeader) {
			continue
		}
		h.Add(k, v)
	}
	h.Set(strXRequestID, rs.reqID)
	h.ClearModified()
	ex.requestID = append(ex.requestID[:0], rs.reqID...)
	ex.start = rs.start
	ex.remoteAddr = ctx.RemoteAddr()
	ex.localAddr = ctx.LocalAddr()
	ex.protocol = string(req.Header.Protocol())
}

var hostHeader = []byte("Host")

// storeRequestHeaders replaces the request's method, URI, host and
// headers with the filter-modified map.
func storeRequestHeaders(req *fasthttp.Request, h *Headers) {
	var method, path, authority []byte
	if v, ok := h.Get(hdrMethod); ok {
		method = append(method, v...)
	}
	if v, ok := h.Get(hdrPath); ok {
		path = append(path, v...)
	}
	if v, ok := h.Get(hdrAuthority); ok {
		authority = append(authority, v...)
	}
	if method == nil {
		method = append(method, req.Header.Method()...)
	}
	if path == nil {
		path = append(path, req.Header.RequestURI()...)
	}
	if authority == nil {
		authority = append(authority, req.Header.Host()...)
	}
	req.Header.Reset()
	req.Header.SetMethodBytes(method)
	req.SetRequestURIBytes(path)
	req.Header.SetHostBytes(authority)
	if u := req.URI(); len(u.PathOriginal()) == 0 && len(path) > 0 {
		// fasthttp parses the target together with the Host header and,
		// for a host it refuses (a plugin's "127.0.0.1:8080-canary",
		// whose "port" is not a number), leaves an empty URI that
		// routes and forwards as "/". Envoy forwards such an :authority
		// as written: parse the target alone and keep the Host header.
		_ = u.Parse(nil, path)
		req.UseHostHeader = true
	}
	for i := 0; i < h.Len(); i++ {
		k, v := h.At(i)
		if len(k) > 0 && k[0] == ':' || equalFold(k, contentLengthHeader) {
			continue
		}
		req.Header.AddBytesKV(k, v)
	}
}

var contentLengthHeader = []byte("content-length")

// responseHeaderPhase runs the response headers callbacks. It returns false
// when the response was replaced (local reply or failure).
func (rs *requestState) responseHeaderPhase(ctx *fasthttp.RequestCtx) bool {
	ex := &rs.ex
	out := &ctx.Response
	h := &ex.respHeaders
	ex.status = rs.status
	var num [3]byte
	h.Add(hdrStatus, strconv.AppendInt(num[:0], int64(rs.status), 10))
	for k, v := range out.Header.All() {
		h.Add(k, v)
	}
	h.ClearModified()
	eos := rs.resp.BodyStream() == nil
	for i := range rs.streams {
		if _, ok := rs.callFilter(ctx, i, phaseResponseHeaders, eos); !ok {
			return false
		}
	}
	if h.Modified() {
		status := rs.status
		if v, ok := h.Get(hdrStatus); ok {
			if n, err := strconv.Atoi(string(v)); err == nil && n >= 100 && n <= 999 {
				status = n
			}
		}
		out.Header.Reset()
		out.Header.SetStatusCode(status)
		for i := 0; i < h.Len(); i++ {
			k, v := h.At(i)
			if len(k) > 0 && k[0] == ':' || equalFold(k, contentLengthHeader) {
				continue
			}
			out.Header.AddBytesKV(k, v)
		}
	}
	return true
}

// bufferedResponseBody reads a response of known length whole and runs the
// body callbacks once, at end of stream.
func (rs *requestState) bufferedResponseBody(ctx *fasthttp.RequestCtx) {
	b, err := readLimited(rs.ex.respBody[:0], rs.upBody, maxBufferedResponse)
	rs.ex.respBody = b
	rs.usage.observe(b)
	if err != nil {
		rs.upstreamBodyFailed(err)
		kind := errBadGateway
		if isTimeout(err) {
			kind = errTimeout
		}
		ctx.Response.Header.Reset()
		rs.srv.writeError(ctx, kind)
		return
	}
	rs.upEOF = true
	rs.usage.eof()
	for i := range rs.streams {
		if _, ok := rs.callFilter(ctx, i, phaseResponseBody, true); !ok {
			return
		}
	}
	ctx.Response.SetBody(rs.ex.respBody)
	rs.ok = true
}

// readFiltered feeds streamed upstream chunks through the body callbacks.
// A filter that pauses before the end makes the proxy buffer the body for
// it and the filters after it, which see the whole body at end of stream;
// filters before it keep seeing each chunk (Envoy's behaviour).
func (rs *requestState) readFiltered(p []byte) (int, error) {
	for rs.outOff == len(rs.out) {
		if rs.eosSent {
			return 0, io.EOF
		}
		rs.out, rs.outOff = rs.out[:0], 0
		if cap(rs.chunk) == 0 {
			rs.chunk = make([]byte, 16<<10)
		}
		n, err := rs.upBody.Read(rs.chunk[:cap(rs.chunk)])
		rs.usage.observe(rs.chunk[:n])
		if n > 0 {
			if !rs.filterChunk(rs.chunk[:n], false) {
				return 0, errFilterStopped
			}
		}
		if err == io.EOF {
			rs.upEOF = true
			rs.usage.eof()
			if !rs.filterChunk(nil, true) {
				return 0, errFilterStopped
			}
			rs.eosSent = true
		} else if err != nil {
			rs.upstreamBodyFailed(err)
			return 0, err
		}
	}
	n := copy(p, rs.out[rs.outOff:])
	rs.outOff += n
	return n, nil
}

type filterStoppedError struct{}

func (filterStoppedError) Error() string { return "proxy: a filter stopped the response stream" }

var errFilterStopped error = filterStoppedError{}

// filterChunk runs one chunk through the body callbacks and appends what
// goes to the client to rs.out. It returns false when a filter failed
// closed or answered locally mid-stream: the response cannot be replaced
// any more, so the stream is cut.
func (rs *requestState) filterChunk(data []byte, eos bool) bool {
	ex := &rs.ex
	ex.respBody = append(ex.respBody[:0], data...)
	for i := 0; i < rs.pausedAt; i++ {
		st := rs.streams[i]
		if st == nil {
			continue
		}
		act, err := st.OnResponseBody(eos)
		if err != nil {
			if rs.filterFailed(i, err) {
				continue
			}
			return false
		}
		if ex.hasLocal {
			return false
		}
		if act == ActionPause && !eos {
			rs.pausedAt = i
			rs.bodyBuf = append(rs.bodyBuf, ex.respBody...)
			return true
		}
	}
	if rs.pausedAt == len(rs.streams) {
		rs.out = append(rs.out, ex.respBody...)
		return true
	}
	rs.bodyBuf = append(rs.bodyBuf, ex.respBody...)
	if len(rs.bodyBuf) > maxBufferedResponse {
		return false
	}
	if !eos {
		return true
	}
	ex.respBody = append(ex.respBody[:0], rs.bodyBuf...)
	for i := rs.pausedAt; i < len(rs.streams); i++ {
		st := rs.streams[i]
		if st == nil {
			continue
		}
		if _, err := st.OnResponseBody(true); err != nil {
			f := rs.srv.filters[i]
			rs.srv.log.Warn("proxy: filter failed", "filter", f.Name(), "request_id", string(rs.reqID), "error", err)
			rs.streams[i] = nil
			st.OnDone()
			if !f.FailOpen() {
				return false
			}
		}
		if ex.hasLocal {
			return false
		}
	}
	rs.out = append(rs.out, ex.respBody...)
	return true
}
