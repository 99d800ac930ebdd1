package proxy

import (
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluice-proxy/sluice/proxy/proxytest"
)

// pickerFilter calls SetEndpoint with the request's x-pick header, as an
// endpoint-picker plugin would, and records what the Exchange reports.
type pickerFilter struct {
	funcFilter
	mu       sync.Mutex
	setErr   error
	endpoint string // Endpoint() in the response phase
	upstream string
	lateErr  error
	snapshot []byte
}

func newPicker() *pickerFilter {
	f := &pickerFilter{}
	f.name = "picker"
	f.onReqHdr = func(ex *Exchange) (Action, error) {
		snap := ex.AppendUpstreamsJSON(nil)
		var err error
		if v, ok := ex.RequestHeaders().GetString("x-pool"); ok {
			if err = ex.SetUpstream(string(v)); err != nil {
				return ActionContinue, err
			}
		}
		if v, ok := ex.RequestHeaders().GetString("x-pick"); ok {
			err = ex.SetEndpoint(string(v))
		}
		f.mu.Lock()
		f.setErr, f.snapshot = err, snap
		f.mu.Unlock()
		return ActionContinue, nil
	}
	f.onRspHdr = func(ex *Exchange) (Action, error) {
		f.mu.Lock()
		f.endpoint, f.upstream = ex.Endpoint(), ex.Upstream()
		f.lateErr = ex.SetEndpoint(f.endpoint)
		f.mu.Unlock()
		return ActionContinue, nil
	}
	return f
}

func (f *pickerFilter) last() (setErr error, endpoint, upstream string, lateErr error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.setErr, f.endpoint, f.upstream, f.lateErr
}

func TestSetEndpoint(t *testing.T) {
	a := startUpstreams(t, 3, proxytest.Options{})
	b := startUpstream(t, proxytest.Options{Name: "b0"})
	cfg := NewConfig().WithMaxBatchSize(1).
		WithUpstreamConfig(UpstreamConfig{Name: "a", Endpoints: urlsOf(a)}).
		WithUpstreamConfig(UpstreamConfig{Name: "b", Endpoints: []string{b.URL}}).
		WithRoute(RouteMatch{}, "a")
	f := newPicker()
	p := startProxy(t, cfg, Options{Filters: []Filter{f}})
	c := newClient()
	send := func(hdr map[string]string) (int, string, string) {
		t.Helper()
		resp, body := doRequest(t, c, "POST", p.URL+"/v1/chat/completions", chatBody, hdr)
		return resp.StatusCode, resp.Header.Get("x-upstream-name"), body
	}

	// The picked endpoint, every time, bypassing round robin.
	for range 3 {
		if code, to, _ := send(map[string]string{"x-pick": a[2].Addr}); code != 200 || to != "u2" {
			t.Fatalf("picked u2, got %d from %q", code, to)
		}
	}
	setErr, ep, up, late := f.last()
	if setErr != nil || ep != a[2].Addr || up != "a" || !errors.Is(late, ErrEndpointChosen) {
		t.Fatalf("SetEndpoint %v, Endpoint %q, Upstream %q, late SetEndpoint %v", setErr, ep, up, late)
	}
	// The configured URL works as well.
	if _, to, _ := send(map[string]string{"x-pick": a[1].URL}); to != "u1" {
		t.Fatalf("picked by URL, served by %q", to)
	}
	// Without SetUpstream, the endpoint's pool is chosen (routes bypassed).
	if code, to, _ := send(map[string]string{"x-pick": b.Addr}); code != 200 || to != "b0" {
		t.Fatalf("b's endpoint: %d from %q", code, to)
	}
	if _, _, up, _ := f.last(); up != "b" {
		t.Fatalf("Upstream() = %q after picking b's endpoint", up)
	}
	// Refusals: unknown, another pool's, mixed pools. The request then
	// goes where it would have gone.
	for _, hdr := range []map[string]string{
		{"x-pick": "127.0.0.1:1"},
		{"x-pick": b.Addr, "x-pool": "a"},
		{"x-pick": a[0].Addr + "," + b.Addr},
		{"x-pick": a[0].Addr + ",,"},
	} {
		code, to, _ := send(hdr)
		setErr, _, _, _ := f.last()
		if !errors.Is(setErr, ErrUnknownEndpoint) || code != 200 || !strings.HasPrefix(to, "u") {
			t.Fatalf("%v: SetEndpoint error %v; served %d by %q", hdr, setErr, code, to)
		}
		if !strings.Contains(setErr.Error(), "127.0.0.1") {
			t.Fatalf("error does not name the endpoint: %v", setErr)
		}
	}
	checkSlotsFree(t, p.Router())
}

