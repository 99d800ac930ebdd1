package wasm

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/sluice-proxy/sluice/proxy"
)

func TestLoadRefusesBadModules(t *testing.T) {
	h := newTestHost(t)
	tests := []struct {
		fixture string
		want    []string
	}{
		{"abi_0_1_0", []string{"v0.1.0", "proxy_abi_version_0_1_0"}},
		{"no_abi_version", []string{"proxy_abi_version_0_2_1", "not a Proxy-Wasm v0.2 module"}},
		{"no_context_create", []string{"does not export proxy_on_context_create"}},
		{"no_memory", []string{`does not export its memory`}},
		{"bad_import", []string{"env.proxy_does_not_exist", "does not provide"}},
		{"bad_import_signature", []string{"env.proxy_log", "(i32) -> i32", "(i32 i32 i32) -> i32"}},
		{"bad_signature", []string{"proxy_on_request_headers", "(i32) -> i32", "want (i32 i32 i32) -> i32"}},
		{"configure_false", []string{"proxy_on_configure returned false"}},
		{"trap_initialize", []string{"_initialize", "unreachable"}},
		{"trap_vm_start", []string{"proxy_on_vm_start", "trap", "unreachable"}},
		{"trap_configure", []string{"proxy_on_configure", "trap", "unreachable"}},
		{"loop_configure", []string{"proxy_on_configure", "timeout", "deadline"}},
	}
	for _, tc := range tests {
		t.Run(tc.fixture, func(t *testing.T) {
			pc := fixtureConfig(t, tc.fixture)
			pc.Name = "bad-" + tc.fixture
			// The call budget is CPU time (deadline.go): a looping
			// configure is stopped once it has used budget of CPU, which
			// on a loaded machine takes several times as long in wall
			// time, and at hardWallCap at the latest. A small budget
			// keeps the wall bound below far from the design's limit.
			pc.CallTimeout = proxy.Duration(100 * time.Millisecond)
			start := time.Now()
			p, err := h.Load(context.Background(), pc)
			if err == nil {
				p.Close()
				t.Fatal("Load succeeded")
			}
			msg := err.Error()
			if !strings.HasPrefix(msg, `wasm: plugin "bad-`+tc.fixture+`": `) {
				t.Errorf("error does not name the plugin: %v", err)
			}
			for _, w := range tc.want {
				if !strings.Contains(msg, w) {
					t.Errorf("error %q lacks %q", msg, w)
				}
			}
			if d, most := time.Since(start), hardWallCap(time.Duration(pc.CallTimeout))+10*time.Second; d > most {
				t.Errorf("Load took %v, want at most %v (the hard wall cap plus compile time)", d, most)
			}
		})
	}
}

func TestCheck(t *testing.T) {
	h := newTestHost(t)
	if err := h.Check(context.Background(), fixtureConfig(t, "ok")); err != nil {
		t.Errorf("Check(ok) = %v", err)
	}
	pc := fixtureConfig(t, "bad_import")
	pc.Name = "auth"
	if err := h.Check(context.Background(), pc); err == nil || !strings.Contains(err.Error(), `wasm: plugin "auth": `) {
		t.Errorf("Check(bad_import) = %v", err)
	}
	// Check does not run the module: a configure that loops still passes.
	if err := h.Check(context.Background(), fixtureConfig(t, "loop_configure")); err != nil {
		t.Errorf("Check(loop_configure) = %v", err)
	}
	for _, tc := range []struct {
		name string
		mod  func(*proxy.PluginConfig)
		want string
	}{
		{"missing file", func(pc *proxy.PluginConfig) { pc.Path += ".missing" }, "no such file"},
		{"no path", func(pc *proxy.PluginConfig) { pc.Path = "" }, "path is empty"},
		{"negative instances", func(pc *proxy.PluginConfig) { pc.Instances = -1 }, "instances is -1"},
		{"bad policy", func(pc *proxy.PluginConfig) { pc.FailurePolicy = "maybe" }, `failure_policy is "maybe"`},
		{"tiny memory", func(pc *proxy.PluginConfig) { pc.MemoryLimit = 100 }, "below one 64 KiB"},
		{"not wasm", func(pc *proxy.PluginConfig) { pc.Path = "doc.go" }, "doc.go"},
	} {
		pc := fixtureConfig(t, "ok")
		pc.Name = "cfg"
		tc.mod(&pc)
		err := h.Check(context.Background(), pc)
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), `plugin "cfg"`) {
			t.Errorf("%s: Check = %v, want an error naming the plugin and %q", tc.name, err, tc.want)
		}
	}
}

