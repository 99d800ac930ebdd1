//go:build !race

package wasm

import "testing"

// wazeroAllocsPerCall bounds what wazero allocates for every top-level
// call into a module built with WithCloseOnContextDone: the goroutine that
// watches the context, its channel and closure (3 objects in a long
// benchmark), plus at times a goroutine descriptor when the runtime has no
// free one (see RATIONALE.md).
const wazeroAllocsPerCall = 4

// TestRequestPathAllocations checks that the host adds no allocation of its
// own to a request: proxy_on_context_create and proxy_on_request_headers
// (which adds a header through the host) cost only wazero's per-call ones.
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
	const calls = 2 // the ok fixture exports no log/done/delete
	if got := testing.AllocsPerRun(200, run); got > calls*wazeroAllocsPerCall {
		t.Errorf("%v allocations per request, want at most %d", got, calls*wazeroAllocsPerCall)
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
