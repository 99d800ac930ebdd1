package proxy

import (
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// rawUpstream is a TCP listener that reads HTTP requests and then either
// says nothing (silent) or resets the connection (reset), counting the
// connections it accepted and the requests it read.
type rawUpstream struct {
	ln       net.Listener
	reset    bool
	conns    atomic.Int64
	requests atomic.Int64
	mu       sync.Mutex
	open     []net.Conn
	wg       sync.WaitGroup
}

func startRawUpstream(t *testing.T, reset bool) *rawUpstream {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	u := &rawUpstream{ln: ln, reset: reset}
	u.wg.Add(1)
	go u.accept()
	t.Cleanup(u.close)
	return u
}

func (u *rawUpstream) URL() string { return "http://" + u.ln.Addr().String() }

func (u *rawUpstream) accept() {
	defer u.wg.Done()
	for {
		c, err := u.ln.Accept()
		if err != nil {
			return
		}
		u.conns.Add(1)
		u.mu.Lock()
		u.open = append(u.open, c)
		u.mu.Unlock()
		u.wg.Add(1)
		go u.serve(c)
	}
}

func (u *rawUpstream) serve(c net.Conn) {
	defer u.wg.Done()
	defer c.Close()
	eachRequest(c, func() bool {
		u.requests.Add(1)
		if u.reset {
			_ = c.(*net.TCPConn).SetLinger(0) // RST, not FIN
			return false
		}
		return true // silent: wait for the next request or the proxy giving up
	})
}

func (u *rawUpstream) close() {
	u.ln.Close()
	u.mu.Lock()
	for _, c := range u.open {
		c.Close()
	}
	u.mu.Unlock()
	u.wg.Wait()
}

// attemptsCase sends one request of each method through a proxy with one
// endpoint and checks that it reached the upstream exactly once.
func attemptsCase(t *testing.T, reset bool, wantStatus int) {
	const timeout = 300 * time.Millisecond
	for _, method := range []string{"GET", "HEAD", "POST"} {
		t.Run(method, func(t *testing.T) {
			up := startRawUpstream(t, reset)
			p := startProxy(t, baseConfig(up.URL()).WithTimeout(timeout), Options{})
			body := ""
			if method == "POST" {
				body = chatBody
			}
			start := time.Now()
			resp, _ := doRequest(t, newClient(), method, p.URL+"/v1/chat/completions", body, nil)
			elapsed := time.Since(start)
			if resp.StatusCode != wantStatus {
				t.Fatalf("status %d, want %d", resp.StatusCode, wantStatus)
			}
			if !reset && elapsed < timeout {
				t.Fatalf("504 after %s, before the %s timeout", elapsed, timeout)
			}
			// Every attempt fasthttp makes happens inside the one Do that
			// produced the answer, so the counts are final now.
			if n := up.requests.Load(); n != 1 {
				t.Fatalf("the upstream received %d requests for one %s, want exactly 1", n, method)
			}
			if n := up.conns.Load(); n != 1 {
				t.Fatalf("the upstream accepted %d connections for one %s, want exactly 1", n, method)
			}
			checkSlotsFree(t, p.Router())
		})
	}
}

// TestSilentUpstreamOneAttempt: an upstream that accepts and never answers
// gets the request once and the client its 504 after one timeout (issue
// 9: fasthttp sent a GET 5 times and the client waited 5 × timeout).
func TestSilentUpstreamOneAttempt(t *testing.T) {
	attemptsCase(t, false, http.StatusGatewayTimeout)
}

// TestResettingUpstreamOneAttempt: an upstream that resets before the
// response head gets the request once and the client a 502.
func TestResettingUpstreamOneAttempt(t *testing.T) {
	attemptsCase(t, true, http.StatusBadGateway)
}

// TestResettingUpstreamManyRequests: 20 requests to a resetting upstream
// are 20 upstream hits, not 100.
func TestResettingUpstreamManyRequests(t *testing.T) {
	up := startRawUpstream(t, true)
	p := startProxy(t, baseConfig(up.URL()), Options{})
	c := newClient()
	for range 20 {
		resp, _ := doRequest(t, c, "GET", p.URL+"/generate", "", nil)
		if resp.StatusCode != http.StatusBadGateway {
			t.Fatalf("status %d, want 502", resp.StatusCode)
		}
	}
	if n := up.requests.Load(); n != 20 {
		t.Fatalf("20 requests reached the upstream %d times", n)
	}
}

// TestProbeOneAttempt: a health check against a resetting endpoint is one
// request, not fasthttp's 5.
func TestProbeOneAttempt(t *testing.T) {
	up := startRawUpstream(t, true)
	ps, err := newPools(baseConfig(up.URL()))
	if err != nil {
		t.Fatal(err)
	}
	defer ps.Close()
	ep := ps.List()[0].Endpoints()[0]
	if _, _, err := ep.ProbeGet("/health", 2*time.Second); err == nil {
		t.Fatal("a probe of a resetting endpoint succeeded")
	}
	if n := up.requests.Load(); n != 1 {
		t.Fatalf("one probe reached the endpoint %d times", n)
	}
}

// TestStaleKeepAliveConnRetriedUnsent: a request that finds its pooled
// connection already closed by the upstream (here by the upstream's idle
// timeout) is sent, once, on a new connection instead of failing with 502
// — for a POST too, since nothing was written.
func TestStaleKeepAliveConnRetriedUnsent(t *testing.T) {
	for _, method := range []string{"GET", "POST"} {
		t.Run(method, func(t *testing.T) {
			var requests atomic.Int64
			closed := make(chan struct{}, 10)
			up := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				_, _ = io.Copy(io.Discard, r.Body)
				requests.Add(1)
				w.Header().Set("Content-Type", "application/json")
				_, _ = w.Write([]byte(`{"ok":true}`))
			}))
			up.Config.IdleTimeout = 50 * time.Millisecond
			up.Config.ConnState = func(_ net.Conn, s http.ConnState) {
				if s == http.StateClosed {
					closed <- struct{}{} // after the socket was closed
				}
			}
			up.Start()
			t.Cleanup(up.Close)
			p := startProxy(t, baseConfig(up.URL), Options{})
			c := newClient()
			body := ""
			if method == "POST" {
				body = chatBody
			}
			if resp, got := doRequest(t, c, method, p.URL+"/v1/chat/completions", body, nil); resp.StatusCode != 200 {
				t.Fatalf("first request: %d %s", resp.StatusCode, got)
			}
			select {
			case <-closed:
			case <-time.After(20 * time.Second):
				t.Fatal("the upstream never closed its idle connection")
			}
			resp, got := doRequest(t, c, method, p.URL+"/v1/chat/completions", body, nil)
			if resp.StatusCode != 200 {
				t.Fatalf("request on a pooled connection the upstream closed: %d %s", resp.StatusCode, got)
			}
			if n := requests.Load(); n != 2 {
				t.Fatalf("upstream received %d requests, want 2", n)
			}
		})
	}
}
