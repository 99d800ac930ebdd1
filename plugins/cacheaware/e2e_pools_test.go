//go:build !wasip1

package main

import (
	"fmt"
	"strings"
	"testing"

	"github.com/sluice-proxy/sluice/internal/pluginenv"
	"github.com/sluice-proxy/sluice/proxy"
)

// TestEndToEndTwoPools: modelrouter sends each request to the pool of
// its model, alternately one and the other, and cacheaware, after it,
// routes within that pool. The plugin guesses each request's pool is the
// last one's (it does not read sluice.upstream when the host indexes),
// so here every guess is wrong, and the host's answer, which names the
// request's pool, must correct it: every turn of a conversation goes to
// its first turn's endpoint, in its model's pool, and each pool's index
// is its own.
func TestEndToEndTwoPools(t *testing.T) {
	cfg := proxy.NewConfig()
	pools := map[string][]string{}
	for _, pool := range []string{"a", "b"} {
		urls := endpointURLs(t, 3) // named e0, e1, e2
		cfg = cfg.WithUpstream(pool, urls...)
		pools[pool] = urls
	}
	router := pluginenv.PluginConfig(t, "plugins/modelrouter",
		`{"routes":[{"model":"ma","pools":[{"pool":"a"}]},{"model":"mb","pools":[{"pool":"b"}]}]}`)
	ca := pluginenv.PluginConfig(t, pluginPkg, `{"metrics_flush_period":"20ms"}`)
	ca.Instances = 1 // one instance sees every request: each guess is the other pool
	e := pluginenv.Start(t, cfg, router, ca)
	turn := func(model string, conv int, q string) string {
		return strings.Replace(chatTurn(conv, q), `"model":"m"`, `"model":"`+model+`"`, 1)
	}
	const convs, turns = 4, 3
	home := map[string]string{}
	for i := range 2 * convs * (turns + 1) {
		model := []string{"ma", "mb"}[i%2]
		conv := i / 2 % convs
		key := fmt.Sprint(model, conv)
		resp, out := e.Do(t, "POST", "/v1/chat/completions", turn(model, conv, fmt.Sprint("question ", i)))
		if resp.StatusCode != 200 {
			t.Fatalf("request %d: %d %s\nlogs: %s", i, resp.StatusCode, out, e.Logs)
		}
		got := resp.Header.Get("x-upstream-name")
		if h, ok := home[key]; ok && got != h {
			t.Fatalf("request %d (model %s, conversation %d) went to %s, its prefix is on %s\nlogs: %s", i, model, conv, got, h, e.Logs)
		}
		home[key] = got
	}
	// Both pools' endpoints are named e0…e2, so the pool each request
	// reached is told by the access log's upstream.
	for _, pool := range []string{"a", "b"} {
		if n := strings.Count(e.Logs.String(), "upstream="+pool+" "); n != convs*(turns+1) {
			t.Errorf("pool %s served %d requests, want %d:\n%s", pool, n, convs*(turns+1), e.Logs)
		}
	}
	waitMetric(t, e, `decisions_total{plugin="cacheaware",reason="prefix"}`, fmt.Sprint(2*convs*turns))
	waitMetric(t, e, `skipped_total{plugin="cacheaware"}`, "0")
}
