package proxytest

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestFail500(t *testing.T) {
	s := newTestServer(t, Options{Fail: Fail500})
	c := newClient(t)
	resp, b := do(t, c, http.MethodPost, s.URL+pathChat, chatBody)
	var oe struct {
		Error struct {
			Message string `json:"message"`
			Type    string `json:"type"`
		} `json:"error"`
	}
	if err := json.Unmarshal(b, &oe); resp.StatusCode != 500 || err != nil || oe.Error.Type != "server_error" ||
		!strings.Contains(oe.Error.Message, "injected") {
		t.Errorf("chat: %d %s", resp.StatusCode, b)
	}
	resp, b = do(t, c, http.MethodPost, s.URL+pathGenStream, `{"inputs":"x"}`)
	var te struct {
		Error     string `json:"error"`
		ErrorType string `json:"error_type"`
	}
	if err := json.Unmarshal(b, &te); resp.StatusCode != 500 || err != nil || te.ErrorType != "incomplete_generation" {
		t.Errorf("generate_stream: %d %s", resp.StatusCode, b)
	}
	if resp, _ := do(t, c, http.MethodGet, s.URL+"/health", ""); resp.StatusCode != http.StatusOK {
		t.Errorf("/health is affected by Fail500: %d", resp.StatusCode)
	}
	s.SetFailMode(FailNone)
	if resp, _ := do(t, c, http.MethodPost, s.URL+pathChat, chatBody); resp.StatusCode != http.StatusOK {
		t.Errorf("after SetFailMode(FailNone): %d", resp.StatusCode)
	}
}

func TestFailResetBeforeHeaders(t *testing.T) {
	s := newTestServer(t, Options{Fail: FailResetBeforeHeaders})
	c := newClient(t)
	for _, path := range []string{pathChat, pathGenerate, "/other"} {
		resp, err := c.Post(s.URL+path, "application/json", strings.NewReader(`{"inputs":"x","messages":[{"role":"u"}]}`))
		if err == nil {
			resp.Body.Close()
			t.Errorf("%s: got status %d, want a connection error", path, resp.StatusCode)
		} else if !errors.Is(err, syscall.ECONNRESET) {
			t.Errorf("%s: error %v, want a connection reset", path, err)
		}
	}
	if s.Requests() != 3 || s.Cancelled() != 0 {
		t.Errorf("Requests %d Cancelled %d, want 3 0", s.Requests(), s.Cancelled())
	}
	waitFor(t, "InFlight 0", func() bool { return s.InFlight() == 0 })
}

func TestFailResetMidStream(t *testing.T) {
	s := newTestServer(t, Options{Tokens: 5, Fail: FailResetMidStream})
	c := newClient(t)
	f := func(path, body string, after, wantEvents int) {
		t.Helper()
		o := s.Options()
		o.FailAfterTokens = after
		s.SetOptions(o)
		resp, err := c.Post(s.URL+path, "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatalf("%s after %d: %v (headers should arrive)", path, after, err)
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("status %d", resp.StatusCode)
		}
		events, err := readSSE(t, resp.Body)
		if !errors.Is(err, syscall.ECONNRESET) {
			t.Errorf("%s after %d: stream ended with %v, want a connection reset", path, after, err)
		}
		if len(events) != wantEvents {
			t.Errorf("%s after %d: %d events %q, want %d", path, after, len(events), events, wantEvents)
		}
		for _, e := range events {
			if e == "[DONE]" || strings.Contains(e, `"usage":{`) {
				t.Errorf("%s after %d: event %q sent before the reset", path, after, e)
			}
		}
	}
	streamChat := `{"stream":true,"stream_options":{"include_usage":true},` + chatBody[1:]
	f(pathChat, streamChat, 0, 0)
	f(pathChat, streamChat, 2, 2)
	f(pathChat, streamChat, 5, 5)
	f(pathChat, streamChat, 50, 5)
	f(pathGenStream, `{"inputs":"x"}`, 3, 3)
	f(pathGenStream, `{"inputs":"x","parameters":{"max_new_tokens":2}}`, 3, 2)

	// A non-streaming reply is cut in its body.
	for _, path := range []string{pathChat, pathModels, "/plain"} {
		method := http.MethodPost
		if path == pathModels {
			method = http.MethodGet
		}
		req, _ := http.NewRequest(method, s.URL+path, strings.NewReader(chatBody))
		resp, err := c.Do(req)
		if err != nil {
			continue // the reset may beat the headers: also a failure for the client
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err == nil {
			t.Errorf("%s: read whole body %q, want an error", path, b)
		}
	}
	if s.Cancelled() != 0 {
		t.Errorf("Cancelled %d, want 0 (the server, not the client, ended these)", s.Cancelled())
	}
}

func TestFailHang(t *testing.T) {
	s := newTestServer(t, Options{Fail: FailHang})
	c := newClient(t)
	for i, path := range []string{pathChat, pathGenStream, "/any"} {
		ctx, cancel := context.WithCancel(context.Background())
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, s.URL+path, strings.NewReader(`{}`))
		errc := make(chan error, 1)
		go func() {
			resp, err := c.Do(req)
			if err == nil {
				resp.Body.Close()
			}
			errc <- err
		}()
		waitFor(t, "the request to arrive", func() bool { return s.InFlight() == 1 })
		select {
		case err := <-errc:
			t.Fatalf("%s: answered while hanging: %v", path, err)
		case <-time.After(100 * time.Millisecond):
		}
		cancel()
		if err := <-errc; !errors.Is(err, context.Canceled) {
			t.Errorf("%s: client error %v, want context.Canceled", path, err)
		}
		waitFor(t, "Cancelled to count the request", func() bool { return s.Cancelled() == int64(i+1) })
		waitFor(t, "InFlight 0", func() bool { return s.InFlight() == 0 })
	}
}

// TestCancelMidStream checks a client that leaves during a paced stream is
// counted, and the handler stops.
func TestCancelMidStream(t *testing.T) {
	s := newTestServer(t, Options{Tokens: 1000, TokenDelay: 5 * time.Millisecond})
	resp, cancel := startStream(t, s)
	if _, err := resp.Body.Read(make([]byte, 64)); err != nil {
		t.Fatal(err)
	}
	cancel()
	resp.Body.Close()
	waitFor(t, "Cancelled 1", func() bool { return s.Cancelled() == 1 })
	waitFor(t, "InFlight 0", func() bool { return s.InFlight() == 0 })
}

func TestParseFailMode(t *testing.T) {
	for m := FailNone; m <= FailHang; m++ {
		got, err := ParseFailMode(m.String())
		if err != nil || got != m {
			t.Errorf("ParseFailMode(%q) = %v, %v", m.String(), got, err)
		}
	}
	if m, err := ParseFailMode(""); m != FailNone || err != nil {
		t.Errorf(`ParseFailMode("") = %v, %v`, m, err)
	}
	if _, err := ParseFailMode("explode"); err == nil || !strings.Contains(err.Error(), `"explode"`) {
		t.Errorf("ParseFailMode(explode) error %v", err)
	}
	if s := FailMode(42).String(); s != "FailMode(42)" {
		t.Errorf("String of unknown mode %q", s)
	}
}
