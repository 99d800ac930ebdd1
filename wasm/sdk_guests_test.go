package wasm

import (
	"strconv"
	"sync"
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

// TestAssemblyScriptSharedDataAndCallout runs the AssemblyScript plugin's
// "shared-data" mode (raw proxy_get/set_shared_data with a CAS loop, on
// two instances) and "callout" mode (RootContext.httpCall, the reply on
// the root context, continue_request) through the proxy.
func TestAssemblyScriptSharedDataAndCallout(t *testing.T) {
	path := plugintest.BuildAS(t, "../plugins/assemblyscript")
	auth := newCalloutServer(t, "auth", nil)
	h := newTestHostWith(t, func(c *HostConfig) {
		c.Upstreams = resolvedPools(t, proxy.UpstreamConfig{Name: "auth", Endpoints: []string{auth.URL}})
	})
	load := func(name, config string) *Plugin {
		return h.mustLoad(t, proxy.PluginConfig{Name: name, Path: path, Config: proxy.RawConfig(config),
			Instances: 2, CallTimeout: proxy.Duration(2 * time.Second)})
	}
	t.Run("shared-data", func(t *testing.T) {
		e := startProxy(t, load("as-shared", "shared-data"))
		const workers, perWorker = 4, 10
		var mu sync.Mutex
		seen := map[string]bool{}
		var wg sync.WaitGroup
		for range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for range perWorker {
					r := e.do(t, "GET", "/x", "")
					v := r.header.Get("x-as-counter")
					mu.Lock()
					dup := seen[v]
					seen[v] = true
					mu.Unlock()
					if r.status != 200 || dup || v == "-1" {
						t.Errorf("status %d, x-as-counter %q (duplicate %v)", r.status, v, dup)
					}
				}
			}()
		}
		wg.Wait()
		if !seen[strconv.Itoa(workers*perWorker)] {
			t.Errorf("the counter did not reach %d: %v", workers*perWorker, seen)
		}
	})
	t.Run("callout", func(t *testing.T) {
		e := startProxy(t, load("as-callout", "callout"))
		r := e.do(t, "GET", "/x", "")
		if r.status != 200 || r.header.Get("x-upstream-name") != "a" {
			t.Fatalf("status %d: %q", r.status, r.body)
		}
		if got, want := r.header.Get("x-as-callout"), "200 auth auth GET /as-callout callout.test"; got != want {
			t.Errorf("x-as-callout = %q, want %q", got, want)
		}
	})
	t.Run("callout to an unknown pool", func(t *testing.T) {
		h2 := newTestHost(t) // no pools
		p := h2.mustLoad(t, proxy.PluginConfig{Name: "as-refused", Path: path, Config: proxy.RawConfig("callout"),
			Instances: 1, CallTimeout: proxy.Duration(2 * time.Second)})
		r := startProxy(t, p).do(t, "GET", "/x", "")
		if r.status != 200 || r.header.Get("x-as-callout") != "refused 2" {
			t.Errorf("status %d, x-as-callout %q", r.status, r.header.Get("x-as-callout"))
		}
	})
}
