package proxytest

import (
	"bytes"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestEcho(t *testing.T) {
	s := newTestServer(t, Options{Name: "blue"})
	c := newClient(t)
	f := func(method, path, want string) {
		t.Helper()
		resp, b := do(t, c, method, s.URL+path, "")
		if resp.StatusCode != http.StatusOK || string(b) != want {
			t.Errorf("%s %s: %d %q, want 200 %q", method, path, resp.StatusCode, b, want)
		}
		if got := resp.Header.Get(HeaderUpstreamName); got != "blue" {
			t.Errorf("%s: %s %q", path, HeaderUpstreamName, got)
		}
	}
	f(http.MethodGet, "/foo", "proxytest: GET /foo\n")
	f(http.MethodDelete, "/a/b?x=1&y=2", "proxytest: DELETE /a/b?x=1&y=2\n")
	f(http.MethodPost, "/", "proxytest: POST /\n")
	f(http.MethodHead, "/head", "")
}

func TestHeaders(t *testing.T) {
	s := newTestServer(t, Options{})
	c := newClient(t)
	for _, path := range []string{"/x", pathModels, "/health", "/metrics"} {
		resp, _ := do(t, c, http.MethodGet, s.URL+path, "", "X-Request-Id", "req-42")
		if got := resp.Header.Get(HeaderRequestID); got != "req-42" {
			t.Errorf("%s: %s = %q, want req-42", path, HeaderRequestID, got)
		}
		if _, ok := resp.Header[HeaderUpstreamName]; ok {
			t.Errorf("%s: %s sent without Options.Name", path, HeaderUpstreamName)
		}
		resp, _ = do(t, c, http.MethodGet, s.URL+path, "")
		if _, ok := resp.Header[HeaderRequestID]; ok {
			t.Errorf("%s: %s sent without x-request-id", path, HeaderRequestID)
		}
	}
}

func TestHealth(t *testing.T) {
	s := newTestServer(t, Options{Fail: FailHang, HeaderDelay: time.Hour})
	c := newClient(t)
	f := func(wantStatus int, wantBody string) {
		t.Helper()
		resp, b := do(t, c, http.MethodGet, s.URL+"/health", "")
		if resp.StatusCode != wantStatus || !strings.Contains(string(b), wantBody) {
			t.Errorf("/health: %d %s, want %d %s", resp.StatusCode, b, wantStatus, wantBody)
		}
	}
	f(http.StatusOK, "{}")
	s.SetHealthy(false)
	if s.Healthy() {
		t.Error("Healthy() after SetHealthy(false)")
	}
	f(http.StatusServiceUnavailable, `"error_type":"healthcheck"`)
	s.SetHealthy(true)
	f(http.StatusOK, "{}")
	if resp, _ := do(t, c, http.MethodPost, s.URL+"/health", ""); resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST /health: %d", resp.StatusCode)
	}
	if s.HealthChecks() != 4 || s.Requests() != 0 {
		t.Errorf("HealthChecks %d Requests %d, want 4 0", s.HealthChecks(), s.Requests())
	}
}

func TestLastRequest(t *testing.T) {
	s := newTestServer(t, Options{})
	c := newClient(t)
	if rr := s.LastRequest(); rr.Method != "" || rr.Header != nil {
		t.Errorf("LastRequest before any: %+v", rr)
	}
	do(t, c, http.MethodPost, s.URL+pathChat+"?q=1", chatBody, "X-Test", "yes")
	do(t, c, http.MethodGet, s.URL+"/health", "")
	rr := s.LastRequest()
	if rr.Method != http.MethodPost || rr.Path != pathChat || rr.RawQuery != "q=1" || rr.Host != s.Addr ||
		rr.Header.Get("X-Test") != "yes" || string(rr.Body) != chatBody {
		t.Errorf("LastRequest %+v", rr)
	}
	rr.Header.Set("X-Test", "changed")
	rr.Body[0] = 'X'
	if again := s.LastRequest(); again.Header.Get("X-Test") != "yes" || again.Body[0] != '{' {
		t.Error("LastRequest returned a view, not a copy")
	}
	if s.Requests() != 1 {
		t.Errorf("Requests %d, want 1", s.Requests())
	}
}

func TestBodyTooLarge(t *testing.T) {
	s := newTestServer(t, Options{MaxBodyBytes: 16})
	resp, b := do(t, newClient(t), http.MethodPost, s.URL+pathChat, chatBody)
	if resp.StatusCode != http.StatusRequestEntityTooLarge || !strings.Contains(string(b), "over 16 bytes") {
		t.Errorf("status %d body %s", resp.StatusCode, b)
	}
	if rr := s.LastRequest(); rr.Path != pathChat || rr.Body != nil {
		t.Errorf("LastRequest %+v", rr)
	}
}

func TestHeaderDelayAndInFlight(t *testing.T) {
	const delay = 100 * time.Millisecond
	s := newTestServer(t, Options{HeaderDelay: delay})
	c := newClient(t)
	start := time.Now()
	done := make(chan error, 1)
	go func() {
		resp, err := c.Get(s.URL + "/x")
		if err == nil {
			resp.Body.Close()
		}
		done <- err
	}()
	waitFor(t, "InFlight 1", func() bool { return s.InFlight() == 1 })
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if el := time.Since(start); el < delay {
		t.Errorf("answered after %v, want >= %v", el, delay)
	}
	waitFor(t, "InFlight 0", func() bool { return s.InFlight() == 0 })
}

