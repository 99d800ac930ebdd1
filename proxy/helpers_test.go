package proxy

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sluice-proxy/sluice/internal/testsync"
	"github.com/sluice-proxy/sluice/proxy/internal/testhttp"
	"github.com/sluice-proxy/sluice/proxy/internal/testkit"
	"github.com/sluice-proxy/sluice/proxy/proxytest"
	"github.com/sluice-proxy/sluice/proxy/upstream"
)

// newServer builds a Server that is not serving, closed when the test
// ends.
func newServer(tb testing.TB, cfg *Config, opts Options) *Server {
	tb.Helper()
	srv, err := NewServer(cfg, opts)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = srv.Close() })
	return srv
}

// testProxy is a Server running on a random loopback port.
type testProxy struct {
	*Server
	URL  string
	Addr string
}

// startProxy starts a ready Server for cfg; it is shut down when the test
// ends.
func startProxy(t testing.TB, cfg *Config, opts Options) *testProxy {
	t.Helper()
	return startProxyOn(t, cfg, opts, nil)
}

// startProxyOn is startProxy serving on wrap(listener) (TLS, say); nil
// wrap serves the plain listener.
func startProxyOn(t testing.TB, cfg *Config, opts Options, wrap func(net.Listener) net.Listener) *testProxy {
	t.Helper()
	cfg = cfg.WithHostname("127.0.0.1")
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	srv, err := NewServer(cfg, opts)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	served := ln
	if wrap != nil {
		served = wrap(ln)
	}
	go func() {
		defer close(done)
		if err := srv.Serve(served); err != nil {
			t.Errorf("Serve: %v", err)
		}
	}()
	srv.Router().SetReady(true)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
		<-done
	})
	return &testProxy{Server: srv, URL: "http://" + ln.Addr().String(), Addr: ln.Addr().String()}
}

// startUpstream starts a fake engine for the test's duration.
func startUpstream(t testing.TB, opts proxytest.Options) *proxytest.Server {
	return testkit.StartUpstream(t, opts)
}

// baseConfig is a config with one pool "default" of the given upstreams.
func baseConfig(urls ...string) *Config {
	return NewConfig().WithUpstream("default", urls...)
}

// newClient returns an HTTP client with no keep-alive reuse between tests.
func newClient() *http.Client {
	return &http.Client{Transport: &http.Transport{}, Timeout: 30 * time.Second}
}

func doRequest(t testing.TB, c *http.Client, method, url, body string, hdr map[string]string) (*http.Response, string) {
	t.Helper()
	var kv []string
	for k, v := range hdr {
		kv = append(kv, k, v)
	}
	resp, b := testhttp.Do(t, c, testsync.NewRequest(t, method, url, body, kv...))
	return resp, string(b)
}

// waitFor polls cond until it holds (testkit.WaitFor).
func waitFor(t testing.TB, what string, cond func() bool) { t.Helper(); testkit.WaitFor(t, what, cond) }

// checkSlotsFree asserts the slot invariant once traffic has stopped.
func checkSlotsFree(t testing.TB, r *Router) {
	t.Helper()
	waitFor(t, "all slots released", func() bool { return r.Metrics().Active == 0 })
	m := r.Metrics()
	if m.Total != m.Completed+m.Failed+m.Rejected+m.Refused {
		t.Fatalf("total %d != completed %d + failed %d + rejected %d + refused %d", m.Total, m.Completed, m.Failed, m.Rejected, m.Refused)
	}
}

// sseEvents reads "data:" events from r, calling fn with each.
func sseEvents(r io.Reader, fn func(data string)) error {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		if line := sc.Text(); strings.HasPrefix(line, "data:") {
			fn(strings.TrimSpace(strings.TrimPrefix(line, "data:")))
		}
	}
	return sc.Err()
}

const chatStreamBody = `{"model":"m","messages":[{"role":"user","content":"hi"}],"stream":true}`
const chatBody = `{"model":"m","messages":[{"role":"user","content":"hi"}]}`

// newPools resolves cfg and builds its pools, as NewServer does.
func newPools(cfg *Config) (*upstream.Pools, error) {
	rc, err := cfg.Resolve()
	if err != nil {
		return nil, err
	}
	return upstream.New(rc, upstream.Options{}), nil
}

