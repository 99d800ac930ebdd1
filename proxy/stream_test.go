package proxy

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
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
		// The stream lasts 1.5 s, longer than the 1 s timeout, with a
		// chunk every 100 ms: a tenfold margin for a loaded machine's
		// scheduling (300 ms against 50 ms chunks failed once at load 8).
		up := startUpstream(t, proxytest.Options{Tokens: 15, TokenDelay: 100 * time.Millisecond})
		p := startProxy(t, baseConfig(up.URL).WithTimeout(time.Second), Options{})
		resp, body := doRequest(t, newClient(), "POST", p.URL+"/v1/chat/completions", chatStreamBody, nil)
		if resp.StatusCode != 200 || !strings.Contains(body, "[DONE]") || strings.Count(body, "data:") != 16 {
			t.Fatalf("stream of 1.5s with a 1s idle timeout: %d, %d events", resp.StatusCode, strings.Count(body, "data:"))
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

// cuttingUpstream answers with contentType, sends the given chunks one by
// one (flushed, chunked: no Content-Length), then resets the connection.
func cuttingUpstream(t *testing.T, contentType string, chunks ...string) string {
	t.Helper()
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", contentType)
		w.WriteHeader(200)
		rc := http.NewResponseController(w)
		for _, c := range chunks {
			_, _ = io.WriteString(w, c)
			_ = rc.Flush()
		}
		conn, _, err := rc.Hijack()
		if err != nil {
			t.Errorf("hijack: %v", err)
			return
		}
		_ = conn.(*net.TCPConn).SetLinger(0)
		conn.Close()
	}))
	t.Cleanup(up.Close)
	return up.URL
}

// rawChunked sends one request on a raw TCP connection and reads the
// chunked response until the connection ends. It returns the status, the
// decoded body and whether the terminating zero-length chunk came.
func rawChunked(t *testing.T, addr, method, path, body string) (status int, got string, terminated bool) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(30 * time.Second))
	req := method + " " + path + " HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: " +
		strconv.Itoa(len(body)) + "\r\n\r\n" + body
	if _, err := io.WriteString(c, req); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(c)
	line, err := br.ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "HTTP/1.1 ") || len(line) < 12 {
		t.Fatalf("status line %q: %v", line, err)
	}
	status, _ = strconv.Atoi(line[9:12])
	chunked := false
	for {
		h, err := br.ReadString('\n')
		if err != nil {
			t.Fatalf("headers: %v", err)
		}
		if h == "\r\n" {
			break
		}
		if strings.EqualFold(strings.TrimSpace(h), "transfer-encoding: chunked") {
			chunked = true
		}
	}
	if !chunked {
		t.Fatal("response is not chunked")
	}
	var b strings.Builder
	for {
		size, err := br.ReadString('\n')
		if err != nil {
			return status, b.String(), false // the connection ended mid-body
		}
		n, perr := strconv.ParseInt(strings.TrimSpace(size), 16, 64)
		if perr != nil {
			t.Fatalf("bad chunk size line %q", size)
		}
		if n == 0 {
			return status, b.String(), true
		}
		buf := make([]byte, n+2)
		if _, err := io.ReadFull(br, buf); err != nil {
			b.Write(buf)
			return status, b.String(), false
		}
		b.Write(buf[:n])
	}
}

const threeEvents = "data: {\"n\":1}\n\n" + "data: {\"n\":2}\n\n" + "data: {\"n\":3}\n\n"

