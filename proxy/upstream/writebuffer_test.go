package upstream

import (
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluice-proxy/sluice/proxy/config"
	"github.com/valyala/fasthttp"
)

// writeCountingConn counts the writes made on a connection.
type writeCountingConn struct {
	net.Conn
	writes *atomic.Int32
}

func (c writeCountingConn) Write(b []byte) (int, error) {
	c.writes.Add(1)
	return c.Conn.Write(b)
}

// TestProxiedRequestOneWrite: a request with an 8 KiB prompt goes to the
// upstream in one write (fasthttp's default 4 KiB buffer split it in two:
// a system call more per request), and one larger than the buffer in two
// (the buffer's fill, then the rest unbuffered).
func TestProxiedRequestOneWrite(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		_, _ = w.Write([]byte("ok"))
	}))
	defer srv.Close()
	addr := strings.TrimPrefix(srv.URL, "http://")
	hc := newHostClient(config.Endpoint{Addr: addr, URL: srv.URL}, nil, 4, 5*time.Second)
	var writes atomic.Int32
	hc.Dial = func(addr string) (net.Conn, error) {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			return nil, err
		}
		return writeCountingConn{Conn: c, writes: &writes}, nil
	}
	hc.StreamResponseBody = false
	for _, c := range []struct {
		size, want int
	}{{8 << 10, 1}, {upstreamWriteBuffer + 1, 2}} {
		req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
		req.SetRequestURI(srv.URL + "/v1/chat/completions")
		req.Header.SetMethod("POST")
		req.SetBodyString(strings.Repeat("x", c.size))
		writes.Store(0)
		if err := hc.DoTimeout(req, resp, 5*time.Second); err != nil || resp.StatusCode() != 200 {
			t.Fatalf("%d-byte body: %v, status %d", c.size, err, resp.StatusCode())
		}
		if n := writes.Load(); int(n) != c.want {
			t.Errorf("a %d-byte body went out in %d writes, want %d", c.size, n, c.want)
		}
		fasthttp.ReleaseRequest(req)
		fasthttp.ReleaseResponse(resp)
	}
}
