package wasm

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/sluice-proxy/sluice/internal/plugintest"
	"github.com/sluice-proxy/sluice/internal/testsync"
	"github.com/sluice-proxy/sluice/proxy"
)

// higressFixture is the plugin config of testdata/higress/<name>.wasm.
func higressFixture(name string) proxy.PluginConfig {
	return proxy.PluginConfig{
		Name:        name,
		Path:        filepath.Join("testdata", "higress", name+".wasm"),
		Instances:   1,
		CallTimeout: proxy.Duration(time.Second),
		MemoryLimit: 1 << 20,
	}
}

// TestHigressBadArguments: each fixture makes one Higress call with a bad
// argument; the call answers the status named, the request goes on and the
// instance stays.
func TestHigressBadArguments(t *testing.T) {
	h := newRedisHost(t, testsync.ClosedAddr(t), 0)
	for _, tc := range []struct {
		fixture string
		want    status
	}{
		{"oob_redis_init", statusInvalidMemoryAccess},
		{"oob_redis_init_password", statusInvalidMemoryAccess},
		{"oob_redis_call_query", statusInvalidMemoryAccess},
		{"oob_redis_call_ret", statusInvalidMemoryAccess},
		{"oob_get_upstream_hosts", statusInvalidMemoryAccess},
		{"oob_set_upstream_override_host", statusInvalidMemoryAccess},
		{"redis_unknown_cluster", statusBadArgument},
		{"redis_bad_resp", statusBadArgument},
		{"inject_encoded_data", statusUnimplemented},
		{"ok_abi_0_2_100", statusOK},
	} {
		t.Run(tc.fixture, func(t *testing.T) {
			p := h.mustLoad(t, higressFixture(tc.fixture))
			defer p.Close()
			ex := newExchange("/x")
			if err := runRequest(p, ex); err != nil {
				t.Fatalf("request failed: %v", err)
			}
			if got := status(guestStatus(t, p)); got != tc.want {
				t.Errorf("host call returned %d, want %d", got, tc.want)
			}
			if n := p.calloutsInFlight(); n != 0 {
				t.Errorf("%d calls in flight", n)
			}
			if err := runRequest(p, newExchange("/y")); err != nil || p.liveInstances() != 1 {
				t.Errorf("second request: %v, %d live instances", err, p.liveInstances())
			}
		})
	}
	// From the root context there is no request: NOT_FOUND.
	p := h.mustLoad(t, higressFixture("upstream_hosts_root"))
	defer p.Close()
	if got := status(guestStatus(t, p)); got != statusNotFound {
		t.Errorf("proxy_get_upstream_hosts from the root context returned %d, want NOT_FOUND", got)
	}
}

// TestRedisCallbackTrap: the plugin traps in proxy_on_redis_call_response.
// The instance is replaced and the paused request ends when the proxy gives
// up on its pause: it never hangs.
func TestRedisCallbackTrap(t *testing.T) {
	h := newRedisHost(t, testsync.ClosedAddr(t), 0)
	p := h.mustLoad(t, higressFixture("trap_redis_call_response"))
	e := startProxyWith(t, proxyOptions{timeout: time.Second}, p)
	start := time.Now()
	r := e.do(t, "GET", "/", "")
	if r.status < 500 {
		t.Fatalf("got %d %q, want a 5xx", r.status, r.body)
	}
	// The pause lasts 1 s by design; 8 s bounds a starved machine.
	if d := time.Since(start); d > 8*time.Second {
		t.Errorf("the request took %v", d)
	}
	restarts := `sluice_plugin_instance_restarts_total{plugin="trap_redis_call_response"}`
	waitFor(t, "a replacement instance", func() bool { return h.metric(restarts) == "1" && p.liveInstances() == 1 })
	if got := h.metric(`sluice_plugin_errors_total{plugin="trap_redis_call_response",kind="trap"}`); got != "1" {
		t.Errorf("trap errors = %q, want 1", got)
	}
}

// TestWatFixturesUpToDate checks that every .wasm in the hand-written
// fixture directories (the Higress ABI fixtures, the CPU-bound guests of
// the deadline tests and benchmarks, the stop-check rewrite inputs) is
// what wat2wasm builds from the .wat beside it. testdata/hostile has its
// own check (TestFixturesUpToDate).
func TestWatFixturesUpToDate(t *testing.T) {
	for _, dir := range []string{"higress", "cpu", "stopcheck"} {
		t.Run(dir, func(t *testing.T) { plugintest.CheckWatFixtures(t, filepath.Join("testdata", dir)) })
	}
}
