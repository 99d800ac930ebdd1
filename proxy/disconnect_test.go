package proxy

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluice-proxy/sluice/internal/testcerts"
	"github.com/sluice-proxy/sluice/internal/testsync"
	"github.com/sluice-proxy/sluice/proxy/internal/peek"
	"github.com/sluice-proxy/sluice/proxy/internal/testkit"
	"github.com/sluice-proxy/sluice/proxy/upstream"
)

// goneBound is how long a test allows for a gone client to be noticed and
// its request ended: the design is disconnectCheckInterval (250 ms) plus
// the request's own unwinding, well under 1 s; the bound leaves room for a
// starved CI machine.
const goneBound = 3 * time.Second

// holdUpstream is an engine that holds each request until release is
// closed or its client (the proxy) closes the connection, which net/http
// reports through the request's context once the body has been read.
// Requests to /stream get an event-stream head and a first event at once.
type holdUpstream struct {
	*httptest.Server
	release  chan struct{}
	arrived  chan string   // the request's path, once its body is read
	closed   chan struct{} // one per request whose connection the proxy closed
	nClosed  atomic.Int32
	newConns atomic.Int32
}

func startHoldUpstream(t *testing.T) *holdUpstream {
	t.Helper()
	u := &holdUpstream{release: make(chan struct{}), arrived: make(chan string, 256), closed: make(chan struct{}, 256)}
	u.Server = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		stream := r.URL.Path == "/stream"
		if stream {
			w.Header().Set("Content-Type", "text/event-stream")
			_, _ = io.WriteString(w, "data: first\n\n")
			w.(http.Flusher).Flush()
		}
		u.arrived <- r.URL.Path
		select {
		case <-r.Context().Done():
			u.nClosed.Add(1)
			u.closed <- struct{}{}
			return
		case <-u.release:
		}
		if stream {
			_, _ = io.WriteString(w, "data: last\n\ndata: [DONE]\n\n")
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"ok":true}`)
	}))
	u.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			u.newConns.Add(1)
		}
	}
	u.Start()
	t.Cleanup(func() {
		select {
		case <-u.release:
		default:
			close(u.release)
		}
		u.Close()
	})
	return u
}

// rawRequest opens a client connection to the proxy and sends one POST.
func rawRequest(t *testing.T, addr, path string) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	body := chatBody
	if path == "/stream" {
		body = chatStreamBody
	}
	if _, err := fmt.Fprintf(c, "POST %s HTTP/1.1\r\nHost: sluice.test\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", path, len(body), body); err != nil {
		t.Fatal(err)
	}
	return c
}

// within fails the test unless cond holds within goneBound.
func within(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(goneBound)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, goneBound)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func receive(t *testing.T, what string, ch <-chan struct{}) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(goneBound):
		t.Fatalf("%s: not within %v", what, goneBound)
	}
}

func skipUnwatched(t *testing.T) {
	if !peek.Supported {
		t.Skip("the disconnect watch peeks at sockets on Linux only")
	}
}

// TestClientGoneWhileWaiting: a client that leaves while the engine has
// not answered gets its upstream connection closed, its slots freed, a
// count and a 499 log line, within about a second — not when the engine
// answers.
func TestClientGoneWhileWaiting(t *testing.T) {
	up, p, logs, c := watchedRequest(t, "/v1/chat/completions")
	<-up.arrived
	if got := p.Router().Health().ActiveRequests; got != 1 {
		t.Fatalf("active requests while waiting = %d, want 1", got)
	}
	_ = c.Close()

	ep := checkClientGone(t, p, up, logs, "waiting")
	if !ep.Up() {
		t.Fatal("endpoint ejected after a client left")
	}
}

// TestClientGoneDuringStreamGap: a client that leaves during a silence
// between events is noticed the same way.
func TestClientGoneDuringStreamGap(t *testing.T) {
	up, p, logs, c := watchedRequest(t, "/stream")
	readUntil(t, c, "data: first")
	<-up.arrived
	_ = c.Close()

	checkClientGone(t, p, up, logs, "streaming")
}

// watchedRequest starts a hold upstream and a proxy logging into logs
// before it, and sends one raw request for path whose client the test may
// then drop; it skips where the disconnect watch is not supported.
func watchedRequest(t *testing.T, path string) (up *holdUpstream, p *testProxy, logs *testsync.LogBuffer, c net.Conn) {
	t.Helper()
	skipUnwatched(t)
	up = startHoldUpstream(t)
	logs = &testsync.LogBuffer{}
	p = startProxy(t, baseConfig(up.URL), Options{Logger: slog.New(slog.NewTextHandler(logs, nil))})
	return up, p, logs, rawRequest(t, p.Addr, path)
}

// checkClientGone asserts what a client's leaving must cause: the
// upstream connection closed, both slots freed, a 499 access log line,
// the disconnect counted in phase, and no failure blamed on the endpoint.
func checkClientGone(t *testing.T, p *testProxy, up *holdUpstream, logs *testsync.LogBuffer, phase string) *upstream.Endpoint {
	t.Helper()
	receive(t, "upstream sees its connection closed", up.closed)
	within(t, "admission slot freed", func() bool { return p.Router().Health().ActiveRequests == 0 })
	ep := p.pools.List()[0].Endpoints()[0]
	within(t, "endpoint slot freed", func() bool { return ep.InFlight() == 0 })
	within(t, "access log line", func() bool { return strings.Contains(logs.String(), "status=499") })
	name := `sluice_client_disconnects_total{phase="` + phase + `"}`
	if v := metricValue(t, p, name); v != 1 {
		t.Fatalf("%s = %v, want 1", name, v)
	}
	if n := ep.Failures(); n != 0 {
		t.Fatalf("endpoint blamed for the client's leaving: %d failures", n)
	}
	return ep
}

// readUntil reads from c until want has been seen.
func readUntil(t *testing.T, c net.Conn, want string) {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	var seen []byte
	buf := make([]byte, 4096)
	for !bytes.Contains(seen, []byte(want)) {
		n, err := c.Read(buf)
		seen = append(seen, buf[:n]...)
		if err != nil {
			t.Fatalf("reading until %q: %v (got %q)", want, err, seen)
		}
	}
	_ = c.SetReadDeadline(time.Time{})
}

// TestClientStaysIsNotCut: a quiet client that keeps its connection open
// gets the whole answer, and a connection that finished cleanly goes back
// to the upstream pool (one upstream connection for several requests).
func TestClientStaysIsNotCut(t *testing.T) {
	up := startHoldUpstream(t)
	close(up.release)
	p := startProxy(t, baseConfig(up.URL), Options{})
	c := newClient()
	for i := 0; i < 4; i++ {
		resp, body := doRequest(t, c, "POST", p.URL+"/stream", chatStreamBody, nil)
		if resp.StatusCode != 200 || !strings.Contains(body, "[DONE]") {
			t.Fatalf("stream %d: %d %q", i, resp.StatusCode, body)
		}
		// finish gives the connection back before the slot: once the
		// slot is free the next request must find it in the pool.
		checkSlotsFree(t, p.Router())
		resp, body = doRequest(t, c, "POST", p.URL+"/v1/chat/completions", chatBody, nil)
		if resp.StatusCode != 200 || body != `{"ok":true}` {
			t.Fatalf("request %d: %d %q", i, resp.StatusCode, body)
		}
		checkSlotsFree(t, p.Router())
	}
	if n := up.newConns.Load(); n != 1 {
		t.Fatalf("upstream connections = %d, want 1 reused", n)
	}
	if n := up.nClosed.Load(); n != 0 {
		t.Fatalf("%d requests cut", n)
	}
	checkSlotsFree(t, p.Router())
}

// TestHammerClientsVanish: many concurrent requests, waiting and
// streaming, half of whose clients vanish: exactly those are cancelled
// upstream and counted, the others get their whole answers, every slot
// comes back, and the proxy serves normally afterwards.
func TestHammerClientsVanish(t *testing.T) {
	skipUnwatched(t)
	const n = 32 // per kind: waiting/streaming × vanish/stay, n/4 each
	up := startHoldUpstream(t)
	cfg := baseConfig(up.URL).WithMaxConcurrentRequests(2 * n).WithMaxBatchSize(2 * n)
	p := startProxy(t, cfg, Options{})

	conns := make([]net.Conn, n)
	for i := range conns {
		path := "/v1/chat/completions"
		if i%2 == 1 {
			path = "/stream"
		}
		conns[i] = rawRequest(t, p.Addr, path)
	}
	for range n {
		select {
		case <-up.arrived:
		case <-time.After(10 * time.Second):
			t.Fatal("not all requests reached the upstream")
		}
	}
	// Kinds: i%4 == 0 waiting/vanish, 1 streaming/vanish, 2 waiting/stay,
	// 3 streaming/stay.
	for i, c := range conns {
		if i%4 == 1 {
			readUntil(t, c, "data: first")
		}
		if i%4 < 2 {
			_ = c.Close()
		}
	}
	waitFor(t, "vanished clients cancelled upstream", func() bool { return up.nClosed.Load() == n/2 })
	waitFor(t, "vanished clients counted", func() bool {
		return metricValue(t, p, `sluice_client_disconnects_total{phase="waiting"}`) == n/4 &&
			metricValue(t, p, `sluice_client_disconnects_total{phase="streaming"}`) == n/4
	})
	waitFor(t, "their slots freed", func() bool { return p.Router().Health().ActiveRequests == n/2 })

	close(up.release)
	var wg sync.WaitGroup
	for i, c := range conns {
		if i%4 < 2 {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
			resp, err := http.ReadResponse(bufio.NewReader(c), nil)
			if err != nil {
				t.Errorf("client %d: %v", i, err)
				return
			}
			b, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			want := `{"ok":true}`
			if i%4 == 3 {
				want = "data: [DONE]"
			}
			if err != nil || resp.StatusCode != 200 || !strings.Contains(string(b), want) {
				t.Errorf("client %d: %d %q %v", i, resp.StatusCode, b, err)
			}
		}()
	}
	wg.Wait()
	checkSlotsFree(t, p.Router())
	for _, ep := range p.pools.List()[0].Endpoints() {
		if v := ep.InFlight(); v != 0 {
			t.Fatalf("endpoint in flight = %d after the hammer", v)
		}
		if f := ep.Failures(); f != 0 {
			t.Fatalf("endpoint failures = %d: vanished clients blamed on it", f)
		}
	}
	if c := up.nClosed.Load(); c != n/2 {
		t.Fatalf("upstream saw %d closes, want %d", c, n/2)
	}

	client := newClient()
	for i := 0; i < 8; i++ {
		resp, body := doRequest(t, client, "POST", p.URL+"/v1/chat/completions", chatBody, nil)
		if resp.StatusCode != 200 {
			t.Fatalf("after the hammer: %d %q", resp.StatusCode, body)
		}
	}
	checkSlotsFree(t, p.Router())
}

// TestClientGoneTLS: for a TLS client the socket under the TLS
// connection is watched, whether Serve got a tls.Listener or the config
// has tls (tlsEdgeConn).
func TestClientGoneTLS(t *testing.T) {
	skipUnwatched(t)
	ca := testcerts.NewCA(t, "edge")
	pair := ca.Issue(t, "api", "sluice.test")
	for _, builtin := range []bool{false, true} {
		t.Run(fmt.Sprint("tls_in_config=", builtin), func(t *testing.T) {
			up := startHoldUpstream(t)
			cfg, wrap := baseConfig(up.URL), func(ln net.Listener) net.Listener {
				return tls.NewListener(ln, &tls.Config{Certificates: []tls.Certificate{pair.TLS}})
			}
			if builtin {
				cfg, wrap = cfg.WithTLS(pair.CertFile, pair.KeyFile), nil
			}
			p := startProxyOn(t, cfg, Options{}, wrap)
			c, err := tls.Dial("tcp", p.Addr, &tls.Config{ServerName: "sluice.test", RootCAs: ca.Pool})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := fmt.Fprintf(c, "POST /v1/chat/completions HTTP/1.1\r\nHost: sluice.test\r\nContent-Length: %d\r\n\r\n%s", len(chatBody), chatBody); err != nil {
				t.Fatal(err)
			}
			<-up.arrived
			_ = c.Close()
			receive(t, "upstream sees its connection closed", up.closed)
			within(t, "admission slot freed", func() bool { return p.Router().Health().ActiveRequests == 0 })
		})
	}
}

// tcpPair returns both ends of a loopback TCP connection.
func tcpPair(t testing.TB) (client, server *net.TCPConn) { return testkit.TCPPair(t) }

// TestHammerDisconnectRaces: clients leave at random moments — before the
// answer, during a stream, just as it ends — while the watcher sweeps
// every few milliseconds, so its cancellations race with requests ending
// on their own. Every slot and every upstream connection must come back:
// each connection is either closed or idle in the pool.
func TestHammerDisconnectRaces(t *testing.T) {
	skipUnwatched(t)
	p := startProxy(t, baseConfig(randomDelayUpstream(t)).WithMaxConcurrentRequests(64), Options{})
	p.watch.interval = 2 * time.Millisecond // before any request starts the watcher
	leavingClients(t, p.Addr, 16, 12, 2)
	checkSlotsFree(t, p.Router())
	ep := p.pools.List()[0].Endpoints()[0]
	waitFor(t, "endpoint slots free", func() bool { return ep.InFlight() == 0 })
	waitFor(t, "upstream connections closed or pooled", func() bool {
		return ep.HostClient().ConnsCount() == ep.HostClient().IdleConnsCount()
	})
	if f := ep.Failures(); f != 0 {
		t.Fatalf("endpoint failures = %d: leaving clients blamed on it", f)
	}
	t.Logf("cancelled while waiting: %v, while streaming: %v",
		metricValue(t, p, `sluice_client_disconnects_total{phase="waiting"}`),
		metricValue(t, p, `sluice_client_disconnects_total{phase="streaming"}`))
	resp, body := doRequest(t, newClient(), "POST", p.URL+"/v1/chat/completions", chatBody, map[string]string{"Connection": "close"})
	if resp.StatusCode != 200 {
		t.Fatalf("after the hammer: %d %q", resp.StatusCode, body)
	}
}
