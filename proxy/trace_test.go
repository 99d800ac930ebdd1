package proxy

import (
	"net/http"
	"regexp"
	"strings"
	"testing"

	"github.com/sluice-proxy/sluice/proxy/proxytest"
	"github.com/valyala/fasthttp"
)

// traceparentCases are traceparent values and whether they are valid, by
// the W3C spec's ABNF and versioning rules (and the W3C test suite's
// cases: test/test.py in w3c/trace-context).
var traceparentCases = []struct {
	v     string
	valid bool
}{
	{clientTraceparent, true},
	{"00-" + clientTraceID + "-00f067aa0ba902b7-00", true},                 // not sampled
	{"00-" + clientTraceID + "-00f067aa0ba902b7-ff", true},                 // unknown flags: kept
	{" \t" + clientTraceparent + " ", true},                                // optional whitespace
	{"01-" + clientTraceID + "-00f067aa0ba902b7-01", true},                 // higher version
	{"cc-" + clientTraceID + "-00f067aa0ba902b7-01-what-the-future", true}, // higher version, more fields
	{"cc-" + clientTraceID + "-00f067aa0ba902b7-01- x", true},              // unknown fields are opaque
	{"cc-" + clientTraceID + "-00f067aa0ba902b7-01what", false},            // flags not followed by '-'
	{"00-" + clientTraceID + "-00f067aa0ba902b7-01-", false},               // version 00 is exactly 55
	{"00-" + clientTraceID + "-00f067aa0ba902b7-01x", false},
	{"ff-" + clientTraceID + "-00f067aa0ba902b7-01", false}, // version ff is forbidden
	{"FF-" + clientTraceID + "-00f067aa0ba902b7-01", false},
	{"0A-" + clientTraceID + "-00f067aa0ba902b7-01", false},                      // uppercase version
	{"00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01", false},           // uppercase trace-id
	{"00-" + clientTraceID + "-00F067AA0BA902B7-01", false},                      // uppercase parent-id
	{"00-" + clientTraceID + "-00f067aa0ba902b7-0A", false},                      // uppercase flags
	{"00-00000000000000000000000000000000-00f067aa0ba902b7-01", false},           // zero trace-id
	{"00-" + clientTraceID + "-0000000000000000-01", false},                      // zero parent-id
	{"00-" + clientTraceID + "-00f067aa0ba902b7", false},                         // no flags
	{"00-" + clientTraceID[:31] + "-00f067aa0ba902b7-01", false},                 // short trace-id
	{"00-" + clientTraceID + "0-0f067aa0ba902b7-01", false},                      // misplaced dash
	{"00_" + clientTraceID + "-00f067aa0ba902b7-01", false},                      // wrong delimiter
	{"0-" + clientTraceID + "-00f067aa0ba902b7-01", false},                       // one-digit version
	{".0-" + clientTraceID + "-00f067aa0ba902b7-01", false},                      // bad version char
	{"00-" + clientTraceID + "-00f067aa0ba902b7-01," + clientTraceparent, false}, // two values joined
	{"00-" + strings.Repeat("g", 32) + "-00f067aa0ba902b7-01", false},            // not hex
	{"00-" + clientTraceID + "-00f067aa0ba902b7-\x0001", false},                  // control byte
	{"", false},
	{strings.Repeat("0", 55), false},
}

func TestParseTraceparent(t *testing.T) {
	for _, c := range traceparentCases {
		id, ok := parseTraceparent([]byte(c.v))
		if ok != c.valid {
			t.Errorf("parseTraceparent(%q) ok = %v, want %v", c.v, ok, c.valid)
			continue
		}
		if ok && string(id) != clientTraceID {
			t.Errorf("parseTraceparent(%q) trace-id = %q", c.v, id)
		}
	}
}

// refTraceparent is a reference for parseTraceparent, written the other
// way round: a regular expression of the ABNF, then the spec's other rules.
var refTraceparent = regexp.MustCompile(`(?s)^[ \t]*([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*?)?[ \t]*$`)

func refParse(v string) (string, bool) {
	m := refTraceparent.FindStringSubmatch(v)
	if m == nil || m[1] == "ff" || m[2] == strings.Repeat("0", 32) || m[3] == strings.Repeat("0", 16) {
		return "", false
	}
	if m[1] == "00" && m[5] != "" {
		return "", false
	}
	return m[2], true
}

// FuzzParseTraceparent checks the parser against the reference on any
// input (valid ones included, as seeds), and that a generated traceparent
// always parses as a version 00 sampled one.
func FuzzParseTraceparent(f *testing.F) {
	for _, c := range traceparentCases {
		f.Add(c.v)
	}
	var tc traceContext
	f.Fuzz(func(t *testing.T, v string) {
		id, ok := parseTraceparent([]byte(v))
		wantID, wantOK := refParse(v)
		if ok != wantOK || string(id) != wantID {
			t.Fatalf("parseTraceparent(%q) = %q, %v; reference %q, %v", v, id, ok, wantID, wantOK)
		}
		tc.generate()
		g := string(tc.header[:])
		if gid, ok := parseTraceparent(tc.header[:]); !ok || string(gid) != string(tc.traceID()) ||
			!strings.HasPrefix(g, "00-") || !strings.HasSuffix(g, "-01") {
			t.Fatalf("generated %q does not parse as version 00, sampled, with its trace id %q", g, tc.traceID())
		}
	})
}

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
		gotID, ok := parseTraceparent([]byte(tps[0]))
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

// TestTraceContextApply exercises apply on a header directly: a second
// apply of the header it produced keeps it (idempotent), and every
// tracestate field goes when the traceparent is replaced.
func TestTraceContextApply(t *testing.T) {
	var h fasthttp.RequestHeader
	h.Add("Tracestate", "a=1")
	h.Add("Tracestate", "b=2")
	h.Add("Traceparent", "garbage")
	var tc traceContext
	tc.apply(&h)
	first := string(h.Peek("Traceparent"))
	if len(h.PeekAll("Tracestate")) != 0 || len(h.PeekAll("Traceparent")) != 1 || string(tc.traceID()) != first[3:35] {
		t.Fatalf("after apply: traceparent %q tracestate %q trace id %q", h.PeekAll("Traceparent"), h.PeekAll("Tracestate"), tc.traceID())
	}
	tc.reset()
	if tc.traceID() != nil {
		t.Fatal("reset kept the trace id")
	}
	tc.apply(&h)
	if got := string(h.Peek("Traceparent")); got != first || string(tc.traceID()) != first[3:35] {
		t.Fatalf("second apply changed %q to %q", first, got)
	}
}

// BenchmarkTraceContext measures what trace context adds to every
// request: keeping a valid traceparent (parse only) and generating one
// (three random words, hex, two deletes and a header set).
func BenchmarkTraceContext(b *testing.B) {
	apply := func(value string) func(*testing.B) {
		return func(b *testing.B) {
			var h fasthttp.RequestHeader
			var tc traceContext
			b.ReportAllocs()
			for b.Loop() {
				h.Reset()
				h.Set("Content-Type", "application/json")
				if value != "" {
					h.Set("Traceparent", value)
				}
				tc.apply(&h)
			}
		}
	}
	b.Run("kept", apply(clientTraceparent))
	b.Run("generated", apply(""))
	b.Run("header_only", func(b *testing.B) { // the harness alone, for reference
		var h fasthttp.RequestHeader
		b.ReportAllocs()
		for b.Loop() {
			h.Reset()
			h.Set("Content-Type", "application/json")
			h.Set("Traceparent", clientTraceparent)
		}
	})
}
