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
