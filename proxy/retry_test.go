package proxy

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluice-proxy/sluice/internal/testsync"
	"github.com/sluice-proxy/sluice/proxy/proxytest"
)

// statusUpstream answers every request with status and a body, counting
// the requests and keeping the last body it received.
type statusUpstream struct {
	*httptest.Server
	hits atomic.Int64
	body atomic.Value
}

func startStatusUpstream(t *testing.T, status int) *statusUpstream {
	t.Helper()
	su := &statusUpstream{}
	su.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		su.body.Store(string(b))
		su.hits.Add(1)
		w.Header().Set("X-Upstream-Name", "status")
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_, _ = w.Write([]byte(`{"error":"from the status upstream"}`))
	}))
	t.Cleanup(su.Close)
	return su
}

func TestRetryBeforeFirstByte(t *testing.T) {
	c := newClient()
	for _, tc := range []struct {
		name string
		bad  func(t *testing.T) (url string, hits func() int64)
	}{
		{"reset before headers", func(t *testing.T) (string, func() int64) {
			up := startUpstream(t, proxytest.Options{Name: "bad", Fail: proxytest.FailResetBeforeHeaders})
			return up.URL, up.Requests
		}},
		{"connection refused", func(t *testing.T) (string, func() int64) {
			up := startUpstream(t, proxytest.Options{})
			up.Close()
			return up.URL, func() int64 { return 1 }
		}},
		{"503", func(t *testing.T) (string, func() int64) {
			su := startStatusUpstream(t, 503)
			return su.URL, su.hits.Load
		}},
		{"502", func(t *testing.T) (string, func() int64) {
			su := startStatusUpstream(t, 502)
			return su.URL, su.hits.Load
		}},
		{"429", func(t *testing.T) (string, func() int64) {
			su := startStatusUpstream(t, 429)
			return su.URL, su.hits.Load
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			badURL, hits := tc.bad(t)
			good := startUpstream(t, proxytest.Options{Name: "good"})
			p := startProxy(t, NewConfig().WithUpstreamConfig(UpstreamConfig{
				Name: "pool", Endpoints: []string{badURL, good.URL},
				PassiveEjection: PassiveEjectionConfig{Disabled: true}, // keep sending to the bad one
			}), Options{})
			for i := range 6 {
				body := `{"model":"m","messages":[{"role":"user","content":"n` + strconv.Itoa(i) + `"}]}`
				resp, got := doRequest(t, c, "POST", p.URL+"/v1/chat/completions", body, nil)
				if resp.StatusCode != 200 || resp.Header.Get("x-upstream-name") != "good" || !strings.Contains(got, "chat.completion") {
					t.Fatalf("request %d: %d from %q: %s", i, resp.StatusCode, resp.Header.Get("x-upstream-name"), got)
				}
				// The retried request carried its whole body.
				if string(good.LastRequest().Body) != body {
					t.Fatalf("retried body %q, want %q", good.LastRequest().Body, body)
				}
			}
			if hits() == 0 {
				t.Fatal("the failing endpoint was never tried")
			}
			if m := metricsText(t, p); !strings.Contains(m, `sluice_upstream_retries_total{upstream="pool"} 3`) {
				t.Fatalf("retries not counted:\n%s", testsync.Grep(m, "retries"))
			}
			checkSlotsFree(t, p.Router())
		})
	}
}

