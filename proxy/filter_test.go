package proxy

import (
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluice-proxy/sluice/proxy/proxytest"
)

// funcFilter is a Filter made of functions, for tests of the chain.
type funcFilter struct {
	name     string
	failOpen bool
	onReqHdr func(ex *Exchange) (Action, error)
	onReqBdy func(ex *Exchange) (Action, error)
	onRspHdr func(ex *Exchange) (Action, error)
	onRspBdy func(ex *Exchange, eos bool) (Action, error)
	newErr   error
	done     atomic.Int64
	streams  atomic.Int64
}

func (f *funcFilter) Name() string   { return f.name }
func (f *funcFilter) FailOpen() bool { return f.failOpen }
func (f *funcFilter) Close() error   { return nil }
func (f *funcFilter) NewStream(ex *Exchange) (Stream, error) {
	if f.newErr != nil {
		return nil, f.newErr
	}
	f.streams.Add(1)
	return &funcStream{f: f, ex: ex}, nil
}

type funcStream struct {
	f    *funcFilter
	ex   *Exchange
	done bool
}

func call(fn func(*Exchange) (Action, error), ex *Exchange) (Action, error) {
	if fn == nil {
		return ActionContinue, nil
	}
	return fn(ex)
}

func (s *funcStream) OnRequestHeaders(bool) (Action, error)  { return call(s.f.onReqHdr, s.ex) }
func (s *funcStream) OnRequestBody(bool) (Action, error)     { return call(s.f.onReqBdy, s.ex) }
func (s *funcStream) OnResponseHeaders(bool) (Action, error) { return call(s.f.onRspHdr, s.ex) }
func (s *funcStream) OnResponseBody(eos bool) (Action, error) {
	if s.f.onRspBdy == nil {
		return ActionContinue, nil
	}
	return s.f.onRspBdy(s.ex, eos)
}
func (s *funcStream) OnDone() {
	if s.done {
		panic("OnDone called twice")
	}
	s.done = true
	s.f.done.Add(1)
}

var _ Filter = (*funcFilter)(nil)

func TestFilterRewritesRequestAndRoute(t *testing.T) {
	a := startUpstream(t, proxytest.Options{Name: "a"})
	b := startUpstream(t, proxytest.Options{Name: "b"})
	cfg := NewConfig().WithUpstream("a", a.URL).WithUpstream("b", b.URL).
		WithRoute(RouteMatch{PathPrefix: "/to-b"}, "b").
		WithRoute(RouteMatch{Headers: map[string]string{"x-pool": "b"}}, "b").
		WithRoute(RouteMatch{}, "a")
	f := &funcFilter{name: "rw",
		onReqHdr: func(ex *Exchange) (Action, error) {
			h := ex.RequestHeaders()
			if v, _ := h.GetString(":path"); string(v) == "/rewrite-me" {
				h.Set([]byte(":path"), []byte("/to-b/x"))
			}
			if _, ok := h.GetString("x-want-b"); ok {
				h.Set([]byte("x-pool"), []byte("b"))
			}
			if _, ok := h.GetString("x-pick-a"); ok {
				if err := ex.SetUpstream("a"); err != nil {
					return 0, err
				}
				if err := ex.SetUpstream("nope"); !errors.Is(err, ErrUnknownUpstream) {
					t.Errorf("SetUpstream(unknown) = %v", err)
				}
			}
			h.DelString("x-secret")
			h.AddString("x-added", "1")
			return ActionContinue, nil
		},
		onReqBdy: func(ex *Exchange) (Action, error) {
			ex.SetRequestBody([]byte(strings.ToUpper(string(ex.RequestBody())) + "!"))
			return ActionContinue, nil
		},
	}
	p := startProxy(t, cfg, Options{Filters: []Filter{f}})
	c := newClient()

	resp, _ := doRequest(t, c, "GET", p.URL+"/rewrite-me", "", map[string]string{"X-Secret": "s"})
	if resp.Header.Get("x-upstream-name") != "b" || b.LastRequest().Path != "/to-b/x" {
		t.Fatalf(":path rewrite did not reroute: %q %q", resp.Header.Get("x-upstream-name"), b.LastRequest().Path)
	}
	if got := b.LastRequest().Header; got.Get("X-Secret") != "" || got.Get("X-Added") != "1" {
		t.Fatalf("header changes not forwarded: %v", got)
	}
	if resp, _ := doRequest(t, c, "GET", p.URL+"/x", "", map[string]string{"X-Want-B": "1"}); resp.Header.Get("x-upstream-name") != "b" {
		t.Fatal("header added by a filter did not match a route")
	}
	// A client-sent header alone picks a pool only through a route.
	if resp, _ := doRequest(t, c, "GET", p.URL+"/to-b", "", map[string]string{"X-Pick-A": "1"}); resp.Header.Get("x-upstream-name") != "a" {
		t.Fatal("SetUpstream did not bypass routes")
	}
	resp, _ = doRequest(t, c, "POST", p.URL+"/echo", "hello", nil)
	if got := a.LastRequest(); string(got.Body) != "HELLO!" || got.Header.Get("Content-Length") != "" && got.Header.Get("Content-Length") != "6" {
		t.Fatalf("rewritten body: %q (content-length %q)", got.Body, got.Header.Get("Content-Length"))
	}
	_ = resp
	checkSlotsFree(t, p.Router())
	if f.done.Load() != f.streams.Load() {
		t.Fatalf("OnDone %d times for %d streams", f.done.Load(), f.streams.Load())
	}
}

