//go:build !wasip1

package main

import (
	"fmt"
	"sync"
	"testing"
)

// TestEndToEndConcurrentStarts: the first two turns of each new
// conversation arrive at once, on the plugin's two instances; each pair
// lands on one endpoint. Both requests may find nothing in the index and
// both start the prefix: the second's claim (sluice.prompt_prefix_claim)
// then names the first's endpoint and it follows, where recording alone
// split the conversation over two engines, the later write winning its
// keys. Whichever way a pair went, every later turn goes there too.
func TestEndToEndConcurrentStarts(t *testing.T) {
	e, _ := startFleet(t, 4)
	const convs = 40
	for c := range convs {
		var got [2]string
		var wg sync.WaitGroup
		for i := range got {
			wg.Add(1)
			go func() {
				defer wg.Done()
				resp, out := e.Do(t, "POST", "/v1/chat/completions", chatTurn(100+c, fmt.Sprint("opening question ", i)))
				if resp.StatusCode != 200 {
					t.Errorf("%d %s", resp.StatusCode, out)
				}
				got[i] = resp.Header.Get("x-upstream-name")
			}()
		}
		wg.Wait()
		if got[0] != got[1] || got[0] == "" {
			t.Fatalf("conversation %d: its first two turns, sent at once, went to %s and %s\nlogs: %s", c, got[0], got[1], e.Logs)
		}
		if later := send(t, e, chatTurn(100+c, "and then")); later != got[0] {
			t.Fatalf("conversation %d: a later turn went to %s, its first two to %s", c, later, got[0])
		}
	}
	// Every conversation started once: least_load once per conversation
	// whichever instance lost, the rest prefix hits.
	waitMetric(t, e, `decisions_total{plugin="cacheaware",reason="least_load"}`, fmt.Sprint(convs))
	waitMetric(t, e, `decisions_total{plugin="cacheaware",reason="prefix"}`, fmt.Sprint(2*convs))
	t.Logf("claims lost (both instances started the same conversation): %s", e.Metric(`sluice_wasm_cacheaware_claims_lost_total{plugin="cacheaware"} `))
}