// TestStreamCutGetsErrorEventNoTerminator: an event stream the upstream
// resets after 3 events reaches the client as those 3 events, then an
// error event in the route's dialect, then the end of the connection
// without the terminating chunk (issue 9: it used to end silently).
func TestStreamCutGetsErrorEventNoTerminator(t *testing.T) {
	const tgiEvent = `data:{"error":"The upstream connection failed in the middle of the response; it is incomplete","error_type":"incomplete_generation"}` + "\n\n"
	for _, tc := range []struct {
		name, path, event string
		openAI            bool
	}{
		{"openai", "/v1/chat/completions",
			`data: {"error":{"message":"The upstream connection failed in the middle of the response; it is incomplete","type":"api_error","param":null,"code":"bad_gateway"}}` + "\n\n", true},
		{"tgi", "/generate_stream", tgiEvent, true},
		{"tgi compat route", "/", tgiEvent, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			up := cuttingUpstream(t, "text/event-stream", "data: {\"n\":1}\n\n", "data: {\"n\":2}\n\n", "data: {\"n\":3}\n\n")
			p := startProxy(t, baseConfig(up).WithOpenAICompat(tc.openAI), Options{})
			status, body, terminated := rawChunked(t, p.Addr, "POST", tc.path, chatStreamBody)
			if status != 200 {
				t.Fatalf("status %d", status)
			}
			if terminated {
				t.Fatalf("a cut stream ended with the terminating chunk: %q", body)
			}
			if body != threeEvents+tc.event {
				t.Fatalf("body\n%q\nwant\n%q", body, threeEvents+tc.event)
			}
			checkSlotsFree(t, p.Router())
			if m := p.Router().Metrics(); m.Failed != 1 {
				t.Fatalf("metrics %+v", m)
			}
			if !strings.Contains(metricsText(t, p), `sluice_streams_truncated_total{reason="upstream"} 1`) {
				t.Fatal("truncated stream not counted")
			}
		})
	}
	t.Run("mid-event", func(t *testing.T) {
		// The upstream stops inside an event: a blank line ends it so the
		// error event stands on its own.
		up := cuttingUpstream(t, "text/event-stream", "data: {\"n\":1}\n\n", "data: {\"n\"")
		p := startProxy(t, baseConfig(up), Options{})
		_, body, terminated := rawChunked(t, p.Addr, "POST", "/v1/chat/completions", chatStreamBody)
		if terminated || !strings.HasPrefix(body, "data: {\"n\":1}\n\ndata: {\"n\"\n\ndata: {\"error\":{") {
			t.Fatalf("terminated %v, body %q", terminated, body)
		}
	})
}

// TestStreamSilentMidwayGetsTimeoutEvent: an upstream that falls silent
// mid-stream for longer than the timeout gets the timeout event.
func TestStreamSilentMidwayGetsTimeoutEvent(t *testing.T) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		_, _ = io.WriteString(w, "data: {\"n\":1}\n\n")
		_ = http.NewResponseController(w).Flush()
		<-r.Context().Done() // silent until the proxy gives up
	}))
	t.Cleanup(up.Close)
	p := startProxy(t, baseConfig(up.URL).WithTimeout(200*time.Millisecond), Options{})
	_, body, terminated := rawChunked(t, p.Addr, "POST", "/v1/chat/completions", chatStreamBody)
	want := "data: {\"n\":1}\n\n" + `data: {"error":{"message":"The upstream sent nothing within the timeout in the middle of the response; it is incomplete","type":"timeout_error","param":null,"code":"upstream_timeout"}}` + "\n\n"
	if terminated || body != want {
		t.Fatalf("terminated %v, body\n%q\nwant\n%q", terminated, body, want)
	}
	checkSlotsFree(t, p.Router())
}

// TestStreamCutByPluginGetsErrorEvent: a fail_closed filter that fails on
// a response body chunk ends the stream the same way, counted as
// reason="plugin".
func TestStreamCutByPluginGetsErrorEvent(t *testing.T) {
	up := cuttingUpstream(t, "text/event-stream", "data: {\"n\":1}\n\n", "data: {\"n\":2}\n\n")
	chunks := 0
	f := &funcFilter{name: "breaks", onRspBdy: func(ex *Exchange, eos bool) (Action, error) {
		chunks++
		if chunks == 2 {
			return ActionContinue, errors.New("broken")
		}
		return ActionContinue, nil
	}}
	p := startProxy(t, baseConfig(up), Options{Filters: []Filter{f}})
	_, body, terminated := rawChunked(t, p.Addr, "POST", "/v1/chat/completions", chatStreamBody)
	want := "data: {\"n\":1}\n\n" + `data: {"error":{"message":"A plugin failed on the response body; the response is incomplete","type":"api_error","param":null,"code":"plugin_failure"}}` + "\n\n"
	if terminated || body != want {
		t.Fatalf("terminated %v, body\n%q\nwant\n%q", terminated, body, want)
	}
	checkSlotsFree(t, p.Router())
	if !strings.Contains(metricsText(t, p), `sluice_streams_truncated_total{reason="plugin"} 1`) {
		t.Fatal("truncated stream not counted as plugin")
	}
}

