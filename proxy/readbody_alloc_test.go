//go:build !race

package proxy

import (
	"bytes"
	"testing"

	"github.com/valyala/fasthttp"
)

// TestAllocsReadStreamedBody: reading a streamed request body — per-read
// deadlines, the body budget, the buffer from the pooled request state —
// allocates nothing once warm.
func TestAllocsReadStreamedBody(t *testing.T) {
	srv := newServer(t, baseConfig("http://127.0.0.1:1"), Options{})
	_, conn := tcpPair(t)

	var ctx fasthttp.RequestCtx
	ctx.Init2(conn, nil, false)
	rs := newRequestState(srv)
	body := bytes.Repeat([]byte("b"), 100<<10) // several reads of bodyReadChunk
	var r bytes.Reader
	run := func() {
		r.Reset(body)
		ctx.Request.Header.SetContentLength(len(body))
		ctx.Request.SetBodyStream(&r, len(body))
		if !rs.readBody(&ctx) || len(rs.body) != len(body) {
			t.Fatalf("body: %d bytes", len(rs.body))
		}
		ctx.Request.Reset()
		rs.body = rs.body[:0]
	}
	for i := 0; i < 5; i++ {
		run()
	}
	if n := testing.AllocsPerRun(200, run); n != 0 {
		t.Fatalf("reading a streamed body: %v allocs/op", n)
	}
	if u := srv.bodies.used.Load(); u != 0 {
		t.Fatalf("budget not released: %d", u)
	}
}
