package wasm

import (
	"context"

	"github.com/sluice-proxy/sluice/proxy"
	"github.com/tetratelabs/wazero/api"
)

// Host functions on HTTP fields, bodies and the stream. They act on the
// effective context (normally the HTTP context whose callback runs).

// headerMap returns the map mt of the effective context. A nil map with
// statusOK means the map type is valid but not available here (the root
// context, trailers, response headers before the response): reads see an
// empty map, writes fail with BAD_ARGUMENT, as in Envoy.
func (in *instance) headerMap(mt mapType) (h *proxy.Headers, writable bool, st status) {
	switch {
	case mt > mapHTTPCallResponseTrailer:
		return nil, false, statusBadArgument
	case mt == mapHTTPCallResponseHeaders && in.callout != nil:
		return &in.callout.headers, false, statusOK
	case mt == mapHTTPCallResponseTrailer && in.callout != nil:
		return &in.callout.trailers, false, statusOK
	}
	s := in.eff
	if s == nil {
		return nil, false, statusOK
	}
	switch mt {
	case mapRequestHeaders:
		return s.ex.RequestHeaders(), s.phase <= cbRequestBody, statusOK
	case mapResponseHeaders:
		if !s.responseSeen {
			return nil, false, statusOK
		}
		w := s.phase == cbResponseHeaders || s.phase == cbResponseBody
		return s.ex.ResponseHeaders(), w, statusOK
	}
	return nil, false, statusOK
}

func hostGetHeaderMapPairs(ctx context.Context, mod api.Module, stack []uint64) {
	in := callerOf(ctx, stack)
	if in == nil {
		return
	}
	h, _, st := in.headerMap(mapType(u32(stack[0])))
	if st == statusOK {
		st = in.returnPairs(ctx, mod, h, u32(stack[1]), u32(stack[2]))
	}
	stack[0] = uint64(st)
}

func hostGetHeaderMapSize(ctx context.Context, mod api.Module, stack []uint64) {
	in := callerOf(ctx, stack)
	if in == nil {
		return
	}
	h, _, st := in.headerMap(mapType(u32(stack[0])))
	if st == statusOK {
		var n uint32
		if h != nil && h.Len() > 0 {
			var ok bool
			if n, ok = pairsSize(h); !ok {
				st = statusSerializationFailed
			}
		}
		st = thenWriteU32(st, in.memOf(mod), u32(stack[1]), n)
	}
	stack[0] = uint64(st)
}

func hostGetHeaderMapValue(ctx context.Context, mod api.Module, stack []uint64) {
	a := argsOf(ctx, mod, stack)
	key := a.bytes(1)
	retPtr, retSize := a.retPair(3)
	if a.refused() {
		return
	}
	in := a.in
	h, _, st := in.headerMap(mapType(u32(stack[0])))
	if st == statusOK {
		st = statusNotFound
		if h != nil {
			if v, ok := h.Get(key); ok {
				st = in.returnBytes(ctx, mod, v, retPtr, retSize)
			}
		}
	}
	stack[0] = uint64(st)
}

// writableMap reads a key (and a value, if valPtr/valSize are given) from
// guest memory and returns the writable map mt.
func (in *instance) writableMap(mod api.Module, mt, keyPtr, keySize uint32) (*proxy.Headers, []byte, status) {
	key, ok := readGuest(in.memOf(mod), keyPtr, keySize)
	if !ok {
		return nil, nil, statusInvalidMemoryAccess
	}
	h, w, st := in.headerMap(mapType(mt))
	if st != statusOK {
		return nil, nil, st
	}
	if h == nil || !w {
		return nil, nil, statusBadArgument
	}
	return h, key, statusOK
}

func hostAddHeaderMapValue(ctx context.Context, mod api.Module, stack []uint64) {
	setHeaderValue(ctx, mod, stack, false)
}

func hostReplaceHeaderMapValue(ctx context.Context, mod api.Module, stack []uint64) {
	setHeaderValue(ctx, mod, stack, true)
}

func setHeaderValue(ctx context.Context, mod api.Module, stack []uint64, replace bool) {
	a := argsOf(ctx, mod, stack)
	val := a.bytes(3)
	if a.refused() {
		return
	}
	h, key, st := a.in.writableMap(mod, u32(stack[0]), u32(stack[1]), u32(stack[2]))
	if st == statusOK && !validFieldOrKept(h, key, val) {
		st = statusBadArgument
	}
	if st == statusOK {
		if replace {
			h.Set(key, val)
		} else {
			h.Add(key, val)
		}
	}
	stack[0] = uint64(st)
}

func hostRemoveHeaderMapValue(ctx context.Context, mod api.Module, stack []uint64) {
	in := callerOf(ctx, stack)
	if in == nil {
		return
	}
	h, key, st := in.writableMap(mod, u32(stack[0]), u32(stack[1]), u32(stack[2]))
	if st == statusOK {
		h.Del(key)
	}
	stack[0] = uint64(st)
}

func hostSetHeaderMapPairs(ctx context.Context, mod api.Module, stack []uint64) {
	a := argsOf(ctx, mod, stack)
	data := a.bytes(1)
	if a.refused() {
		return
	}
	h, w, st := a.in.headerMap(mapType(u32(stack[0])))
	switch {
	case st != statusOK:
	case h == nil || !w:
		st = statusBadArgument
	case !decodePairsInto(h, data, true):
		st = statusBadArgument
	}
	stack[0] = uint64(st)
}

