package proxy

import (
	"net"
	"testing"

	"github.com/VictoriaMetrics/metrics"
)

// opaqueConn hides a connection's syscall.Conn, so the disconnect watch
// skips it: the same request path, unwatched.
type opaqueConn struct{ net.Conn }

// doOn runs one request through the handler as if it came on conn.
func (h *hotPath) doOn(tb testing.TB, conn net.Conn) {
	h.ctx.Init2(conn, nil, false)
	h.req.CopyTo(&h.ctx.Request)
	h.serve(tb)
}

// BenchmarkProxyWithDisconnectWatch is BenchmarkProxyHotPath on a real
// loopback client connection: "watched" registers each request with the
// disconnect watch (and the watcher sweeps), "unwatched" hides the socket
// so the watch skips it. The difference is the watch's cost per request.
func BenchmarkProxyWithDisconnectWatch(b *testing.B) {
	for _, tc := range []struct {
		name    string
		watched bool
	}{{"watched", true}, {"unwatched", false}} {
		b.Run(tc.name, func(b *testing.B) {
			h := newHotPath(b)
			b.Cleanup(func() { _ = h.srv.Close() })
			_, s := tcpPair(b)
			var conn net.Conn = s
			if !tc.watched {
				conn = opaqueConn{s}
			}
			h.doOn(b, conn)
			b.ReportAllocs()
			for b.Loop() {
				h.doOn(b, conn)
			}
		})
	}
}

// BenchmarkDisconnectWatchRegister measures begin, attach, detach and
// unwatch, the watch's whole per-request work, from all Ps at once (shard
// lock contention).
func BenchmarkDisconnectWatchRegister(b *testing.B) {
	var w disconnectWatcher
	w.init(metrics.NewSet())
	b.Cleanup(w.close)
	_, s := tcpPair(b)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		var cw clientWatch
		cw.initWatch(&w)
		for pb.Next() {
			cw.setClient(s)
			cw.begin()
			if !cw.attach(s) || cw.detach() || cw.unwatch() {
				b.Error("client reported gone")
			}
			cw.reset()
		}
	})
}

// BenchmarkDisconnectSweep measures one sweep over 256 registered
// connections; ns/op / 256 is the cost of checking one connection.
func BenchmarkDisconnectSweep(b *testing.B) {
	const n = 256
	var w disconnectWatcher
	w.init(metrics.NewSet())
	b.Cleanup(w.close)
	cws := make([]clientWatch, n)
	for i := range cws {
		_, s := tcpPair(b)
		cws[i].initWatch(&w)
		cws[i].setClient(s)
		cws[i].begin()
	}
	w.close() // the benchmark sweeps, not the goroutine
	b.ReportAllocs()
	for b.Loop() {
		w.sweep()
	}
	for i := range cws {
		if cws[i].unwatch() {
			b.Fatal("client reported gone")
		}
	}
}
