//go:build !race

package traceparent

import (
	"testing"

	"github.com/valyala/fasthttp"
)

// TestAllocsTraceContext: keeping a client's traceparent and generating
// one both allocate nothing once the header's storage is warm.
func TestAllocsTraceContext(t *testing.T) {
	var h fasthttp.RequestHeader
	var tc Context
	for _, c := range []struct {
		name  string
		value string // "" for none
	}{{"kept", clientTraceparent}, {"generated", ""}} {
		fill := func() {
			h.Reset()
			h.Set("Content-Type", "application/json")
			h.Set("Tracestate", "congo=t61rcWkgMzE")
			if c.value != "" {
				h.Set("Traceparent", c.value)
			}
		}
		run := func() {
			fill()
			tc.Reset()
			tc.Apply(&h)
		}
		run()
		if n := testing.AllocsPerRun(1000, run); n != 0 {
			t.Errorf("%s: %v allocs/op", c.name, n)
		}
		if tc.TraceID() == nil {
			t.Errorf("%s: no trace id", c.name)
		}
	}
}
