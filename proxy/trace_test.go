package proxy

import (
	"net/http"
	"strings"
	"testing"

	"github.com/sluice-proxy/sluice/proxy/internal/traceparent"
	"github.com/sluice-proxy/sluice/proxy/proxytest"
)

// TestTraceContextForwarded: a valid traceparent reaches the upstream
// unchanged with its tracestate; a missing, invalid or duplicated one is
// replaced by a generated one and tracestate is dropped; the log line's
// trace_id is the one the upstream received.
func TestTraceContextForwarded(t *testing.T) {
	up := startUpstream(t, proxytest.Options{})
	p, logs := loggedProxy(t, baseConfig(up.URL), Options{}, true)
	c := newClient()
	cases := []struct {
		name        string
		traceparent []string
		tracestate  string
		keep        bool
	}{
		{"valid", []string{clientTraceparent}, "congo=t61rcWkgMzE", true},
		{"higher version", []string{"cc-" + clientTraceID + "-00f067aa0ba902b7-01-future"}, "rojo=1", true},
		{"absent", nil, "", false},
		{"tracestate alone", nil, "congo=t61rcWkgMzE", false},
		{"invalid", []string{"00-" + clientTraceID + "-0000000000000000-01"}, "congo=t61rcWkgMzE", false},
		{"duplicated", []string{clientTraceparent, "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}, "congo=x", false},
	}
	seen := map[string]bool{}
	for i, tc := range cases {
		req, _ := http.NewRequest("GET", p.URL+"/v1/models", nil)
		for _, v := range tc.traceparent {
			req.Header.Add("Traceparent", v)
		}
		if tc.tracestate != "" {
			req.Header.Set("Tracestate", tc.tracestate)
		}
		id := "trace-case-" + string(rune('a'+i))
		req.Header.Set("X-Request-Id", id)
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		got := up.LastRequest().Header
		tps := got.Values("Traceparent")
		if len(tps) != 1 {
			t.Fatalf("%s: upstream got %d traceparent fields: %q", tc.name, len(tps), tps)
		}
		gotID, ok := traceparent.Parse([]byte(tps[0]))
		switch {
		case !ok:
			t.Fatalf("%s: upstream got an invalid traceparent %q", tc.name, tps[0])
		case tc.keep && (tps[0] != tc.traceparent[0] || got.Get("Tracestate") != tc.tracestate):
			t.Fatalf("%s: upstream got %q %q, want the client's unchanged", tc.name, tps[0], got.Get("Tracestate"))
		case !tc.keep && (!strings.HasPrefix(tps[0], "00-") || !strings.HasSuffix(tps[0], "-01") || got.Get("Tracestate") != ""):
			t.Fatalf("%s: upstream got %q tracestate %q, want a generated version 00 sampled one and no tracestate",
				tc.name, tps[0], got.Get("Tracestate"))
		case !tc.keep && seen[string(gotID)]:
			t.Fatalf("%s: generated trace id %s seen before", tc.name, gotID)
		}
		seen[string(gotID)] = true
		logs.checkFields(t, logs.line(t, id), map[string]string{"trace_id": string(gotID)})
	}
}

// TestTraceContextVisibleToFilters: plugins see the traceparent that is
// forwarded, generated ones included.
func TestTraceContextVisibleToFilters(t *testing.T) {
	up := startUpstream(t, proxytest.Options{})
	var seen string
	f := &funcFilter{name: "peek", onReqHdr: func(ex *Exchange) (Action, error) {
		v, _ := ex.RequestHeaders().GetString("traceparent")
		seen = string(v)
		return ActionContinue, nil
	}}
	p := startProxy(t, baseConfig(up.URL), Options{Filters: []Filter{f}})
	resp, _ := doRequest(t, newClient(), "GET", p.URL+"/v1/models", "", nil)
	if resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	if fwd := up.LastRequest().Header.Get("Traceparent"); seen == "" || seen != fwd {
		t.Fatalf("filter saw traceparent %q, upstream got %q", seen, fwd)
	}
}