func TestFilterLocalResponse(t *testing.T) {
	up := startUpstream(t, proxytest.Options{})
	f := &funcFilter{name: "deny", onReqHdr: func(ex *Exchange) (Action, error) {
		var h Headers
		h.AddString("content-type", "application/json")
		h.AddString("x-denied", "yes")
		ex.SendLocalResponse(403, "denied", &h, []byte(`{"error":"no"}`))
		return ActionPause, nil
	}}
	p := startProxy(t, baseConfig(up.URL), Options{Filters: []Filter{f}})
	resp, body := doRequest(t, newClient(), "GET", p.URL+"/x", "", nil)
	if resp.StatusCode != 403 || body != `{"error":"no"}` || resp.Header.Get("x-denied") != "yes" || resp.Header.Get("x-request-id") == "" {
		t.Fatalf("local reply: %d %q %v", resp.StatusCode, body, resp.Header)
	}
	if up.Requests() != 0 {
		t.Fatal("a locally answered request reached the upstream")
	}
	checkSlotsFree(t, p.Router())
	if m := p.Router().Metrics(); m.RejectedByPlugin != 1 {
		t.Fatalf("metrics %+v", m)
	}
}

func TestFilterPauseResume(t *testing.T) {
	up := startUpstream(t, proxytest.Options{})
	f := &funcFilter{name: "pause", onReqHdr: func(ex *Exchange) (Action, error) {
		go func() {
			time.Sleep(20 * time.Millisecond)
			if ex.BeginAsync() {
				ex.RequestHeaders().AddString("x-async", "1")
				ex.Resume()
				ex.EndAsync()
			}
		}()
		return ActionPause, nil
	}}
	p := startProxy(t, baseConfig(up.URL), Options{Filters: []Filter{f}})
	var wg sync.WaitGroup
	for i := 0; i < 20; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, body := doRequest(t, newClient(), "GET", p.URL+"/x", "", nil)
			if resp.StatusCode != 200 {
				t.Errorf("paused request: %d %q", resp.StatusCode, body)
			}
		}()
	}
	wg.Wait()
	if up.LastRequest().Header.Get("X-Async") != "1" {
		t.Fatal("header added while paused not forwarded")
	}
	checkSlotsFree(t, p.Router())
}

func TestFilterPauseTimeout(t *testing.T) {
	up := startUpstream(t, proxytest.Options{})
	f := &funcFilter{name: "stuck", onReqHdr: func(ex *Exchange) (Action, error) { return ActionPause, nil }}
	p := startProxy(t, baseConfig(up.URL).WithTimeout(100*time.Millisecond), Options{Filters: []Filter{f}})
	resp, body := doRequest(t, newClient(), "GET", p.URL+"/x", "", nil)
	if resp.StatusCode != 504 {
		t.Fatalf("never-resumed request: %d %q", resp.StatusCode, body)
	}
	checkSlotsFree(t, p.Router())
	if f.done.Load() != 1 {
		t.Fatal("OnDone not called after a pause timeout")
	}
}

func TestFilterFailurePolicy(t *testing.T) {
	up := startUpstream(t, proxytest.Options{})
	boom := errors.New("guest trapped")
	for _, failOpen := range []bool{false, true} {
		f := &funcFilter{name: "broken", failOpen: failOpen, onReqHdr: func(*Exchange) (Action, error) { return 0, boom }}
		g := &funcFilter{name: "after"}
		p := startProxy(t, baseConfig(up.URL), Options{Filters: []Filter{f, g}})
		resp, body := doRequest(t, newClient(), "GET", p.URL+"/x", "", nil)
		if failOpen {
			if resp.StatusCode != 200 {
				t.Fatalf("fail_open: %d %q", resp.StatusCode, body)
			}
		} else {
			if resp.StatusCode != 503 {
				t.Fatalf("fail_closed: %d %q", resp.StatusCode, body)
			}
			checkErrorShape(t, true, body, "plugin_failure")
		}
		checkSlotsFree(t, p.Router())
		if f.done.Load() != 1 || g.done.Load() != 1 {
			t.Fatalf("OnDone: failed filter %d, next filter %d", f.done.Load(), g.done.Load())
		}
	}
	// A filter that cannot even start a stream.
	f := &funcFilter{name: "nostart", newErr: boom}
	p := startProxy(t, baseConfig(up.URL), Options{Filters: []Filter{f}})
	if resp, _ := doRequest(t, newClient(), "GET", p.URL+"/x", "", nil); resp.StatusCode != 503 {
		t.Fatalf("NewStream error: %d", resp.StatusCode)
	}
	checkSlotsFree(t, p.Router())
}

