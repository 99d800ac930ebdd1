package wasm

import (
	"encoding/json"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sluice-proxy/sluice/internal/plugintest"
	"github.com/sluice-proxy/sluice/internal/testsync"
	"github.com/sluice-proxy/sluice/proxy"
)

func loadGo(t testing.TB, h *testHost, pkg, name, config string, mod ...func(*proxy.PluginConfig)) *Plugin {
	t.Helper()
	pc := proxy.PluginConfig{
		Name:        name,
		Path:        plugintest.BuildGo(t, pkg),
		Config:      proxy.RawConfig(config),
		Instances:   2,
		CallTimeout: proxy.Duration(2 * time.Second),
	}
	for _, m := range mod {
		m(&pc)
	}
	return h.mustLoad(t, pc)
}

func TestE2EHeadersPlugin(t *testing.T) {
	h := newTestHost(t)
	p := loadGo(t, h, "plugins/headers", "headers",
		`{"request": {"add": {"x-added": "1"}, "remove": ["x-removed"]}, "response": {"set": {"x-resp": "yes"}}}`)
	e := startProxy(t, p)
	r := e.do(t, "GET", "/hello", "", "x-removed", "gone")
	if r.status != 200 {
		t.Fatalf("status %d: %s", r.status, r.body)
	}
	if got := r.header.Get("x-seen-x-added"); got != "1" {
		t.Errorf("upstream saw x-added %q, want 1", got)
	}
	if got := r.header.Get("x-seen-x-removed"); got != "" {
		t.Errorf("upstream saw x-removed %q, want it removed", got)
	}
	if got := r.header.Get("x-resp"); got != "yes" {
		t.Errorf("response x-resp %q, want yes", got)
	}
}

func TestE2EDenyPlugin(t *testing.T) {
	h := newTestHost(t)
	p := loadGo(t, h, "plugins/deny", "deny",
		`{"rules": [{"path_prefix": "/admin", "status": 403, "message": "admin API is disabled"}]}`)
	e := startProxy(t, p)
	r := e.do(t, "GET", "/admin/users", "")
	if r.status != 403 || !strings.Contains(r.body, "admin API is disabled") {
		t.Fatalf("denied request: %d %q", r.status, r.body)
	}
	if r.header.Get("x-upstream-name") != "" {
		t.Errorf("denied request reached upstream %q", r.header.Get("x-upstream-name"))
	}
	if r := e.do(t, "GET", "/public", ""); r.status != 200 || r.header.Get("x-upstream-name") != "a" {
		t.Fatalf("allowed request: %d %q", r.status, r.body)
	}
	if m := e.metrics(t); !strings.Contains(m, `sluice_requests_rejected_total{reason="plugin"} 1`) {
		t.Errorf("the local reply was not counted:\n%s", testsync.Grep(m, "rejected"))
	}
}

const probePkg = "wasm/testdata/guests/probe"

// startProbe loads the probe guest with its defaults on a new test host
// and starts a proxy with it as the only filter.
func startProbe(t *testing.T) (*testHost, *e2e) {
	t.Helper()
	h := newTestHost(t)
	return h, startProxy(t, loadGo(t, h, probePkg, "probe", ""))
}

func TestE2EProbeRouting(t *testing.T) {
	_, e := startProbe(t)
	tests := []struct {
		name     string
		path     string
		headers  []string
		upstream string
		bodyHas  string
		status   string // x-upstream-status
	}{
		{name: "default route", path: "/x", upstream: "a"},
		{name: "route by path", path: "/b/x", upstream: "b"},
		{name: "sluice.upstream picks a pool", path: "/x", headers: []string{"x-probe-upstream", "b"}, upstream: "b", status: "ok"},
		{name: "unknown pool is refused", path: "/x", headers: []string{"x-probe-upstream", "nope"}, upstream: "a", status: "sdk: proxy_set_property: BAD_ARGUMENT"},
		{name: ":path rewrite reroutes", path: "/x", headers: []string{"x-probe-path", "/b/rewritten?q=1"}, upstream: "b", bodyHas: "GET /b/rewritten?q=1 "},
		{name: ":authority rewrite reroutes", path: "/x", headers: []string{"x-probe-authority", "b.test"}, upstream: "b", bodyHas: " b.test "},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := e.do(t, "GET", tc.path, "", tc.headers...)
			if r.status != 200 {
				t.Fatalf("status %d: %s", r.status, r.body)
			}
			if got := r.header.Get("x-upstream-name"); got != tc.upstream {
				t.Errorf("upstream %q, want %q (body %q)", got, tc.upstream, r.body)
			}
			if !strings.Contains(r.body, tc.bodyHas) {
				t.Errorf("body %q does not contain %q", r.body, tc.bodyHas)
			}
			if got := r.header.Get("x-upstream-status"); got != tc.status {
				t.Errorf("x-upstream-status %q, want %q", got, tc.status)
			}
		})
	}
}

