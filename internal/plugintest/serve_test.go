package plugintest

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/sluice-proxy/sluice/proxy"
)

// TestServe checks that Serve's server answers (ready, forwarding to the
// upstream) while the test runs and is shut down when it ends.
func TestServe(t *testing.T) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "upstream "+r.URL.Path)
	}))
	defer up.Close()
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	get := func(url string) (int, string, error) {
		resp, err := client.Get(url)
		if err != nil {
			return 0, "", err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b), err
	}
	var base string
	t.Run("serving", func(t *testing.T) {
		srv, url := Serve(t, proxy.NewConfig().WithUpstream("default", up.URL),
			proxy.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
		if srv == nil || !strings.HasPrefix(url, "http://127.0.0.1:") {
			t.Fatalf("Serve = %v, %q", srv, url)
		}
		base = url
		if code, body, err := get(url + "/ready"); err != nil || code != 200 {
			t.Errorf("GET /ready: %d %q %v, want 200 (Serve marks the server ready)", code, body, err)
		}
		if code, body, err := get(url + "/x"); err != nil || code != 200 || body != "upstream /x" {
			t.Errorf("GET /x: %d %q %v, want 200 from the upstream", code, body, err)
		}
	})
	if base == "" {
		t.FailNow()
	}
	if code, body, err := get(base + "/ready"); err == nil {
		t.Errorf("GET /ready after the test ended: %d %q, want a refused connection", code, body)
	}
}
