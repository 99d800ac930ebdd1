package proxytest

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/sluice-proxy/sluice/internal/testsync"
	"github.com/sluice-proxy/sluice/proxy/internal/testhttp"
)

// newTestServer starts a server closed at the end of the test.
func newTestServer(t *testing.T, o Options) *Server {
	t.Helper()
	s := NewServer(o)
	t.Cleanup(s.Close)
	return s
}

// newClient returns a client with its own connection pool, so a reset in
// one test never reaches another.
func newClient(t *testing.T) *http.Client {
	t.Helper()
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 10 * time.Second}
}

// do sends a request and returns the response with its whole body read.
func do(t *testing.T, c *http.Client, method, url, body string, hdr ...string) (*http.Response, []byte) {
	t.Helper()
	if body != "" {
		hdr = append([]string{"Content-Type", "application/json"}, hdr...)
	}
	return testhttp.Do(t, c, testsync.NewRequest(t, method, url, body, hdr...))
}

// readSSE reads server-sent events until the end of r, returning the data
// of each event and the error that ended the stream (nil at a clean EOF).
// It fails the test on lines that are not "data: ..." or blank.
func readSSE(t *testing.T, r io.Reader) ([]string, error) {
	t.Helper()
	var events []string
	br := bufio.NewReader(r)
	var data []string
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			if err == io.EOF {
				if line != "" || len(data) > 0 {
					t.Errorf("stream ended inside an event: %q", line)
				}
				return events, nil
			}
			return events, err
		}
		line = strings.TrimSuffix(line, "\n")
		switch {
		case line == "":
			if len(data) == 0 {
				t.Errorf("empty event (blank line with no data) after %d events", len(events))
				continue
			}
			events = append(events, strings.Join(data, "\n"))
			data = nil
		case strings.HasPrefix(line, "data: "):
			data = append(data, strings.TrimPrefix(line, "data: "))
		default:
			t.Errorf("unexpected SSE line %q", line)
		}
	}
}

// decode unmarshals JSON into a generic map, failing the test on error.
func decode(t *testing.T, b []byte) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("invalid JSON %q: %v", b, err)
	}
	return m
}

// waitFor polls cond until it holds or 5 s pass.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for !cond() {
		select {
		case <-ctx.Done():
			t.Fatalf("timed out waiting for %s", what)
		case <-time.After(5 * time.Millisecond):
		}
	}
}

const chatBody = `{"model":"m1","messages":[{"role":"system","content":"be brief"},{"role":"user","content":[{"type":"text","text":"hello there world"}]}]}`

// startStream POSTs a streaming chat request to s and returns the
// response, its headers read and its body open (closed when the test
// ends), and the cancel that makes the client leave.
func startStream(t *testing.T, s *Server) (*http.Response, context.CancelFunc) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, s.URL+pathChat, strings.NewReader(`{"stream":true,`+chatBody[1:]))
	resp, err := newClient(t).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = resp.Body.Close() })
	return resp, cancel
}