func TestRetryLimits(t *testing.T) {
	c := newClient()
	t.Run("retries 0", func(t *testing.T) {
		bad := startUpstream(t, proxytest.Options{Fail: proxytest.FailResetBeforeHeaders})
		good := startUpstream(t, proxytest.Options{Name: "good"})
		zero := 0
		p := startProxy(t, NewConfig().WithUpstreamConfig(UpstreamConfig{
			Name: "pool", Endpoints: []string{bad.URL, good.URL}, Retries: &zero,
		}), Options{})
		codes := map[int]int{}
		for range 4 {
			resp, _ := doRequest(t, c, "POST", p.URL+"/v1/chat/completions", chatBody, nil)
			codes[resp.StatusCode]++
		}
		if codes[502] != 2 || codes[200] != 2 {
			t.Fatalf("statuses %v, want two 502s passed through", codes)
		}
	})
	t.Run("one endpoint: nowhere else to go", func(t *testing.T) {
		su := startStatusUpstream(t, 503)
		p := startProxy(t, NewConfig().WithUpstream("pool", su.URL), Options{})
		resp, body := doRequest(t, c, "POST", p.URL+"/v1/chat/completions", chatBody, nil)
		if resp.StatusCode != 503 || !strings.Contains(body, "from the status upstream") || su.hits.Load() != 1 {
			t.Fatalf("status %d body %q hits %d", resp.StatusCode, body, su.hits.Load())
		}
	})
	t.Run("all endpoints fail: the last answer is sent", func(t *testing.T) {
		a, b := startStatusUpstream(t, 503), startStatusUpstream(t, 503)
		three := 3
		p := startProxy(t, NewConfig().WithUpstreamConfig(UpstreamConfig{
			Name: "pool", Endpoints: []string{a.URL, b.URL}, Retries: &three,
		}), Options{})
		resp, body := doRequest(t, c, "POST", p.URL+"/v1/chat/completions", chatBody, nil)
		if resp.StatusCode != 503 || a.hits.Load() != 1 || b.hits.Load() != 1 || !strings.Contains(body, "status upstream") {
			t.Fatalf("status %d, hits %d %d, body %q", resp.StatusCode, a.hits.Load(), b.hits.Load(), body)
		}
		checkSlotsFree(t, p.Router())
	})
	t.Run("no retry after a timeout", func(t *testing.T) {
		slow := startUpstream(t, proxytest.Options{Fail: proxytest.FailHang})
		good := startUpstream(t, proxytest.Options{Name: "good"})
		// 1 s: the hanging endpoint's request must time out, the good
		// one's must not, on a loaded machine too.
		p := startProxy(t, NewConfig().WithTimeout(time.Second).WithUpstreamConfig(UpstreamConfig{
			Name: "pool", Endpoints: []string{slow.URL, good.URL},
		}), Options{})
		codes := map[int]int{}
		for range 2 {
			resp, _ := doRequest(t, c, "POST", p.URL+"/v1/chat/completions", chatBody, nil)
			codes[resp.StatusCode]++
		}
		if codes[504] != 1 || good.Requests() != 1 {
			t.Fatalf("statuses %v, good got %d", codes, good.Requests())
		}
	})
}

// TestNoRetryMidStream checks that a response already going to the client
// is never retried: a stream reset after its first events reaches the
// client cut, and the other endpoint never sees the request.
func TestNoRetryMidStream(t *testing.T) {
	bad := startUpstream(t, proxytest.Options{Name: "bad", Fail: proxytest.FailResetMidStream, FailAfterTokens: 2})
	good := startUpstream(t, proxytest.Options{Name: "good"})
	p := startProxy(t, NewConfig().WithUpstreamConfig(UpstreamConfig{
		Name: "pool", Endpoints: []string{bad.URL, good.URL},
		PassiveEjection: PassiveEjectionConfig{Disabled: true},
	}), Options{})
	c := newClient()
	cut := 0
	for range 4 {
		req, _ := http.NewRequest("POST", p.URL+"/v1/chat/completions", strings.NewReader(chatStreamBody))
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		events, done, errEvent := 0, false, false
		err = sseEvents(resp.Body, func(d string) {
			if strings.HasPrefix(d, `{"error":`) {
				errEvent = true
				return
			}
			events++
			done = done || d == "[DONE]"
		})
		resp.Body.Close()
		if resp.Header.Get("x-upstream-name") == "bad" {
			if done || events != 2 || !errEvent {
				t.Fatalf("cut stream: %d events, done %v, error event %v, err %v", events, done, errEvent, err)
			}
			cut++
		} else if !done {
			t.Fatalf("good stream incomplete: %d events, %v", events, err)
		}
	}
	if cut != 2 || good.Requests() != 2 || bad.Requests() != 2 {
		t.Fatalf("cut %d, good %d, bad %d", cut, good.Requests(), bad.Requests())
	}
	if !strings.Contains(metricsText(t, p), `sluice_upstream_retries_total{upstream="pool"} 0`) {
		t.Fatal("a stream was retried")
	}
	checkSlotsFree(t, p.Router())
}
