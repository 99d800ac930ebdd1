package traceparent

import (
	"regexp"
	"strings"
	"testing"

	"github.com/valyala/fasthttp"
)

// A client's traceparent, the W3C spec's example.
const (
	clientTraceID     = "4bf92f3577b34da6a3ce929d0e0e4736"
	clientTraceparent = "00-" + clientTraceID + "-00f067aa0ba902b7-01"
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
		id, ok := Parse([]byte(c.v))
		if ok != c.valid {
			t.Errorf("Parse(%q) ok = %v, want %v", c.v, ok, c.valid)
			continue
		}
		if ok && string(id) != clientTraceID {
			t.Errorf("Parse(%q) trace-id = %q", c.v, id)
		}
	}
}

// refTraceparent is a reference for Parse, written the other
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
	var tc Context
	f.Fuzz(func(t *testing.T, v string) {
		id, ok := Parse([]byte(v))
		wantID, wantOK := refParse(v)
		if ok != wantOK || string(id) != wantID {
			t.Fatalf("Parse(%q) = %q, %v; reference %q, %v", v, id, ok, wantID, wantOK)
		}
		tc.generate()
		g := string(tc.header[:])
		if gid, ok := Parse(tc.header[:]); !ok || string(gid) != string(tc.TraceID()) ||
			!strings.HasPrefix(g, "00-") || !strings.HasSuffix(g, "-01") {
			t.Fatalf("generated %q does not parse as version 00, sampled, with its trace id %q", g, tc.TraceID())
		}
	})
}

// TestTraceContextApply exercises apply on a header directly: a second
// apply of the header it produced keeps it (idempotent), and every
// tracestate field goes when the traceparent is replaced.
func TestTraceContextApply(t *testing.T) {
	var h fasthttp.RequestHeader
	h.Add("Tracestate", "a=1")
	h.Add("Tracestate", "b=2")
	h.Add("Traceparent", "garbage")
	var tc Context
	tc.Apply(&h)
	first := string(h.Peek("Traceparent"))
	if len(h.PeekAll("Tracestate")) != 0 || len(h.PeekAll("Traceparent")) != 1 || string(tc.TraceID()) != first[3:35] {
		t.Fatalf("after apply: traceparent %q tracestate %q trace id %q", h.PeekAll("Traceparent"), h.PeekAll("Tracestate"), tc.TraceID())
	}
	tc.Reset()
	if tc.TraceID() != nil {
		t.Fatal("reset kept the trace id")
	}
	tc.Apply(&h)
	if got := string(h.Peek("Traceparent")); got != first || string(tc.TraceID()) != first[3:35] {
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
			var tc Context
			b.ReportAllocs()
			for b.Loop() {
				h.Reset()
				h.Set("Content-Type", "application/json")
				if value != "" {
					h.Set("Traceparent", value)
				}
				tc.Apply(&h)
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