// guestStatus reads the hostile fixture's exported "status" global from
// p's single instance.
func guestStatus(t testing.TB, p *Plugin) int32 {
	t.Helper()
	in := p.slots[0].inst.Load()
	if in == nil {
		t.Fatal("no live instance")
	}
	g := in.mod.ExportedGlobal("status")
	if g == nil {
		t.Fatal("fixture exports no status global")
	}
	return int32(g.Get())
}

// runRequest drives one request through p: request headers, the body (if
// any), response headers and done. It returns the first callback error.
func runRequest(p *Plugin, ex *proxy.Exchange) error {
	st, err := p.NewStream(ex)
	if err != nil {
		return err
	}
	defer st.OnDone()
	eos := len(ex.RequestBody()) == 0
	if _, err := st.OnRequestHeaders(eos); err != nil {
		return err
	}
	if !eos {
		if _, err := st.OnRequestBody(true); err != nil {
			return err
		}
	}
	ex.ResponseHeaders().AddString(":status", "200")
	if _, err := st.OnResponseHeaders(false); err != nil {
		return err
	}
	ex.SetResponseBody([]byte("response"))
	_, err = st.OnResponseBody(true)
	return err
}

func TestHostileMemoryAccess(t *testing.T) {
	h := newTestHost(t)
	tests := []struct {
		fixture string
		want    status
	}{
		{"oob_log", statusInvalidMemoryAccess},
		{"oob_past_end", statusInvalidMemoryAccess},
		{"oob_huge_len", statusInvalidMemoryAccess},
		{"oob_add_header_map_value", statusInvalidMemoryAccess},
		{"oob_replace_header_map_value", statusInvalidMemoryAccess},
		{"oob_remove_header_map_value", statusInvalidMemoryAccess},
		{"oob_get_header_map_value", statusInvalidMemoryAccess},
		{"oob_get_header_map_value_ret", statusInvalidMemoryAccess},
		{"oob_get_header_map_pairs", statusInvalidMemoryAccess},
		{"oob_get_header_map_size", statusInvalidMemoryAccess},
		{"oob_set_header_map_pairs", statusInvalidMemoryAccess},
		{"oob_get_buffer_bytes", statusInvalidMemoryAccess},
		{"oob_set_buffer_bytes", statusInvalidMemoryAccess},
		{"oob_get_buffer_status", statusInvalidMemoryAccess},
		{"oob_get_current_time_nanoseconds", statusInvalidMemoryAccess},
		{"oob_get_log_level", statusInvalidMemoryAccess},
		{"oob_get_property", statusInvalidMemoryAccess},
		{"oob_set_property", statusInvalidMemoryAccess},
		{"oob_send_local_response", statusInvalidMemoryAccess},
		{"oob_get_shared_data", statusInvalidMemoryAccess},
		{"oob_set_shared_data", statusInvalidMemoryAccess},
		{"oob_http_call", statusInvalidMemoryAccess},
		{"alloc_oob", statusInvalidMemoryAccess},
		{"alloc_zero", statusInternalFailure},
		{"bad_pairs_count", statusBadArgument},
		{"bad_pairs_len", statusBadArgument},
	}
	for _, tc := range tests {
		t.Run(tc.fixture, func(t *testing.T) {
			p := h.mustLoad(t, fixtureConfig(t, tc.fixture))
			defer p.Close()
			ex := newExchange("/x")
			ex.SetRequestBody([]byte("request body"))
			if err := runRequest(p, ex); err != nil {
				t.Fatalf("request failed: %v", err)
			}
			if got := status(guestStatus(t, p)); got != tc.want {
				t.Errorf("host call returned %d, want %d", got, tc.want)
			}
			if ex.RequestHeaders().Len() != 4 {
				t.Errorf("request headers changed: %d fields", ex.RequestHeaders().Len())
			}
			// The instance is still healthy and serves the next request.
			if err := runRequest(p, newExchange("/y")); err != nil {
				t.Errorf("second request failed: %v", err)
			}
			if p.liveInstances() != 1 {
				t.Errorf("instance was discarded")
			}
		})
	}
}

