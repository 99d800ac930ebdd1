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