func TestE2EProbeProperties(t *testing.T) {
	h := newTestHost(t)
	p := loadGo(t, h, probePkg, "probe", "cfg-bytes", func(pc *proxy.PluginConfig) { pc.VMID = "vm-1" })
	e := startProxy(t, p)
	props := []string{"request.path", "request.url_path", "request.query", "request.host", "request.method",
		"request.scheme", "request.headers", "request.id", "request.protocol", "request.time", "request.size",
		"source.address", "destination.address", "response.code", "response.headers", "plugin_name",
		"plugin_root_id", "plugin_vm_id", "sluice.upstream", "sluice.active_requests",
		"sluice.max_concurrent_requests", "my.custom", "no.such.property"}
	before := time.Now().UnixNano()
	r := e.do(t, "POST", "/v1/x?a=b", "hello", "x-probe-props", strings.Join(props, ","),
		"x-probe-setprop", "my.custom=value-1", "x-request-id", "rid-42")
	if r.status != 200 {
		t.Fatalf("status %d: %s", r.status, r.body)
	}
	get := func(name string) string { return r.header.Get("x-prop-" + name) }
	want := map[string]string{
		"request.path":                   "/v1/x?a=b",
		"request.url_path":               "/v1/x",
		"request.query":                  "a=b",
		"request.method":                 "POST",
		"request.scheme":                 "http",
		"request.id":                     "rid-42",
		"request.protocol":               "HTTP/1.1",
		"request.size":                   "5",
		"response.code":                  "200",
		"plugin_name":                    "probe",
		"plugin_root_id":                 "",
		"plugin_vm_id":                   "vm-1",
		"sluice.upstream":                "a",
		"sluice.active_requests":         "1",
		"sluice.max_concurrent_requests": strconv.Itoa(proxy.DefaultMaxConcurrentRequests),
		"my.custom":                      "value-1",
		"no.such.property":               "sdk: proxy_get_property: NOT_FOUND",
	}
	for name, w := range want {
		if got := get(name); got != w {
			t.Errorf("%s = %q, want %q", name, got, w)
		}
	}
	if got := get("request.host"); !strings.HasPrefix(got, "127.0.0.1:") {
		t.Errorf("request.host = %q", got)
	}
	for _, name := range []string{"source.address", "destination.address"} {
		if got := get(name); !strings.HasPrefix(got, "127.0.0.1:") {
			t.Errorf("%s = %q, want 127.0.0.1:port", name, got)
		}
	}
	if n, _ := strconv.Atoi(get("request.headers")); n < 5 {
		t.Errorf("request.headers has %q pairs, want at least the 4 pseudo-headers and more", get("request.headers"))
	}
	if n, _ := strconv.Atoi(get("response.headers")); n < 2 {
		t.Errorf("response.headers has %q pairs", get("response.headers"))
	}
	if ts, _ := strconv.ParseInt(get("request.time"), 10, 64); ts < before-int64(time.Minute) || ts > time.Now().UnixNano() {
		t.Errorf("request.time = %q, not around %d", get("request.time"), before)
	}
	// The root context saw plugin properties, and NOT_FOUND / BAD_ARGUMENT
	// for what needs an HTTP context.
	logs := h.logs.String()
	for _, w := range []string{
		`probe: root plugin_name=\"probe\" err=<nil>`,
		`probe: root plugin_vm_id=\"vm-1\" err=<nil>`,
		`probe: root plugin_root_id=\"\" err=<nil>`,
		`probe: root request.path=\"\" err=sdk: proxy_get_property: NOT_FOUND`,
		`probe: root resume err=sdk: proxy_continue_stream: BAD_ARGUMENT`,
		`probe: root header err=sdk: proxy_get_header_map_value: NOT_FOUND`,
		`probe: root config=\"cfg-bytes\"`,
	} {
		if !strings.Contains(logs, w) {
			t.Errorf("log lacks %s", w)
		}
	}
}