// postStream sends a streaming chat request to p and returns the response
// with its body still to read.
func postStream(t testing.TB, p *testProxy) *http.Response {
	t.Helper()
	req, _ := http.NewRequest("POST", p.URL+"/v1/chat/completions", strings.NewReader(chatStreamBody))
	resp, err := newClient().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

// expectCut reads resp's body to its end and fails with msg if the stream
// ended cleanly: it must have been cut.
func expectCut(t testing.TB, resp *http.Response, msg string) {
	t.Helper()
	_, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err == nil {
		t.Fatal(msg)
	}
}

// eachRequest reads HTTP/1.1 requests from c, discarding their bodies, and
// calls handle after each, until reading fails or handle returns false.
func eachRequest(c net.Conn, handle func() bool) {
	br := bufio.NewReader(c)
	for {
		req, err := http.ReadRequest(br)
		if err != nil {
			return
		}
		_, _ = io.Copy(io.Discard, req.Body)
		if !handle() {
			return
		}
	}
}

// scriptedUpstream answers the first request on each connection with
// script, which writes the raw response.
func scriptedUpstream(t *testing.T, script func(c net.Conn)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				eachRequest(c, func() bool { script(c); return false })
			}()
		}
	}()
	return "http://" + ln.Addr().String()
}

const sseHead = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"

func sseChunk(data string) string {
	ev := "data: " + data + "\n\n"
	return fmt.Sprintf("%x\r\n%s\r\n", len(ev), ev)
}

// streamThrough posts a streamed completion to p on a raw connection and
// returns a reader positioned at the chunked body.
func streamThrough(t *testing.T, p *testProxy) *bufio.Reader {
	t.Helper()
	c := rawConn(t, p.Addr)
	body := chatStreamBody
	fmt.Fprintf(c, "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", len(body), body)
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 || len(resp.TransferEncoding) == 0 {
		t.Fatalf("status %d, transfer encoding %v", resp.StatusCode, resp.TransferEncoding)
	}
	return br // resp.Body would undo the chunking; the test reads it raw
}

// readChunk reads one chunk of a chunked body ("" at its end).
func readChunk(br *bufio.Reader) (string, error) {
	line, err := br.ReadString('\n')
	if err != nil {
		return "", fmt.Errorf("chunk size line: %w", err)
	}
	n, err := strconv.ParseUint(strings.TrimSpace(line), 16, 32)
	if err != nil {
		return "", fmt.Errorf("chunk size line %q: %w", line, err)
	}
	buf := make([]byte, n+2)
	if _, err := io.ReadFull(br, buf); err != nil {
		return "", err
	}
	return string(buf[:n]), nil
}

// readRest reads chunks to the body's end and returns their data and
// count.
func readRest(t *testing.T, br *bufio.Reader) (string, int) {
	t.Helper()
	var b strings.Builder
	for n := 0; ; n++ {
		ch, err := readChunk(br)
		if err != nil {
			t.Fatal(err)
		}
		if ch == "" {
			return b.String(), n
		}
		b.WriteString(ch)
	}
}

// rawConn dials the proxy over TCP, for requests net/http would not send.
func rawConn(t testing.TB, addr string) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// readStatus reads a response from c within d, returning the status code
// and whether it announced Connection: close, or an error (a reset shows
// up here).
func readStatus(c net.Conn, d time.Duration) (int, bool, error) {
	_ = c.SetReadDeadline(time.Now().Add(d))
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return 0, false, err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, resp.Close, nil
}

// expectClosed asserts the server ends the connection within d: after
// whatever it still sends, the client reads EOF (or a reset).
func expectClosed(t testing.TB, c net.Conn, d time.Duration) {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(d))
	_, err := io.Copy(io.Discard, c)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("connection still open after %s", d)
	}
}

// sendThenRead writes head and then bodyLen body bytes without waiting for
// an answer (no Expect: 100-continue), as simple clients do (Python's
// http.client, curl without Expect), and reads the answer once it has
// written everything. Such a client fails on the first write error: when
// the server closes with unread data the kernel answers the next bytes
// with a reset, and the client never gets to read the answer. It returns
// the status and the first error, writing or reading.
func sendThenRead(t *testing.T, addr, head string, bodyLen int) (int, error) {
	t.Helper()
	return sendThenReadOn(t, rawConn(t, addr), head, bodyLen)
}

// sendThenReadOn is sendThenRead on c (a TLS connection, say).
func sendThenReadOn(t *testing.T, c net.Conn, head string, bodyLen int) (int, error) {
	t.Helper()
	_ = c.SetWriteDeadline(time.Now().Add(20 * time.Second))
	if _, err := io.WriteString(c, head); err != nil {
		return 0, err
	}
	chunk := []byte(strings.Repeat("z", 64<<10))
	for sent := 0; sent < bodyLen; sent += len(chunk) {
		if _, err := c.Write(chunk); err != nil {
			return 0, err
		}
	}
	code, _, err := readStatus(c, 10*time.Second)
	return code, err
}