// TestTokenDelayStreams checks the stream is flushed token by token: the
// first event arrives long before the last.
func TestTokenDelayStreams(t *testing.T) {
	const delay = 40 * time.Millisecond
	s := newTestServer(t, Options{Tokens: 4, TokenDelay: delay})
	resp, err := newClient(t).Post(s.URL+pathChat, "application/json", strings.NewReader(`{"stream":true,`+chatBody[1:]))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	buf := make([]byte, 4096)
	n, err := resp.Body.Read(buf)
	if err != nil || !bytes.HasPrefix(buf[:n], []byte("data: {")) {
		t.Fatalf("first read %q: %v", buf[:n], err)
	}
	first := time.Now()
	rest, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if el := time.Since(first); el < 2*delay {
		t.Errorf("rest of the stream came %v after the first event, want >= %v (not flushed per token?)", el, 2*delay)
	}
	if !bytes.HasSuffix(rest, []byte("data: [DONE]\n\n")) {
		t.Errorf("stream ends %q", rest)
	}
}

func TestNonStreamingWaitsForAllTokens(t *testing.T) {
	const delay = 20 * time.Millisecond
	s := newTestServer(t, Options{Tokens: 5, TokenDelay: delay})
	start := time.Now()
	resp, _ := do(t, newClient(t), http.MethodPost, s.URL+pathGenerate, `{"inputs":"x","parameters":{"max_new_tokens":4}}`)
	if el := time.Since(start); resp.StatusCode != http.StatusOK || el < 4*delay {
		t.Errorf("status %d after %v, want 200 after >= %v", resp.StatusCode, el, 4*delay)
	}
}

func TestHandlerOnOwnServer(t *testing.T) {
	s := NewUnstartedServer(Options{Name: "own"})
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := &http.Server{Handler: s.Handler()}
	go hs.Serve(l)
	t.Cleanup(func() { hs.Close() })
	resp, b := do(t, newClient(t), http.MethodGet, "http://"+l.Addr().String()+"/y", "")
	if string(b) != "proxytest: GET /y\n" || resp.Header.Get(HeaderUpstreamName) != "own" || s.Requests() != 1 {
		t.Errorf("%q %v requests %d", b, resp.Header, s.Requests())
	}
	s.Close()
	resp, _ = do(t, newClient(t), http.MethodGet, "http://"+l.Addr().String()+"/y", "")
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("after Close: %d, want 503", resp.StatusCode)
	}
}

func TestStartOnGivenListener(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := NewUnstartedServer(Options{})
	s.Listener = l
	s.Start()
	defer s.Close()
	if s.Addr != l.Addr().String() || s.URL != "http://"+s.Addr {
		t.Errorf("Addr %q URL %q, listener %v", s.Addr, s.URL, l.Addr())
	}
	if resp, _ := do(t, newClient(t), http.MethodGet, s.URL+"/", ""); resp.StatusCode != http.StatusOK {
		t.Errorf("status %d", resp.StatusCode)
	}
	mustPanic(t, "Start twice", s.Start)
}

func TestCloseReleasesWaits(t *testing.T) {
	s := NewServer(Options{TokenDelay: time.Hour})
	startStream(t, s)
	closed := make(chan struct{})
	go func() { s.Close(); close(closed) }()
	select {
	case <-closed:
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not return while a stream waited for its next token")
	}
	if s.InFlight() != 0 || s.Cancelled() != 0 {
		t.Errorf("after Close: InFlight %d Cancelled %d, want 0 0", s.InFlight(), s.Cancelled())
	}
	s.Close() // idempotent
	mustPanic(t, "Start after Close", s.Start)
}

func TestOptions(t *testing.T) {
	for _, o := range []Options{
		{Tokens: -1}, {TokenDelay: -1}, {HeaderDelay: -1}, {FailAfterTokens: -1},
		{MaxBodyBytes: -1}, {Fail: FailMode(99)}, {Models: []string{"a", ""}},
	} {
		if err := o.Validate(); err == nil || !strings.HasPrefix(err.Error(), "proxytest: Options.") {
			t.Errorf("%+v: Validate() = %v", o, err)
		}
		mustPanic(t, "NewServer with invalid options", func() { NewUnstartedServer(o) })
	}
	s := NewUnstartedServer(Options{})
	defer s.Close()
	got := s.Options()
	if got.Tokens != DefaultTokens || got.Model != DefaultModel || len(got.Models) != 1 ||
		got.Models[0] != DefaultModel || got.MaxBodyBytes != DefaultMaxBodyBytes {
		t.Errorf("defaults %+v", got)
	}
	models := []string{"a"}
	s.SetOptions(Options{Models: models, Fail: Fail500})
	models[0] = "changed"
	s.SetFailMode(FailHang)
	if got := s.Options(); got.Models[0] != "a" || got.Fail != FailHang || got.Tokens != DefaultTokens {
		t.Errorf("after SetOptions+SetFailMode: %+v", got)
	}
	mustPanic(t, "SetOptions invalid", func() { s.SetOptions(Options{Tokens: -5}) })
	mustPanic(t, "SetFailMode invalid", func() { s.SetFailMode(-1) })
}

func mustPanic(t *testing.T, what string, f func()) {
	t.Helper()
	defer func() {
		if recover() == nil {
			t.Errorf("%s did not panic", what)
		}
	}()
	f()
}