func TestSetEndpointFallbacks(t *testing.T) {
	a := startUpstreams(t, 3, proxytest.Options{})
	cfg := NewConfig().WithUpstreamConfig(UpstreamConfig{Name: "a", Endpoints: urlsOf(a), MaxBatchSize: 1,
		PassiveEjection: PassiveEjectionConfig{Disabled: true}})
	f := newPicker()
	p := startProxy(t, cfg, Options{Filters: []Filter{f}})
	pl := p.pools.List()[0]
	c := newClient()
	list := a[0].Addr + ", " + a[1].Addr
	send := func() (int, string, string) {
		t.Helper()
		resp, body := doRequest(t, c, "POST", p.URL+"/v1/chat/completions", chatBody, map[string]string{"x-pick": list})
		return resp.StatusCode, resp.Header.Get("x-upstream-name"), body
	}
	// First choice at its cap: the next in the list.
	if !pl.Endpoints()[0].TryAcquire(1) {
		t.Fatal("cannot fill u0")
	}
	if code, to, _ := send(); code != 200 || to != "u1" {
		t.Fatalf("u0 full: %d from %q", code, to)
	}
	// Every listed endpoint full: 429, even though u2 is free.
	pl.Endpoints()[1].TryAcquire(1)
	code, _, body := send()
	if code != 429 || !strings.Contains(body, "at capacity") {
		t.Fatalf("all listed full: %d %s", code, body)
	}
	pl.Release(pl.Endpoints()[0])
	pl.Release(pl.Endpoints()[1])
	// Out of rotation: skipped; all listed out of rotation: 503.
	pl.Endpoints()[0].SetActive(false)
	if code, to, _ := send(); code != 200 || to != "u1" {
		t.Fatalf("u0 down: %d from %q", code, to)
	}
	pl.Endpoints()[1].SetActive(false)
	code, _, body = send()
	if code != 503 || !strings.Contains(body, "no_endpoint") {
		t.Fatalf("all listed down: %d %s", code, body)
	}
	pl.Endpoints()[0].SetActive(true)
	pl.Endpoints()[1].SetActive(true)
	// Retries follow the list.
	a[0].SetFailMode(proxytest.FailResetBeforeHeaders)
	if code, to, _ := send(); code != 200 || to != "u1" {
		t.Fatalf("u0 resets: %d from %q", code, to)
	}
	if _, ep, _, _ := f.last(); ep != a[1].Addr {
		t.Fatalf("Endpoint() after a retry = %q", ep)
	}
	if a[2].Requests() != 0 {
		t.Fatal("a request went to an endpoint the plugin did not list")
	}
	checkSlotsFree(t, p.Router())
}

