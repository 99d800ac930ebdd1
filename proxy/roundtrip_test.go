package proxy

import (
	"net"
	"sync/atomic"
	"testing"

	"github.com/valyala/fasthttp"
)

// dropFirstUpstream closes each of its first drop connections once a
// request head arrived on it, without answering, and answers 200 on the
// others.
func dropFirstUpstream(t *testing.T, drop int32) (addr string, conns *atomic.Int32) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	conns = new(atomic.Int32)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			n := conns.Add(1)
			go func() {
				defer c.Close()
				eachRequest(c, func() bool {
					if n <= drop {
						return false
					}
					_, err := c.Write([]byte("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"))
					return err == nil
				})
			}()
		}
	}()
	return ln.Addr().String(), conns
}

// TestRoundTripRetriesLikeDo: roundTrip follows the HostClient's retry
// settings as HostClient.Do does: a request whose connection closed before
// any answer is sent again on a new connection up to
// MaxIdemponentCallAttempts attempts, if RetryIfErr (or else RetryIf, or
// else idempotency) allows.
func TestRoundTripRetriesLikeDo(t *testing.T) {
	c := newClient()
	f := func(method string, drop, maxAttempts int32, retryIfErr fasthttp.RetryIfErrFunc, wantStatus int, wantConns int32) {
		t.Helper()
		addr, conns := dropFirstUpstream(t, drop)
		p := startProxy(t, baseConfig("http://"+addr), Options{})
		hc := p.pools.List()[0].Endpoints()[0].HostClient() // set before any request
		hc.MaxIdemponentCallAttempts = int(maxAttempts)
		hc.RetryIfErr = retryIfErr
		hc.RetryIf = nil
		body := ""
		if method == "POST" {
			body = chatBody
		}
		resp, _ := doRequest(t, c, method, p.URL+"/v1/chat/completions", body, nil)
		if resp.StatusCode != wantStatus || conns.Load() != wantConns {
			t.Fatalf("%s, %d dropped, %d attempts: %d on %d connections, want %d on %d",
				method, drop, maxAttempts, resp.StatusCode, conns.Load(), wantStatus, wantConns)
		}
		checkSlotsFree(t, p.Router())
	}
	always := func(*fasthttp.Request, int, error) (bool, bool) { return false, true }
	never := func(*fasthttp.Request, int, error) (bool, bool) { return false, false }
	f("GET", 2, 3, nil, 200, 3)     // idempotent: retried
	f("GET", 2, 0, nil, 200, 3)     // 0 attempts: fasthttp's default (5)
	f("GET", 3, 3, nil, 502, 3)     // out of attempts
	f("POST", 1, 3, nil, 502, 1)    // not idempotent
	f("POST", 1, 3, always, 200, 2) // RetryIfErr decides
	f("GET", 1, 3, never, 502, 1)
	f("GET", 1, 1, nil, 502, 1)
}
