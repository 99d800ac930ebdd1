package upstream

import (
	"bufio"
	"net"
	"net/http"
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
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				br := bufio.NewReader(c)
				for {
					req, err := http.ReadRequest(br)
					if err != nil {
						return
					}
					_, _ = req.Body.Read(make([]byte, 1<<20))
					if _, err := c.Write([]byte("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")); err != nil {
						return
					}
				}
			}()
		}
	}()
	hc := newHostClient(config.Endpoint{Addr: ln.Addr().String(), URL: "http://" + ln.Addr().String()}, nil, 4, 5*time.Second)
	var writes atomic.Int32
	hc.Dial = func(addr string) (net.Conn, error) {
		c, err := net.Dial("tcp", addr)
		return writeCountingConn{Conn: c, writes: &writes}, err
	}
	hc.StreamResponseBody = false
	for _, c := range []struct {
		size, want int
	}{{8 << 10, 1}, {upstreamWriteBuffer + 1, 2}} {
		req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
		req.SetRequestURI("http://" + ln.Addr().String() + "/v1/chat/completions")
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