// buffer returns buffer bt of the effective context. Bodies are available
// from their own callback (or while the stream stays paused there); the
// HTTP call response body in proxy_on_http_call_response; the VM and
// plugin configurations always. All but the bodies are read-only.
func (in *instance) buffer(bt bufferType) (data []byte, writable bool, st status) {
	s := in.eff
	switch bt {
	case bufferHTTPCallResponse:
		if in.callout != nil && !in.callout.redis {
			return in.callout.body, false, statusOK
		}
	case bufferRedisCallResponse:
		if in.callout != nil && in.callout.redis {
			return in.callout.body, false, statusOK
		}
	case bufferVMConfig:
		return in.p.vmConfig, false, statusOK
	case bufferPluginConfig:
		return in.p.config, false, statusOK
	case bufferRequestBody:
		if s != nil && s.phase == cbRequestBody {
			return s.ex.RequestBody(), true, statusOK
		}
	case bufferResponseBody:
		if s != nil && s.phase == cbResponseBody {
			return s.ex.ResponseBody(), true, statusOK
		}
	}
	if bt > bufferRedisCallResponse {
		return nil, false, statusBadArgument
	}
	return nil, false, statusNotFound
}

func hostGetBufferBytes(ctx context.Context, mod api.Module, stack []uint64) {
	a := argsOf(ctx, mod, stack)
	start, maxSize := uint64(u32(stack[1])), uint64(u32(stack[2]))
	retPtr, retSize := a.retPair(3)
	if a.refused() {
		return
	}
	in := a.in
	data, _, st := in.buffer(bufferType(u32(stack[0])))
	if st == statusOK {
		if start > uint64(len(data)) {
			st = statusBadArgument
		} else {
			end := min(start+maxSize, uint64(len(data)))
			st = in.returnBytes(ctx, mod, data[start:end], retPtr, retSize)
		}
	}
	stack[0] = uint64(st)
}

func hostGetBufferStatus(ctx context.Context, mod api.Module, stack []uint64) {
	a := argsOf(ctx, mod, stack)
	retLen, retFlags := a.retPair(1)
	if a.refused() {
		return
	}
	data, _, st := a.in.buffer(bufferType(u32(stack[0])))
	if st == statusOK {
		st = writeRetPair(a.mem, retLen, retFlags, uint32(len(data)), 0)
	}
	stack[0] = uint64(st)
}

// maxScratchKeep bounds the splice buffer an instance keeps between calls.
const maxScratchKeep = 1 << 20

func hostSetBufferBytes(ctx context.Context, mod api.Module, stack []uint64) {
	a := argsOf(ctx, mod, stack)
	bt := bufferType(u32(stack[0]))
	start, size := uint64(u32(stack[1])), uint64(u32(stack[2]))
	val := a.bytes(3)
	if a.refused() {
		return
	}
	in := a.in
	body, w, st := in.buffer(bt)
	if st != statusOK || !w {
		if st == statusOK {
			st = statusBadArgument
		}
		stack[0] = uint64(st)
		return
	}
	// Replace body[start:start+size] with val; a start past the end
	// appends.
	start = min(start, uint64(len(body)))
	end := min(start+size, uint64(len(body)))
	buf := append(in.scratch[:0], body[:start]...)
	buf = append(buf, val...)
	buf = append(buf, body[end:]...)
	if bt == bufferRequestBody {
		in.eff.ex.SetRequestBody(buf)
	} else {
		in.eff.ex.SetResponseBody(buf)
	}
	if cap(buf) <= maxScratchKeep {
		in.scratch = buf[:0]
	}
	stack[0] = uint64(statusOK)
}

func hostSendLocalResponse(ctx context.Context, mod api.Module, stack []uint64) {
	a := argsOf(ctx, mod, stack)
	code := u32(stack[0])
	details, body, hdrs := a.bytes(1), a.bytes(3), a.bytes(5)
	if a.refused() {
		return
	}
	in := a.in
	s := in.eff
	if s == nil || code < 100 || code > 999 || !decodePairsInto(&in.localHeaders, hdrs, false) {
		stack[0] = uint64(statusBadArgument)
		return
	}
	// grpc_status (stack[7]) is ignored: Sluice sends the reply as plain
	// HTTP.
	s.ex.SendLocalResponse(int(code), string(details), &in.localHeaders, body)
	s.awaiting, s.resolved = false, true
	in.p.metrics.localResponses.Inc()
	stack[0] = uint64(statusOK)
}

// streamOp is proxy_continue_stream / proxy_close_stream on the effective
// context. TCP streams (DOWNSTREAM, UPSTREAM) do not exist here.
func (in *instance) streamOp(streamType uint32, closeStream bool) status {
	s := in.eff
	switch {
	case streamType == streamDownstream || streamType == streamUpstream:
		return statusUnimplemented
	case streamType > streamUpstream || s == nil:
		return statusBadArgument
	}
	if closeStream {
		s.ex.CloseStream()
	} else {
		s.ex.Resume()
	}
	s.awaiting, s.resolved = false, true
	return statusOK
}

func hostContinueStream(ctx context.Context, _ api.Module, stack []uint64) {
	streamCall(ctx, stack, u32(stack[0]), false)
}

func hostCloseStream(ctx context.Context, _ api.Module, stack []uint64) {
	streamCall(ctx, stack, u32(stack[0]), true)
}

func hostContinueRequest(ctx context.Context, _ api.Module, stack []uint64) {
	streamCall(ctx, stack, streamHTTPRequest, false)
}

func hostContinueResponse(ctx context.Context, _ api.Module, stack []uint64) {
	streamCall(ctx, stack, streamHTTPResponse, false)
}

func streamCall(ctx context.Context, stack []uint64, streamType uint32, closeStream bool) {
	in := callerOf(ctx, stack)
	if in == nil {
		return
	}
	stack[0] = uint64(in.streamOp(streamType, closeStream))
}
