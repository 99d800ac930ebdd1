package wasm

import (
	"strings"
	"testing"
	"time"

	"github.com/sluice-proxy/sluice/proxy"
)

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
