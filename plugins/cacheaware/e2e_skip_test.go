//go:build !wasip1

package main

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sluice-proxy/sluice/internal/pluginenv"
)

// TestEndToEndSkippedCallbacks: cacheaware tells Sluice it does without
// the response callbacks, proxy_on_log and proxy_on_done, and, unless it
// reads a session header, the request headers (sluice.skip_callbacks),
// so a request costs it 3 calls (context create, request body, delete),
// or 4, while the headers plugin in the same chain, which declares
// nothing and edits the response, still gets all 8 and adds its response
// header.
func TestEndToEndSkippedCallbacks(t *testing.T) {
	t.Run("no-session", func(t *testing.T) { testSkippedCallbacks(t, "", 3) })
	t.Run("session-header", func(t *testing.T) { testSkippedCallbacks(t, `{"session_header":"x-session-id"}`, 4) })
}

func testSkippedCallbacks(t *testing.T, config string, want int) {
	cfg, _ := pluginenv.Pools(t, "e0", "e1")
	ca := pluginenv.PluginConfig(t, pluginPkg, config)
	ca.Instances = 1
	hd := pluginenv.PluginConfig(t, "plugins/headers", `{"response":{"add":{"x-resp":"1"}}}`)
	hd.Instances = 1
	e := pluginenv.Start(t, cfg, ca, hd)
	calls := func(plugin string) int {
		t.Helper()
		series := `sluice_plugin_call_duration_seconds_count{plugin="` + plugin + `"} `
		n, err := strconv.Atoi(strings.TrimPrefix(e.Metric(series), series))
		if err != nil {
			t.Fatalf("%s: %v", series, err)
		}
		return n
	}
	ca0, hd0 := calls("cacheaware"), calls("headers")
	const n = 20
	for i := range n {
		resp, out := e.Do(t, "POST", "/v1/chat/completions", chatTurn(i, "q"))
		if resp.StatusCode != 200 || resp.Header.Get("x-resp") != "1" {
			t.Fatalf("request %d: %d %q, x-resp %q\nlogs: %s", i, resp.StatusCode, out, resp.Header.Get("x-resp"), e.Logs)
		}
	}
	// The headers plugin's last proxy_on_delete may run just after the
	// response: wait for it.
	for deadline := time.Now().Add(5 * time.Second); calls("headers")-hd0 < 8*n && time.Now().Before(deadline); {
		time.Sleep(5 * time.Millisecond)
	}
	// Ticks (one a second) add to cacheaware's count: at most a few here.
	if got := calls("cacheaware") - ca0; got < want*n || got >= (want+1)*n {
		t.Errorf("cacheaware made %d calls for %d requests, want %d each (plus a tick or two)", got, n, want)
	}
	if got := calls("headers") - hd0; got != 8*n {
		t.Errorf("headers made %d calls for %d requests, want 8 each", got, n)
	}
	if strings.Contains(e.Logs.String(), "skip_callbacks") {
		t.Errorf("the host refused sluice.skip_callbacks:\n%s", e.Logs)
	}
}