func TestHostileCallbacksFail(t *testing.T) {
	h := newTestHost(t)
	tests := []struct {
		fixture  string
		callback string
		kind     string
		timeout  time.Duration
		inDone   bool // the failure happens in OnDone, which reports nothing
	}{
		{fixture: "trap_context_create", callback: "proxy_on_context_create", kind: KindTrap},
		{fixture: "trap_request_headers", callback: "proxy_on_request_headers", kind: KindTrap},
		{fixture: "trap_request_body", callback: "proxy_on_request_body", kind: KindTrap},
		{fixture: "trap_response_headers", callback: "proxy_on_response_headers", kind: KindTrap},
		{fixture: "trap_response_body", callback: "proxy_on_response_body", kind: KindTrap},
		{fixture: "trap_memory_allocate", callback: "proxy_on_request_headers", kind: KindTrap},
		{fixture: "trap_log", kind: KindTrap, inDone: true},
		{fixture: "trap_done", kind: KindTrap, inDone: true},
		{fixture: "trap_delete", kind: KindTrap, inDone: true},
		{fixture: "loop", callback: "proxy_on_request_headers", kind: KindTimeout, timeout: 50 * time.Millisecond},
		{fixture: "membomb", callback: "proxy_on_request_headers", kind: KindMemory},
		{fixture: "membomb_alloc", callback: "proxy_on_request_headers", kind: KindMemory},
	}
	for _, tc := range tests {
		t.Run(tc.fixture, func(t *testing.T) {
			pc := fixtureConfig(t, tc.fixture)
			if tc.timeout > 0 {
				pc.CallTimeout = proxy.Duration(tc.timeout)
			}
			p := h.mustLoad(t, pc)
			defer p.Close()
			errMetric := `sluice_plugin_errors_total{plugin="` + tc.fixture + `",kind="` + tc.kind + `"}`
			restarts := `sluice_plugin_instance_restarts_total{plugin="` + tc.fixture + `"}`
			start := time.Now()
			ex := newExchange("/x")
			ex.SetRequestBody([]byte("body"))
			err := runRequest(p, ex)
			if tc.inDone {
				if err != nil {
					t.Fatalf("request failed before OnDone: %v", err)
				}
			} else {
				var ce *CallError
				if !errors.As(err, &ce) {
					t.Fatalf("request error = %v, want a *CallError", err)
				}
				if ce.Kind != tc.kind || ce.Callback != tc.callback || ce.Plugin != tc.fixture {
					t.Errorf("error = %+v, want kind %s in %s", ce, tc.kind, tc.callback)
				}
				if !strings.Contains(err.Error(), `wasm: plugin "`+tc.fixture+`"`) {
					t.Errorf("error %q does not name the plugin", err)
				}
			}
			if d := time.Since(start); d > 5*time.Second {
				t.Errorf("the failing request took %v", d)
			}
			if got := h.metric(errMetric); got != "1" {
				t.Errorf("%s = %q, want 1", errMetric, got)
			}
			// The instance is replaced in the background and serves again.
			waitFor(t, "a replacement instance", func() bool { return h.metric(restarts) == "1" && p.liveInstances() == 1 })
		})
	}
}

func TestStreamsOnDiscardedInstanceFail(t *testing.T) {
	h := newTestHost(t)
	pc := fixtureConfig(t, "trap_response_headers")
	p := h.mustLoad(t, pc)
	defer p.Close()
	// Two requests pinned to the single instance.
	s1 := startRequest(t, p, newExchange("/1"), proxy.ActionContinue)
	s2 := startRequest(t, p, newExchange("/2"), proxy.ActionContinue)
	if _, err := s1.OnResponseHeaders(true); err == nil {
		t.Fatal("trap not reported")
	}
	s1.OnDone()
	_, err := s2.OnResponseHeaders(true)
	var ce *CallError
	if !errors.As(err, &ce) || ce.Kind != KindUnavailable || !errors.Is(err, ErrInstanceDiscarded) {
		t.Fatalf("stream on the discarded instance: %v", err)
	}
	s2.OnDone() // must not call into the dead instance
	waitFor(t, "a replacement instance", func() bool { return p.liveInstances() == 1 })
	if err := runRequest(p, newExchange("/3")); err == nil || !strings.Contains(err.Error(), "proxy_on_response_headers") {
		t.Fatalf("a new request on the replacement: %v", err)
	}
}

