package wasm

import (
	"testing"
	"time"

	"github.com/sluice-proxy/sluice/internal/plugintest"
	"github.com/sluice-proxy/sluice/proxy"
)

// TestThirdPartyGuests runs the C (raw ABI) and AssemblyScript
// (@solo-io/proxy-runtime) plugins through the proxy: they tag every
// response and refuse /forbidden with a local 403.
func TestThirdPartyGuests(t *testing.T) {
	for _, tc := range []struct {
		guest string
		build func(testing.TB) string
	}{
		{"c", func(tb testing.TB) string { return plugintest.BuildC(tb, "../plugins/c") }},
		{"assemblyscript", func(tb testing.TB) string { return plugintest.BuildAS(tb, "../plugins/assemblyscript") }},
	} {
		t.Run(tc.guest, func(t *testing.T) {
			path := tc.build(t)
			h := newTestHost(t)
			p := h.mustLoad(t, proxy.PluginConfig{
				Name:        tc.guest,
				Path:        path,
				Instances:   2,
				CallTimeout: proxy.Duration(2 * time.Second),
			})
			e := startProxy(t, p)
			r := e.do(t, "GET", "/ok", "")
			if r.status != 200 || r.header.Get("x-upstream-name") != "a" {
				t.Fatalf("GET /ok: %d %q", r.status, r.body)
			}
			if got := r.header.Get("x-sluice-guest"); got != tc.guest {
				t.Errorf("x-sluice-guest = %q, want %q", got, tc.guest)
			}
			r = e.do(t, "GET", "/forbidden/x", "")
			if r.status != 403 || r.body != "forbidden by "+tc.guest {
				t.Fatalf("GET /forbidden/x: %d %q", r.status, r.body)
			}
			if r.header.Get("x-upstream-name") != "" {
				t.Error("the refused request reached the upstream")
			}
			if got := h.metric(`sluice_plugin_local_responses_total{plugin="` + tc.guest + `"}`); got != "1" {
				t.Errorf("local responses = %q, want 1", got)
			}
		})
	}
}