func TestE2EProbeBodies(t *testing.T) {
	_, e := startProbe(t)
	r := e.do(t, "POST", "/x", "hello", "x-probe-req-body", "-world")
	if r.status != 200 || !strings.HasSuffix(r.body, " hello-world") {
		t.Fatalf("request body rewrite: %d %q", r.status, r.body)
	}
	if got := r.header.Get("x-seen-content-length"); got != "11" {
		t.Errorf("upstream saw Content-Length %s, want 11", got)
	}
	r = e.do(t, "GET", "/x", "", "x-probe-resp-body", "replaced!")
	if r.status != 200 || r.body != "replaced!" {
		t.Fatalf("response body rewrite: %d %q", r.status, r.body)
	}
	if got := r.header.Get("content-length"); got != "9" {
		t.Errorf("Content-Length %q, want 9", got)
	}
}

func TestE2EProbeLocalResponse(t *testing.T) {
	h, e := startProbe(t)
	r := e.do(t, "GET", "/x", "", "x-probe-deny", "418")
	if r.status != 418 || r.body != "denied by probe" || r.header.Get("x-denied") != "yes" {
		t.Fatalf("local response: %d %q %v", r.status, r.body, r.header)
	}
	if got := h.metric(`sluice_plugin_local_responses_total{plugin="probe"}`); got != "1" {
		t.Errorf("plugin local responses = %q, want 1", got)
	}
	if m := e.metrics(t); !strings.Contains(m, `sluice_requests_rejected_total{reason="plugin"} 1`) {
		t.Errorf("proxy did not count the local reply:\n%s", testsync.Grep(m, "rejected"))
	}
}

// TestE2EProbeUpstreamsAndEndpoint: sluice.upstreams is the proxy's JSON
// snapshot of the pools; setting sluice.endpoint to an endpoint of pool b
// sends the request there, and sluice.endpoint then reads it back.
func TestE2EProbeUpstreamsAndEndpoint(t *testing.T) {
	h, e := startProbe(t)
	r := e.do(t, "GET", "/x", "", "x-probe-props", "sluice.upstreams")
	var snap struct {
		Pools map[string]struct {
			Endpoints map[string]json.RawMessage `json:"endpoints"`
		} `json:"pools"`
	}
	if err := json.Unmarshal([]byte(r.header.Get("x-prop-sluice.upstreams")), &snap); err != nil || len(snap.Pools["b"].Endpoints) != 1 {
		t.Fatalf("sluice.upstreams = %q: %v", r.header.Get("x-prop-sluice.upstreams"), err)
	}
	var bAddr string
	for addr := range snap.Pools["b"].Endpoints {
		bAddr = addr
	}
	r = e.do(t, "GET", "/x", "", "x-probe-setprop", "sluice.endpoint="+bAddr, "x-probe-props", "sluice.endpoint,sluice.upstream")
	if r.header.Get("x-upstream-name") != "b" || r.header.Get("x-prop-sluice.endpoint") != bAddr || r.header.Get("x-prop-sluice.upstream") != "b" {
		t.Fatalf("pinned to %s: upstream %q, sluice.endpoint %q, sluice.upstream %q", bAddr,
			r.header.Get("x-upstream-name"), r.header.Get("x-prop-sluice.endpoint"), r.header.Get("x-prop-sluice.upstream"))
	}
	r = e.do(t, "GET", "/x", "", "x-probe-setprop", "sluice.endpoint=10.9.9.9:1")
	if r.status != 200 || r.header.Get("x-upstream-name") != "a" {
		t.Fatalf("unknown endpoint: %d from %q", r.status, r.header.Get("x-upstream-name"))
	}
	if !strings.Contains(h.logs.String(), "probe: sdk: proxy_set_property: BAD_ARGUMENT") {
		t.Error("setting an unknown endpoint was not refused with BAD_ARGUMENT")
	}
}
