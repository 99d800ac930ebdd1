package proxy

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sluice-proxy/sluice/proxy/proxytest"
)

// TestSSEStreamsEventByEvent checks that each event reaches the client when
// the upstream sends it, not when the stream ends.
func TestSSEStreamsEventByEvent(t *testing.T) {
	const tokens, delay = 6, 150 * time.Millisecond
	up := startUpstream(t, proxytest.Options{Tokens: tokens, TokenDelay: delay})
	p := startProxy(t, baseConfig(up.URL), Options{})
	req, _ := http.NewRequest("POST", p.URL+"/v1/chat/completions", strings.NewReader(chatStreamBody))
	start := time.Now()
	resp, err := newClient().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/event-stream") {
		t.Fatalf("content type %q", ct)
	}
	if resp.Header.Get("X-Accel-Buffering") != "no" {
		t.Fatal("X-Accel-Buffering: no not set on an event stream")
	}
	var arrivals []time.Duration
	var last string
	if err := sseEvents(resp.Body, func(data string) {
		arrivals = append(arrivals, time.Since(start))
		last = data
	}); err != nil {
		t.Fatal(err)
	}
	if last != "[DONE]" || len(arrivals) != tokens+1 {
		t.Fatalf("got %d events, last %q", len(arrivals), last)
	}
	// Buffered, every event would arrive together after tokens*delay. Each
	// event must instead arrive before the upstream had produced the next
	// ones: the first well before the last.
	if spread := arrivals[len(arrivals)-1] - arrivals[0]; spread < delay*(tokens-2) {
		t.Fatalf("events arrived together (spread %v over %v): %v", spread, delay*tokens, arrivals)
	}
	checkSlotsFree(t, p.Router())
	if m := p.Router().Metrics(); m.Completed != 1 {
		t.Fatalf("metrics %+v", m)
	}
}

// TestStreamHoldsSlot checks that the slot is held until the stream ends.
func TestStreamHoldsSlot(t *testing.T) {
	up := startUpstream(t, proxytest.Options{Tokens: 4, TokenDelay: 100 * time.Millisecond})
	p := startProxy(t, baseConfig(up.URL).WithMaxConcurrentRequests(1), Options{})
	resp := postStream(t, p)
	br := bufio.NewReader(resp.Body)
	if _, err := br.ReadString('\n'); err != nil { // first event arrived
		t.Fatal(err)
	}
	if a := p.Router().Metrics().Active; a != 1 {
		t.Fatalf("active = %d during the stream", a)
	}
	r2, body := doRequest(t, newClient(), "POST", p.URL+"/v1/chat/completions", chatStreamBody, nil)
	if r2.StatusCode != 429 {
		t.Fatalf("second stream: %d %q", r2.StatusCode, body)
	}
	_, _ = io.Copy(io.Discard, br)
	resp.Body.Close()
	checkSlotsFree(t, p.Router())
}

// TestClientDisconnectCancelsUpstream checks that a client that goes away
// mid-stream frees its slot and closes the upstream request.
func TestClientDisconnectCancelsUpstream(t *testing.T) {
	up := startUpstream(t, proxytest.Options{Tokens: 1000, TokenDelay: 20 * time.Millisecond})
	p := startProxy(t, baseConfig(up.URL), Options{})
	conn, err := net.Dial("tcp", p.Addr)
	if err != nil {
		t.Fatal(err)
	}
	_, err = io.WriteString(conn, "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"+
		"Content-Length: "+strconv.Itoa(len(chatStreamBody))+"\r\n\r\n"+chatStreamBody)
	if err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(conn)
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		if strings.HasPrefix(line, "data:") {
			break
		}
	}
	if p.Router().Metrics().Active != 1 || up.InFlight() != 1 {
		t.Fatalf("before disconnect: active %d, upstream in flight %d", p.Router().Metrics().Active, up.InFlight())
	}
	conn.Close()
	checkSlotsFree(t, p.Router())
	waitFor(t, "upstream request cancelled", func() bool { return up.Cancelled() == 1 && up.InFlight() == 0 })
	if m := p.Router().Metrics(); m.Failed != 1 {
		t.Fatalf("metrics %+v", m)
	}
}

// TestStreamIdleTimeout checks that the timeout bounds silence between
// chunks but never cuts a stream that keeps producing.
func TestStreamIdleTimeout(t *testing.T) {
	t.Run("producing stream is not cut", func(t *testing.T) {
		up := startUpstream(t, proxytest.Options{Tokens: 20, TokenDelay: 50 * time.Millisecond})
		p := startProxy(t, baseConfig(up.URL).WithTimeout(300*time.Millisecond), Options{})
		resp, body := doRequest(t, newClient(), "POST", p.URL+"/v1/chat/completions", chatStreamBody, nil)
		if resp.StatusCode != 200 || !strings.Contains(body, "[DONE]") || strings.Count(body, "data:") != 21 {
			t.Fatalf("stream of 1s with a 300ms idle timeout: %d, %d events", resp.StatusCode, strings.Count(body, "data:"))
		}
		checkSlotsFree(t, p.Router())
		if m := p.Router().Metrics(); m.Completed != 1 {
			t.Fatalf("metrics %+v", m)
		}
	})
	t.Run("silent stream is cut", func(t *testing.T) {
		up := startUpstream(t, proxytest.Options{Tokens: 3, TokenDelay: 2 * time.Second})
		p := startProxy(t, baseConfig(up.URL).WithTimeout(200*time.Millisecond), Options{})
		resp := postStream(t, p)
		expectCut(t, resp, "a stream cut by the idle timeout ended cleanly")
		checkSlotsFree(t, p.Router())
		waitFor(t, "upstream request closed", func() bool { return up.InFlight() == 0 })
		if m := p.Router().Metrics(); m.Failed != 1 {
			t.Fatalf("metrics %+v", m)
		}
	})
	t.Run("reset mid-stream", func(t *testing.T) {
		up := startUpstream(t, proxytest.Options{Tokens: 10, Fail: proxytest.FailResetMidStream, FailAfterTokens: 2})
		p := startProxy(t, baseConfig(up.URL), Options{})
		resp := postStream(t, p)
		expectCut(t, resp, "a stream reset upstream ended cleanly for the client")
		checkSlotsFree(t, p.Router())
		if m := p.Router().Metrics(); m.Failed != 1 {
			t.Fatalf("metrics %+v", m)
		}
	})
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
