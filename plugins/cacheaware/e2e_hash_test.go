//go:build !wasip1

package main

import (
	"fmt"
	"strings"
	"testing"
)

// TestEndToEndHostAndGuestHashesAgree: a prompt hashed by the host
// (sluice.prompt_block_hashes, for a body that opens the usual way) and
// the same prompt hashed by the plugin itself (its fallback on a host
// without the function, taken here for a body with an object member
// before "messages", which the host leaves to the guest) name the same
// blocks: the second of each pair matches every block of the first and
// goes to the same endpoint, whichever path came first.
func TestEndToEndHostAndGuestHashesAgree(t *testing.T) {
	e, _ := startFleet(t, 4)
	unusual := func(body string) string {
		return strings.Replace(body, `{"model":"m",`, `{"model":"m","metadata":{"tags":["x"]},`, 1)
	}
	const pairs = 6
	var blocks int
	for c := range 2 * pairs {
		usual := chatTurn(c, "the same question")
		first, second := usual, unusual(usual)
		if c >= pairs { // the guest's hashes first, then the host's
			first, second = second, first
		}
		r, ok := parseRequest([]byte(second), false)
		if !ok {
			t.Fatalf("the test's body does not parse: %s", second)
		}
		blocks += len(blockHashes(nil, r.seed, r.text, 64, 1<<20))
		home := send(t, e, first)
		if got := send(t, e, second); got != home {
			t.Fatalf("pair %d: the %s-hashed prompt went to %s, its twin to %s\nlogs: %s", c, map[bool]string{true: "guest", false: "host"}[c < pairs], got, home, e.Logs)
		}
	}
	waitMetric(t, e, `guest_hashed_total{plugin="cacheaware"}`, fmt.Sprint(2*pairs))
	waitMetric(t, e, `decisions_total{plugin="cacheaware",reason="prefix"}`, fmt.Sprint(2*pairs))
	waitMetric(t, e, `matched_blocks_total{plugin="cacheaware"}`, fmt.Sprint(blocks))
}
