package proxy

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sluice-proxy/sluice/proxy/proxytest"
)

// keepAliveConn is a raw client connection that sends requests one after
// another on the same TCP connection.
type keepAliveConn struct {
	t  *testing.T
	c  net.Conn
	br *bufio.Reader
}

func dialKeepAlive(t *testing.T, addr string) *keepAliveConn {
	t.Helper()
	c := rawConn(t, addr)
	return &keepAliveConn{t: t, c: c, br: bufio.NewReader(c)}
}

// do sends one request and reads its answer; err is what the client would
// see (a connection closed without an answer).
func (k *keepAliveConn) do(method, path, body string) (*http.Response, string, error) {
	_ = k.c.SetDeadline(time.Now().Add(30 * time.Second))
	req := method + " " + path + " HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: " +
		strconv.Itoa(len(body)) + "\r\n\r\n" + body
	if _, err := io.WriteString(k.c, req); err != nil {
		return nil, "", err
	}
	resp, err := http.ReadResponse(k.br, nil)
	if err != nil {
		return nil, "", err
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp, string(b), err
}

// TestDrainReadyAnswers503 checks the drain sequence during drain_delay:
// /ready answers 503 at once, the listener still accepts and serves, a
// request on a keep-alive connection that was idle when the drain began
// is answered (not dropped), and every answer carries Connection: close.
// Only then does the listener close (issue 9: it closed at once, so /ready
// was a refused connection while Kubernetes still routed to the pod).
func TestDrainReadyAnswers503(t *testing.T) {
	up := startUpstream(t, proxytest.Options{Tokens: 2})
	// The delay is ended by cancelling Shutdown's context, so the test
	// does not depend on how fast it runs.
	p := startProxy(t, baseConfig(up.URL).WithDrainDelay(time.Hour), Options{})
	idle := dialKeepAlive(t, p.Addr)
	resp, _, err := idle.do("POST", "/v1/chat/completions", chatBody)
	if err != nil || resp.StatusCode != 200 || resp.Close {
		t.Fatalf("before the drain: %v %+v", err, resp)
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	shutdownErr := make(chan error, 1)
	go func() { shutdownErr <- p.Shutdown(ctx) }()
	waitFor(t, "drain started", func() bool { return !p.Router().IsReady() })

	resp, body, err := idle.do("GET", "/ready", "")
	if err != nil {
		t.Fatalf("a request on an idle keep-alive connection during the drain got no answer: %v", err)
	}
	if resp.StatusCode != 503 || !resp.Close {
		t.Fatalf("/ready during the drain: %d, Connection: close %v, %s", resp.StatusCode, resp.Close, body)
	}
	fresh := dialKeepAlive(t, p.Addr) // the listener still accepts
	resp, body, err = fresh.do("POST", "/v1/chat/completions", chatBody)
	if err != nil || resp.StatusCode != 200 || !strings.Contains(body, "chat.completion") {
		t.Fatalf("proxied request during the drain delay: %v %+v %s", err, resp, body)
	}
	if !resp.Close {
		t.Fatal("an answer during the drain lacks Connection: close")
	}
	select {
	case err := <-shutdownErr:
		t.Fatalf("Shutdown returned before drain_delay passed: %v", err)
	default:
	}

	cancel() // end the delay
	if err := <-shutdownErr; err != nil && !errors.Is(err, context.Canceled) {
		t.Fatalf("Shutdown: %v", err)
	}
	if c, err := net.DialTimeout("tcp", p.Addr, time.Second); err == nil {
		c.Close()
		t.Fatal("the listener still accepts after the drain")
	}
	checkSlotsFree(t, p.Router())
}

// shutdownMidStream starts an engine with opts, a proxy before it and one
// stream through it, and returns what Shutdown says when its context ends
// after 200ms, the stream (paced by opts) still running.
func shutdownMidStream(t *testing.T, opts proxytest.Options) error {
	t.Helper()
	up := startUpstream(t, opts)
	p := startProxy(t, baseConfig(up.URL), Options{})
	resp := postStream(t, p)
	defer resp.Body.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	return p.Shutdown(ctx)
}

// TestGracefulDrain checks that shutdown stops readiness at once, lets an
// in-flight stream finish, and refuses new connections.
func TestGracefulDrain(t *testing.T) {
	up := startUpstream(t, proxytest.Options{Tokens: 8, TokenDelay: 100 * time.Millisecond})
	p := startProxy(t, baseConfig(up.URL), Options{})
	resp := postStream(t, p)
	shutdownErr := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		shutdownErr <- p.Shutdown(ctx)
	}()
	waitFor(t, "not ready", func() bool { return !p.Router().IsReady() })
	waitFor(t, "listener closed", func() bool {
		c, err := net.DialTimeout("tcp", p.Addr, time.Second)
		if err == nil {
			c.Close()
		}
		return err != nil
	})
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || !strings.Contains(string(body), "[DONE]") {
		t.Fatalf("in-flight stream cut by shutdown: %v, %q", err, body)
	}
	if err := <-shutdownErr; err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if m := p.Router().Metrics(); m.Completed != 1 || m.Active != 0 {
		t.Fatalf("metrics %+v", m)
	}
}

// TestShutdownTimeout checks that Shutdown gives up at its deadline.
func TestShutdownTimeout(t *testing.T) {
	if err := shutdownMidStream(t, proxytest.Options{Tokens: 100, TokenDelay: 100 * time.Millisecond}); err == nil {
		t.Fatal("Shutdown returned nil with a stream still running")
	}
}

// TestShutdownReportsRunningRequests checks that a Shutdown whose context
// ends with a stream still running says how many requests it leaves, so
// the command can exit 1.
func TestShutdownReportsRunningRequests(t *testing.T) {
	err := shutdownMidStream(t, proxytest.Options{Tokens: 1000, TokenDelay: 20 * time.Millisecond})
	var se *ShutdownError
	if !errors.As(err, &se) || se.Running != 1 || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Shutdown with a stream running: %v", err)
	}
}

// TestShutdownBeforeServe: a Shutdown that comes before Serve (or before
// Serve's goroutine reaches fasthttp's accept loop) still stops it: Serve
// returns nil at once instead of accepting forever, and Shutdown reports
// no error for the listener it closed.
func TestShutdownBeforeServe(t *testing.T) {
	for _, order := range []string{"shutdown first", "concurrent"} {
		t.Run(order, func(t *testing.T) {
			srv := newServer(t, NewConfig().WithHostname("127.0.0.1").WithUpstream("a", "http://127.0.0.1:1"), Options{})
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			served := make(chan error, 1)
			shut := make(chan error, 1)
			shutdown := func() {
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				defer cancel()
				shut <- srv.Shutdown(ctx)
			}
			if order == "shutdown first" {
				shutdown()
				go func() { served <- srv.Serve(ln) }()
			} else {
				go func() { served <- srv.Serve(ln) }()
				go shutdown()
			}
			for _, c := range []struct {
				what string
				ch   chan error
			}{{"Serve", served}, {"Shutdown", shut}} {
				select {
				case err := <-c.ch:
					if err != nil {
						t.Fatalf("%s: %v", c.what, err)
					}
				case <-time.After(10 * time.Second):
					t.Fatalf("%s did not return after Shutdown", c.what)
				}
			}
			if c, err := net.DialTimeout("tcp", ln.Addr().String(), time.Second); err == nil {
				c.Close()
				t.Fatal("the listener still accepts after Shutdown")
			}
		})
	}
}