func TestFilterPanicReleasesSlot(t *testing.T) {
	up := startUpstream(t, proxytest.Options{})
	f := &funcFilter{name: "panics", onReqHdr: func(*Exchange) (Action, error) { panic("filter bug") }}
	p := startProxy(t, baseConfig(up.URL), Options{Filters: []Filter{f}})
	resp, _ := doRequest(t, newClient(), "GET", p.URL+"/x", "", nil)
	if resp.StatusCode != 500 {
		t.Fatalf("panic: status %d", resp.StatusCode)
	}
	checkSlotsFree(t, p.Router())
	if m := p.Router().Metrics(); m.Failed != 1 {
		t.Fatalf("metrics %+v", m)
	}
	if f.done.Load() != 1 {
		t.Fatal("OnDone not called after a panic")
	}
}

func TestFilterResponse(t *testing.T) {
	up := startUpstream(t, proxytest.Options{Tokens: 4, TokenDelay: 10 * time.Millisecond})
	var chunks, finals atomic.Int64
	f := &funcFilter{name: "resp",
		onRspHdr: func(ex *Exchange) (Action, error) {
			ex.ResponseHeaders().AddString("x-filtered", "1")
			return ActionContinue, nil
		},
		onRspBdy: func(ex *Exchange, eos bool) (Action, error) {
			if eos {
				finals.Add(1)
			} else {
				chunks.Add(1)
			}
			ex.SetResponseBody([]byte(strings.ReplaceAll(string(ex.ResponseBody()), "tok", "TOK")))
			return ActionContinue, nil
		},
	}
	p := startProxy(t, baseConfig(up.URL), Options{Filters: []Filter{f}})
	c := newClient()
	// Non-streamed: the whole body at end of stream, Content-Length fixed.
	resp, body := doRequest(t, c, "POST", p.URL+"/v1/chat/completions", chatBody, nil)
	if resp.Header.Get("x-filtered") != "1" || !strings.Contains(body, "TOK0") || strings.Contains(body, "tok0") {
		t.Fatalf("filtered JSON: %v %q", resp.Header, body)
	}
	if resp.ContentLength != int64(len(body)) {
		t.Fatalf("Content-Length %d for a %d-byte body", resp.ContentLength, len(body))
	}
	if chunks.Load() != 0 || finals.Load() != 1 {
		t.Fatalf("JSON body: %d chunks, %d finals", chunks.Load(), finals.Load())
	}
	// Streamed: each chunk as it comes.
	resp, body = doRequest(t, c, "POST", p.URL+"/v1/chat/completions", chatStreamBody, nil)
	if !strings.Contains(body, "TOK3") || !strings.Contains(body, "[DONE]") {
		t.Fatalf("filtered stream: %q", body)
	}
	if chunks.Load() < 4 {
		t.Fatalf("stream seen in %d chunks", chunks.Load())
	}
	checkSlotsFree(t, p.Router())
}

func TestFilterResponseBuffering(t *testing.T) {
	up := startUpstream(t, proxytest.Options{Tokens: 5, TokenDelay: 5 * time.Millisecond})
	var sawWhole atomic.Bool
	f := &funcFilter{name: "buffer", onRspBdy: func(ex *Exchange, eos bool) (Action, error) {
		if !eos {
			return ActionPause, nil
		}
		b := string(ex.ResponseBody())
		if strings.Count(b, "data:") == 6 && strings.Contains(b, "[DONE]") {
			sawWhole.Store(true)
		}
		ex.SetResponseBody([]byte("replaced"))
		return ActionContinue, nil
	}}
	p := startProxy(t, baseConfig(up.URL), Options{Filters: []Filter{f}})
	_, body := doRequest(t, newClient(), "POST", p.URL+"/v1/chat/completions", chatStreamBody, nil)
	if !sawWhole.Load() || body != "replaced" {
		t.Fatalf("buffered body: saw whole %v, client got %q", sawWhole.Load(), body)
	}
	checkSlotsFree(t, p.Router())
}

func TestFilterLocalResponseMidStream(t *testing.T) {
	up := startUpstream(t, proxytest.Options{Tokens: 5, TokenDelay: 5 * time.Millisecond})
	f := &funcFilter{name: "cut", onRspBdy: func(ex *Exchange, eos bool) (Action, error) {
		ex.SendLocalResponse(500, "cut", nil, nil)
		return ActionPause, nil
	}}
	p := startProxy(t, baseConfig(up.URL), Options{Filters: []Filter{f}})
	resp := postStream(t, p)
	expectCut(t, resp, "a stream a filter cut ended cleanly")
	checkSlotsFree(t, p.Router())
	waitFor(t, "upstream closed", func() bool { return up.InFlight() == 0 })
}