// TestNonSSEBodyCutAbortsNoEvent: a chunked body that is not an event
// stream, cut by the upstream, is aborted without the terminating chunk
// and without an event.
func TestNonSSEBodyCutAbortsNoEvent(t *testing.T) {
	up := cuttingUpstream(t, "application/x-ndjson", "{\"n\":1}\n", "{\"n\":2}\n")
	p := startProxy(t, baseConfig(up), Options{})
	_, body, terminated := rawChunked(t, p.Addr, "POST", "/v1/chat/completions", chatStreamBody)
	if terminated || body != "{\"n\":1}\n{\"n\":2}\n" {
		t.Fatalf("terminated %v, body %q", terminated, body)
	}
	checkSlotsFree(t, p.Router())
	if !strings.Contains(metricsText(t, p), `sluice_streams_truncated_total{reason="upstream"} 1`) {
		t.Fatal("truncated body not counted")
	}
}

// TestOpenAISDKSeesStreamCut: the official openai-go client reports the
// error event of a stream the upstream cut as an API error carrying
// Sluice's message, after the events that did arrive.
func TestOpenAISDKSeesStreamCut(t *testing.T) {
	up := startUpstream(t, proxytest.Options{Tokens: 10, Fail: proxytest.FailResetMidStream, FailAfterTokens: 3})
	p := startProxy(t, baseConfig(up.URL), Options{})
	client := openai.NewClient(option.WithBaseURL(p.URL+"/v1/"), option.WithAPIKey("test"), option.WithMaxRetries(0))
	stream := client.Chat.Completions.NewStreaming(context.Background(), openai.ChatCompletionNewParams{
		Model:    "proxytest-model",
		Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("hi")},
	})
	chunks := 0
	for stream.Next() {
		chunks++
	}
	err := stream.Err()
	if chunks != 3 || err == nil || !strings.Contains(err.Error(), "it is incomplete") {
		t.Fatalf("%d chunks, error %v; want 3 chunks and Sluice's error event", chunks, err)
	}
	checkSlotsFree(t, p.Router())
}

// TestStreamCoalescesReceivedEvents: events the upstream sent together
// leave Sluice together, in one chunk and one write, not one write each.
func TestStreamCoalescesReceivedEvents(t *testing.T) {
	var all, want strings.Builder
	all.WriteString(sseHead)
	for i := 0; i < 5; i++ {
		all.WriteString(sseChunk(strconv.Itoa(i)))
		want.WriteString("data: " + strconv.Itoa(i) + "\n\n")
	}
	all.WriteString("0\r\n\r\n")
	up := scriptedUpstream(t, func(c net.Conn) { _, _ = c.Write([]byte(all.String())) })
	p := startProxy(t, baseConfig(up), Options{})
	got, chunks := readRest(t, streamThrough(t, p))
	if got != want.String() {
		t.Fatalf("body %q, want %q", got, want.String())
	}
	// One write from the upstream is one read here almost always; allow
	// the kernel one split.
	if chunks > 2 {
		t.Fatalf("5 events received together were sent in %d chunks, want them together", chunks)
	}
	checkSlotsFree(t, p.Router())
}

// TestStreamCoalescingNeverWaits: an event is sent on at once even when
// the start of the next one came with it; coalescing only takes what is
// already whole.
func TestStreamCoalescingNeverWaits(t *testing.T) {
	gotFirst := make(chan struct{})
	second := sseChunk("2")
	up := scriptedUpstream(t, func(c net.Conn) {
		// Event 1 and the first bytes of event 2 in one write; the rest of
		// event 2 only once the client has event 1.
		_, _ = c.Write([]byte(sseHead + sseChunk("1") + second[:5]))
		select {
		case <-gotFirst:
		case <-time.After(10 * time.Second):
		}
		_, _ = c.Write([]byte(second[5:] + "0\r\n\r\n"))
	})
	p := startProxy(t, baseConfig(up), Options{})
	br := streamThrough(t, p)
	type chunk struct {
		data string
		err  error
	}
	done := make(chan chunk, 1)
	go func() {
		ch, err := readChunk(br)
		done <- chunk{ch, err}
	}()
	select {
	case ch := <-done:
		if ch.err != nil || ch.data != "data: 1\n\n" {
			t.Fatalf("first chunk %q, %v", ch.data, ch.err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("event 1 held back until event 2 was complete")
	}
	close(gotFirst)
	// The part of event 2 already received may come on its own, as before.
	if rest, _ := readRest(t, br); rest != "data: 2\n\n" {
		t.Fatalf("after event 1: %q, want event 2", rest)
	}
}