func TestAppendUpstreamsJSON(t *testing.T) {
	a := startUpstreams(t, 2, proxytest.Options{})
	_ = a[1].SetEngineMetrics(proxytest.EngineMetrics{Engine: proxytest.EngineVLLM, Waiting: 4, Running: 2, KVCacheUsage: 0.125})
	cfg := NewConfig().WithUpstreamConfig(UpstreamConfig{Name: `a"b`, Endpoints: urlsOf(a), Weights: []int{1, 5},
		LBPolicy: LBLeastQueue, MetricsPath: "/metrics", ScrapeInterval: Duration(20 * time.Millisecond), MaxBatchSize: 7})
	f := newPicker()
	p := startProxy(t, cfg, Options{Filters: []Filter{f}})
	waitFor(t, "scrape", func() bool { return p.pools.List()[0].Endpoints()[1].QueueDepth() == 4 })
	p.pools.List()[0].Endpoints()[0].SetActive(false)
	doRequest(t, newClient(), "GET", p.URL+"/", "", nil)
	f.mu.Lock()
	snap := f.snapshot
	f.mu.Unlock()
	var v struct {
		Pools map[string]struct {
			Policy      string `json:"policy"`
			Healthy     int    `json:"healthy"`
			Total       int    `json:"total"`
			MaxInFlight int    `json:"max_in_flight"`
			Queued      int    `json:"queued"`
			Endpoints   map[string]struct {
				Healthy      bool    `json:"healthy"`
				Ejected      bool    `json:"ejected"`
				Weight       int     `json:"weight"`
				InFlight     int     `json:"in_flight"`
				QueueDepth   float64 `json:"queue_depth"`
				Running      float64 `json:"running"`
				KVCacheUsage float64 `json:"kv_cache_usage"`
			} `json:"endpoints"`
		} `json:"pools"`
	}
	if err := json.Unmarshal(snap, &v); err != nil {
		t.Fatalf("%s: %v", snap, err)
	}
	pl, ok := v.Pools[`a"b`]
	if !ok || pl.Policy != LBLeastQueue || pl.Healthy != 1 || pl.Total != 2 || pl.MaxInFlight != 7 || len(pl.Endpoints) != 2 {
		t.Fatalf("pool %+v in %s", pl, snap)
	}
	e0, e1 := pl.Endpoints[a[0].Addr], pl.Endpoints[a[1].Addr]
	if e0.Healthy || e0.Ejected || e0.Weight != 1 || !e1.Healthy || e1.Weight != 5 ||
		e1.QueueDepth != 4 || e1.Running != 2 || e1.KVCacheUsage != 0.125 {
		t.Fatalf("endpoints %+v %+v in %s", e0, e1, snap)
	}
}

// TestServerNewExchange checks that an Exchange made outside a request
// sees the server's pools as a request's does: the snapshot, SetUpstream
// and SetEndpoint work, and a bad name is refused.
func TestServerNewExchange(t *testing.T) {
	a, b := proxytest.NewServer(proxytest.Options{}), proxytest.NewServer(proxytest.Options{})
	defer a.Close()
	defer b.Close()
	cfg := NewConfig().WithUpstream("llm", a.URL, b.URL)
	srv, err := NewServer(cfg, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	ex := srv.NewExchange()
	var snap struct {
		Pools map[string]struct {
			Endpoints map[string]any `json:"endpoints"`
		} `json:"pools"`
	}
	if err := json.Unmarshal(ex.AppendUpstreamsJSON(nil), &snap); err != nil || len(snap.Pools["llm"].Endpoints) != 2 {
		t.Fatalf("snapshot %+v, %v; want pool llm with 2 endpoints", snap, err)
	}
	if err := ex.SetUpstream("nope"); err == nil {
		t.Error("SetUpstream accepted a pool the server does not have")
	}
	if err := ex.SetEndpoint(strings.TrimPrefix(b.URL, "http://")); err != nil || ex.Upstream() != "llm" {
		t.Errorf("SetEndpoint: %v, upstream %q; want nil, llm", err, ex.Upstream())
	}
	// SetEndpointBytes: the same, from a buffer the caller then reuses;
	// the error keeps its own copy of what was refused.
	ex = srv.NewExchange()
	buf := []byte("nope:1")
	err = ex.SetEndpointBytes(buf)
	copy(buf, "XXXXXX")
	if !errors.Is(err, ErrUnknownEndpoint) || !strings.Contains(err.Error(), `"nope:1"`) {
		t.Errorf("SetEndpointBytes of an unknown endpoint: %v, want ErrUnknownEndpoint naming \"nope:1\"", err)
	}
	buf = []byte(strings.TrimPrefix(a.URL, "http://"))
	if err := ex.SetEndpointBytes(buf); err != nil || ex.Upstream() != "llm" {
		t.Errorf("SetEndpointBytes: %v, upstream %q; want nil, llm", err, ex.Upstream())
	}
	if ex.MaxConcurrentRequests() != int64(cfg.MaxConcurrentRequests) {
		t.Errorf("MaxConcurrentRequests %d, want the config's %d", ex.MaxConcurrentRequests(), cfg.MaxConcurrentRequests)
	}
}
