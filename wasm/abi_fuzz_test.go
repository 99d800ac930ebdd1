package wasm

import (
	"bytes"
	"testing"
	"time"

	"github.com/sluice-proxy/sluice/proxy"
)

// knownStatus reports whether s is a proxy_status_t value.
func knownStatus(s status) bool {
	switch s {
	case statusOK, statusNotFound, statusBadArgument, statusSerializationFailed, statusParseFailure,
		statusInvalidMemoryAccess, statusEmpty, statusCASMismatch, statusInternalFailure, statusUnimplemented:
		return true
	}
	return false
}

// FuzzHostFunctions calls every env host function with arbitrary arguments
// against a real one-page guest memory (the "ok" fixture, whose allocator
// refuses what does not fit), in every phase, in the root context and in
// an HTTP call response callback (maps 6/7, buffer 4, proxy_get_status)
// and in a Redis call response callback (buffer 9). No input may panic or
// return an unknown status. HTTP calls go to pool "up" of a fake transport
// that answers at once; Redis calls to "r", where nothing listens.
func FuzzHostFunctions(f *testing.F) {
	h := newTestHostWith(f, func(c *HostConfig) {
		c.Callouts = fakeCallouts{}
		c.Redis = []proxy.RedisConfig{{Name: "r", Address: "127.0.0.1:1", Timeout: proxy.Duration(50 * time.Millisecond)}}
	})
	p := h.mustLoad(f, fixtureConfig(f, "ok"))
	in := p.slots[0].inst.Load()
	ex := newExchange("/x?y=z", "x-wat", "v", "user-agent", "fuzz")
	ex.SetRequestBody([]byte("request body"))
	ex.ResponseHeaders().AddString(":status", "200")
	ex.SetResponseBody([]byte("response body"))
	s := &stream{p: p, inst: in, ex: ex, id: 2}
	phases := [...]callback{cbRequestHeaders, cbRequestBody, cbResponseHeaders, cbResponseBody, cbLog, cbConfigure, cbHttpCallResponse, cbRedisCallResponse}
	reply := &callout{id: 7, code: 200, message: []byte("OK"), body: []byte("reply body")}
	reply.headers.AddString(":status", "200")
	reply.headers.AddString("x-reply", "1")
	reply.trailers.AddString("x-trailer", "t")
	redisReply := &callout{id: 8, redis: true, body: []byte(":1\r\n")}

	seed := func(fn int, data []byte, args ...uint32) {
		var a [8]uint32
		copy(a[:], args)
		for ph := range phases {
			f.Add(uint8(fn), uint8(ph), data, a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7])
		}
	}
	// proxy_http_call: upstream "up" at 1024, headers right after it; the
	// timeout (10th param) reuses a0 and ret_call_id a1.
	call := append([]byte("up"), pairs(":method", "GET", ":path", "/", ":authority", "a", "x", "y")...)
	for i, hf := range envFuncs {
		seed(i, nil, 0, 16, 5, 512, 516, 48, 5, 0)
		seed(i, []byte("request\x00path"), 0, 1024, 12, 512, 516, 520, 524, 528)
		seed(i, nil, 0xFFFFFFF0, 0x100, 0xFFFFFFFF, 65532, 65535, 0, 0xFFFFFFFF, 1)
		seed(i, []byte("wasmcustom.a_tag=v"), 1, 1024, 18, 512, 516, 520, 524, 528)
		if hf.name == "proxy_http_call" {
			seed(i, call, 1024, 2, 1026, uint32(len(call)-2), 0, 0, 1026, uint32(len(call)-2))
		}
		if hf.name == "proxy_redis_call" || hf.name == "proxy_redis_init" {
			// cluster "r" at 1024, the query after it; ret_callout_id
			// (or the timeout) 512.
			seed(i, []byte("r*1\r\n$4\r\nPING\r\n"), 1024, 1, 1025, 14, 512, 0, 0, 0)
		}
	}
	f.Fuzz(func(t *testing.T, fn, phase uint8, data []byte, a0, a1, a2, a3, a4, a5, a6, a7 uint32) {
		if bytes.Contains(data, []byte("sluice")) {
			// sluice.* properties and foreign functions need a proxy.Server
			// behind the Exchange.
			return
		}
		hf := envFuncs[int(fn)%len(envFuncs)]
		if hf.name == "proxy_set_upstream_override_host" {
			// Like sluice.endpoint, it needs a proxy.Server behind the
			// Exchange (the oob_ fixture covers its guest-memory reads).
			return
		}
		in.mu.Lock()
		defer in.mu.Unlock()
		// A new HTTP context resets the fixture's bump allocator.
		if _, err := in.call(cbContextCreate, nil, 2, rootContextID, 0, p.callTimeout); err != nil {
			t.Fatal(err)
		}
		buf, _ := in.mem.Read(1024, 4096)
		clear(buf)
		copy(buf, data)
		ph := phases[int(phase)%len(phases)]
		s.phase, s.responseSeen = ph, ph >= cbResponseHeaders && ph <= cbLog
		in.cur, in.eff = s, s
		if ph == cbConfigure || ph == cbHttpCallResponse || ph == cbRedisCallResponse {
			in.cur, in.eff = nil, nil
		}
		switch ph {
		case cbHttpCallResponse:
			in.callout = reply
		case cbRedisCallResponse:
			in.callout = redisReply
		}
		in.phase = ph
		args := [8]uint32{a0, a1, a2, a3, a4, a5, a6, a7}
		stack := make([]uint64, max(len(hf.params), 1))
		for i := range hf.params {
			stack[i] = uint64(args[i%len(args)]) | 0xDEAD_BEEF_0000_0000 // garbage in the upper bits
		}
		hf.fn(&in.cc, in.mod, stack)
		in.endEffective()
		in.cur, in.eff, in.callout = nil, nil, nil
		if st := status(stack[0]); !knownStatus(st) {
			t.Fatalf("%s returned %d", hf.name, st)
		}
		if in.nestedErr != nil {
			t.Fatalf("%s: the allocator failed: %v", hf.name, in.nestedErr)
		}
		ex.RequestHeaders().Reset()
		for _, kv := range [][2]string{{":method", "GET"}, {":path", "/x?y=z"}, {":authority", "example.test"}, {"x-wat", "v"}} {
			ex.RequestHeaders().AddString(kv[0], kv[1])
		}
	})
}
