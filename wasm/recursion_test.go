package wasm

import (
	"errors"
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/sluice-proxy/sluice/proxy"
)

// TestRecursionStopped: guests that run long by recursing, with no loop
// anywhere (f(n) calls f(n-1) twice, directly, through a second function
// or through call_indirect: 2^33 calls, tens of seconds of CPU), are
// stopped at their deadline like a loop is (issue 10 item 1: before the
// entry checks, one ran 45 s under a 10 ms call_timeout and stalled every
// GC for as long). While the guest runs, a stop-the-world completes, even
// with GOMAXPROCS=1; the request fails as a timeout and the instance is
// replaced.
//
// The design bound is the deadline's: the call stops after it used two
// budgets of CPU time (20 ms here), or after max(1 s, 100 × budget) of
// wall time when it is starved of CPU (deadline.go); the assertions allow
// 3 s, because this machine's CPU is shared.
func TestRecursionStopped(t *testing.T) {
	const budget = 10 * time.Millisecond
	const bound = 3 * time.Second
	for _, fixture := range []string{"recurse_fanout", "recurse_mutual", "recurse_indirect"} {
		for _, procs := range []int{1, 2} {
			t.Run(fmt.Sprintf("%s/GOMAXPROCS=%d", fixture, procs), func(t *testing.T) {
				defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(procs))
				h := newTestHost(t)
				pc := fixtureConfig(t, fixture)
				pc.CallTimeout = proxy.Duration(budget)
				p := h.mustLoad(t, pc)
				defer p.Close()
				done := make(chan error, 1)
				start := time.Now()
				go func() { done <- runRequest(p, newExchange("/x")) }()
				time.Sleep(5 * time.Millisecond) // the guest starts recursing
				stw := time.Now()
				var ms runtime.MemStats
				runtime.ReadMemStats(&ms) // stops the world
				if d := time.Since(stw); d > bound {
					t.Errorf("stopping the world took %v while the guest recursed", d)
				}
				select {
				case err := <-done:
					var ce *CallError
					if !errors.As(err, &ce) || ce.Kind != KindTimeout || ce.Callback != "proxy_on_request_headers" {
						t.Errorf("request error = %v, want a timeout in proxy_on_request_headers", err)
					}
				case <-time.After(60 * time.Second):
					t.Fatal("the recursing guest was not stopped within 60 s")
				}
				if d := time.Since(start); d > bound {
					t.Errorf("the call ran %v under a %v call_timeout (bound %v)", d, budget, bound)
				}
				restarts := `sluice_plugin_instance_restarts_total{plugin="` + fixture + `"}`
				waitFor(t, "a replacement instance", func() bool { return h.metric(restarts) == "1" && p.liveInstances() == 1 })
			})
		}
	}
}

// TestDeepRecursionTraps: a recursion that only deepens ends in wazero's
// stack-overflow trap when its budget is long enough, and at its deadline
// when not; either way the request fails and the instance is replaced.
func TestDeepRecursionTraps(t *testing.T) {
	h := newTestHost(t)
	for _, c := range []struct {
		budget time.Duration
		kind   string
	}{
		{30 * time.Second, KindTrap},
		{time.Millisecond, KindTimeout},
	} {
		t.Run(c.kind, func(t *testing.T) {
			pc := fixtureConfig(t, "recurse_deep")
			pc.Name = "deep_" + c.kind
			pc.CallTimeout = proxy.Duration(c.budget)
			p := h.mustLoad(t, pc)
			defer p.Close()
			err := runRequest(p, newExchange("/x"))
			var ce *CallError
			if !errors.As(err, &ce) || ce.Kind != c.kind {
				t.Fatalf("request error = %v, want kind %s", err, c.kind)
			}
			if c.kind == KindTrap && !strings.Contains(err.Error(), "stack overflow") {
				t.Errorf("error %q does not say stack overflow", err)
			}
			restarts := `sluice_plugin_instance_restarts_total{plugin="` + pc.Name + `"}`
			waitFor(t, "a replacement instance", func() bool { return h.metric(restarts) == "1" && p.liveInstances() == 1 })
		})
	}
}
