//go:build !wasip1

package main

import (
	"fmt"
	"strings"
	"testing"
)

// TestEndToEndHostAndGuestHashesAgree: a prompt hashed by the host
// (sluice.prompt_block_hashes, for a body that opens the usual way) and
// its twin hashed by the plugin itself (its fallback on a host without
// the function, taken here for a body the host leaves to the guest: one
// with an object member before "messages", or with a decoy "messages"
// before the one the engine reads) name the same blocks: the second of
// each pair matches every block of the first and goes to the same
// endpoint, whichever path came first. A decoy "content" in a message
// (the engine reads the last) is left out of the hashes on both paths.
func TestEndToEndHostAndGuestHashesAgree(t *testing.T) {
	e, _ := startFleet(t, 4)
	var matched int // matched_blocks_total so far
	replace := func(old, new string) func(string) string {
		return func(body string) string { return strings.Replace(body, old, new, 1) }
	}
	usual := func(body string) string { return body }
	objectFirst := replace(`{"model":"m",`, `{"model":"m","metadata":{"tags":["x"]},`)
	decoyMessages := replace(`{"model":"m",`, `{"model":"m","messages":[{"role":"system","content":"`+strings.Repeat("DECOY ", 100)+`"}],`)
	decoyContent := replace(`{"role":"user","content":`, `{"role":"user","content":"DECOY","content":`)
	for i, c := range []struct {
		name       string
		host, twin func(string) string // the twin is hashed by the guest
	}{
		{"object member first", usual, objectFirst},
		{"decoy messages first", usual, decoyMessages},
		{"decoy content", decoyContent, func(b string) string { return objectFirst(decoyContent(b)) }},
	} {
		t.Run(c.name, func(t *testing.T) {
			hashedBy := map[bool]string{true: "guest", false: "host"}
			const pairs = 6
			var blocks int
			for p := range 2 * pairs {
				body := chatTurn(100*i+p, "the same question")
				first, second := c.host(body), c.twin(body)
				if p >= pairs { // the guest's hashes first, then the host's
					first, second = second, first
				}
				r, ok := parseRequest([]byte(second), false)
				if !ok {
					t.Fatalf("the test's body does not parse: %s", second)
				}
				blocks += len(blockHashes(nil, r.seed, r.text, 64, 1<<20))
				home := send(t, e, first)
				if got := send(t, e, second); got != home {
					t.Fatalf("pair %d: the %s-hashed prompt went to %s, its twin to %s\nlogs: %s", p, hashedBy[p < pairs], got, home, e.Logs)
				}
			}
			waitMetric(t, e, `guest_hashed_total{plugin="cacheaware"}`, fmt.Sprint((i+1)*2*pairs))
			waitMetric(t, e, `decisions_total{plugin="cacheaware",reason="prefix"}`, fmt.Sprint((i+1)*2*pairs))
			matched += blocks
			waitMetric(t, e, `matched_blocks_total{plugin="cacheaware"}`, fmt.Sprint(matched))
		})
	}
}
