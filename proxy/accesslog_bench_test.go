package proxy

import (
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
)

// BenchmarkAccessLog measures one access line as finish writes it, for a
// streamed chat completion with every field set: in text, in JSON, and
// with the level above info (the line is skipped after one Enabled call).
// With log.access off none of this runs (TestAllocsProxyHotPath).
func BenchmarkAccessLog(b *testing.B) {
	line := func(h slog.Handler) func(*testing.B) {
		return func(b *testing.B) {
			srv := newServer(b, baseConfig("http://127.0.0.1:1"), Options{Logger: slog.New(h)})
			rs := filledRequestState(srv)
			b.ReportAllocs()
			for b.Loop() {
				srv.logAccess(rs, 1234567*time.Microsecond)
			}
		}
	}
	b.Run("text", line(slog.NewTextHandler(io.Discard, nil)))
	b.Run("json", line(slog.NewJSONHandler(io.Discard, nil)))
	b.Run("level_warn", line(slog.NewJSONHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelWarn})))
}

// filledRequestState is a finished request's state with every access-log
// field set.
func filledRequestState(srv *Server) *requestState {
	rs := newRequestState(srv)
	rs.reqID = srv.ids.append(nil)
	var h fasthttp.RequestHeader
	rs.trace.Apply(&h)
	rs.logMethod = []byte("POST")
	rs.logPath = []byte("/v1/chat/completions")
	rs.acc.client = []byte("192.0.2.10:53124")
	rs.acc.bytesIn, rs.acc.bytesOut = 412, 18230
	rs.status, rs.ok = 200, true
	rs.pool = srv.pools.List()[0]
	rs.tried = append(rs.tried, rs.pool.Endpoints()[0])
	rs.model.has, rs.model.name = true, []byte("meta-llama/Llama-3.1-8B-Instruct")
	rs.usage.haveUsage, rs.usage.prompt, rs.usage.completion = true, 35, 512
	rs.usage.firstSeen, rs.usage.ttft = true, 182*time.Millisecond
	return rs
}

// BenchmarkProxyHotPathAccessLog is BenchmarkProxyHotPath with the access
// log on, in JSON to io.Discard: the difference is what the line costs on
// a whole request.
func BenchmarkProxyHotPathAccessLog(b *testing.B) {
	h := newHotPath(b)
	h.srv.accessLog = true
	h.srv.log = slog.New(slog.NewJSONHandler(io.Discard, nil))
	h.do(b)
	b.ReportAllocs()
	for b.Loop() {
		h.do(b)
	}
}