// TestE2EFailurePolicy: a plugin that traps answers 503 when it fails
// closed and is skipped when it fails open; either way the proxy keeps
// serving, and a plugin whose host calls go out of bounds does not fail.
func TestE2EFailurePolicy(t *testing.T) {
	h := newTestHost(t)
	closedPC := fixtureConfig(t, "trap_request_headers")
	closedPC.Name = "closed"
	openPC := fixtureConfig(t, "trap_request_headers")
	openPC.Name, openPC.FailurePolicy = "open", proxy.FailOpen
	oobPC := fixtureConfig(t, "oob_log")

	for _, tc := range []struct {
		pc     proxy.PluginConfig
		status int
	}{
		{closedPC, 503},
		{openPC, 200},
		{oobPC, 200},
	} {
		t.Run(tc.pc.Name, func(t *testing.T) {
			p := h.mustLoad(t, tc.pc)
			e := startProxy(t, p)
			for i := range 3 {
				// Wait for the replacement of the instance the previous
				// request discarded (there is one instance).
				waitFor(t, "a live instance", func() bool { return p.liveInstances() == 1 })
				r := e.do(t, "GET", "/x", "")
				if r.status != tc.status {
					t.Fatalf("request %d: status %d, want %d (%s)", i, r.status, tc.status, r.body)
				}
			}
		})
	}
}

// TestE2EGoGuestFailures: a Go guest that panics, loops, returns a bad
// action or exhausts its memory fails only the request that made it do so.
func TestE2EGoGuestFailures(t *testing.T) {
	h := newTestHost(t)
	p := loadGo(t, h, probePkg, "probe", "", func(pc *proxy.PluginConfig) {
		pc.CallTimeout = proxy.Duration(time.Second)
		pc.MemoryLimit = 32 << 20
	})
	e := startProxy(t, p)
	for _, tc := range []struct {
		name    string
		headers []string
		kinds   []string // acceptable error kinds
	}{
		{"panic", []string{"x-probe-panic", "request_headers"}, []string{KindExit, KindTrap}},
		{"panic in response", []string{"x-probe-panic", "response_headers"}, []string{KindExit, KindTrap}},
		{"loop", []string{"x-probe-loop", "1"}, []string{KindTimeout}},
		{"bad action", []string{"x-probe-action", "9"}, []string{KindBadAction}},
		{"memory", []string{"x-probe-grow", "64"}, []string{KindMemory}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			waitFor(t, "two live instances", func() bool { return p.liveInstances() == 2 })
			before := map[string]string{}
			for _, k := range errorKinds {
				before[k] = h.metric(`sluice_plugin_errors_total{plugin="probe",kind="` + k + `"}`)
			}
			r := e.do(t, "GET", "/x", "", tc.headers...)
			if r.status != 503 {
				t.Fatalf("status %d, want 503 (%s)", r.status, r.body)
			}
			counted := false
			for _, k := range tc.kinds {
				m := `sluice_plugin_errors_total{plugin="probe",kind="` + k + `"}`
				counted = counted || h.metric(m) != before[k]
			}
			if !counted {
				t.Errorf("no error of kind %v counted; logs:\n%s", tc.kinds, tail(h.logs.String(), 2000))
			}
			waitFor(t, "two live instances", func() bool { return p.liveInstances() == 2 })
			if r := e.do(t, "GET", "/x", "", "x-probe-echo", "after"); r.status != 200 || r.header.Get("x-echo") != "after" {
				t.Fatalf("the next request: %d %q", r.status, r.body)
			}
		})
	}
}

func tail(s string, n int) string {
	if len(s) > n {
		s = s[len(s)-n:]
	}
	return strings.TrimSpace(s)
}
