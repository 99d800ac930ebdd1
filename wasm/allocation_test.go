//go:build !race

package wasm

import (
	"testing"

	"github.com/sluice-proxy/sluice/proxy"
)

// TestRequestPathAllocations checks that a request allocates nothing on
// the host side: proxy_on_context_create and proxy_on_request_headers
// (which adds a header through the host) with the "ok" fixture, and a
// whole request (context create, request and response headers, log, done,
// delete) through the Go headers plugin. Before the host compiled its own
// stop checks, wazero's WithCloseOnContextDone cost 3 allocations per call
// (18 per Go-plugin request): see RATIONALE.md.
func TestRequestPathAllocations(t *testing.T) {
	h := newTestHost(t)
	p := h.mustLoad(t, fixtureConfig(t, "ok"))
	ex := newExchange("/x")
	run := func() {
		hs := ex.RequestHeaders()
		hs.Reset()
		hs.AddString(":method", "GET")
		hs.AddString(":path", "/x")
		st, err := p.NewStream(ex)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := st.OnRequestHeaders(true); err != nil {
			t.Fatal(err)
		}
		st.OnDone()
	}
	run()
	if got := testing.AllocsPerRun(200, run); got != 0 {
		t.Errorf("ok fixture: %v allocations per request, want 0", got)
	}

	if testing.Short() {
		return
	}
	gp := loadGo(t, h, "plugins/headers", "headers",
		`{"request": {"add": {"x-bench": "1"}}, "response": {"set": {"x-resp": "yes"}}}`,
		func(pc *proxy.PluginConfig) { pc.Instances = 1 })
	gex := newExchange("/bench", "user-agent", "bench")
	gex.ResponseHeaders().AddString(":status", "200")
	grun := func() {
		gex.RequestHeaders().DelString("x-bench")
		benchRequest(t, gp, gex)
	}
	// Let the guest's heap reach its working size: growing guest memory
	// allocates (rarely: the average rounds to 0 below).
	for range 1000 {
		grun()
	}
	if got := testing.AllocsPerRun(500, grun); got != 0 {
		t.Errorf("Go headers plugin: %v allocations per request, want 0", got)
	}
}

// TestMetricHostCallAllocations checks that proxy_increment_metric,
// proxy_record_metric and proxy_get_metric allocate nothing (only
// proxy_define_metric may).
func TestMetricHostCallAllocations(t *testing.T) {
	h := newTestHost(t)
	p := h.mustLoad(t, fixtureConfig(t, "ok"))
	in := p.slots[0].inst.Load()
	var ids []uint64
	for kind, name := range []string{"c", "g", "h_tag=v"} {
		id, st := p.defineMetric(uint32(kind), []byte(name))
		if st != statusOK {
			t.Fatalf("define %s: %d", name, st)
		}
		ids = append(ids, uint64(id))
	}
	in.mu.Lock()
	defer in.mu.Unlock()
	stack := make([]uint64, 2)
	allocs := testing.AllocsPerRun(500, func() {
		for _, id := range ids {
			stack[0], stack[1] = id, 3
			hostIncrementMetric(&in.cc, in.mod, stack)
			stack[0], stack[1] = id, 5
			hostRecordMetric(&in.cc, in.mod, stack)
			stack[0], stack[1] = id, 1024
			hostGetMetric(&in.cc, in.mod, stack)
			if status(stack[0]) != statusOK {
				t.Fatalf("get metric %d: %d", id, stack[0])
			}
		}
	})
	if allocs != 0 {
		t.Errorf("%v allocations per round of metric calls, want 0", allocs)
	}
}

// TestSetEndpointAllocations checks that setting sluice.endpoint, which a
// routing plugin does on every request, allocates nothing on the host:
// the address is read in place in the guest's memory.
func TestSetEndpointAllocations(t *testing.T) {
	srv, err := proxy.NewServer(proxy.NewConfig().WithUpstream("llm", "http://127.0.0.1:1", "http://127.0.0.1:2"), proxy.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	s := &stream{ex: srv.NewExchange()}
	name, value := []byte("sluice.endpoint"), []byte("127.0.0.1:2,127.0.0.1:1")
	if lookupProperty(name) != propEndpoint {
		t.Fatal("sluice.endpoint is not the endpoint property")
	}
	var p Plugin
	allocs := testing.AllocsPerRun(200, func() {
		if err := s.ex.SetEndpoint(""); err != nil {
			t.Fatal(err)
		}
		if st := p.setProperty(s, propEndpoint, name, value); st != statusOK {
			t.Fatalf("set sluice.endpoint: status %d", st)
		}
	})
	if allocs != 0 {
		t.Errorf("%v allocations per sluice.endpoint set, want 0", allocs)
	}
}
