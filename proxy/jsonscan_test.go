package proxy

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/VictoriaMetrics/metrics"
)

// modelOf runs scanModel and decodes the result as findModel does.
func modelOf(body []byte) (string, bool) {
	start, end, ok := scanModel(body)
	if !ok {
		return "", false
	}
	return string(appendUnescaped(nil, body[start+1:end-1])), true
}

func TestScanModel(t *testing.T) {
	tests := []struct {
		body string
		want string
		ok   bool
	}{
		{`{"model":"llama","messages":[]}`, "llama", true},
		{` { "messages" : [{"role":"user","content":"say \"model\": \"x\""}] , "model" : "m-1" } `, "m-1", true},
		{`{"a":{"model":"inner"},"b":["model","x"],"model":"outer"}`, "outer", true},
		{`{"model":"first","model":"last"}`, "last", true},
		{`{"model":"first","model":7}`, "", false},
		{`{"mod\u0065l":"esc\u00e9\"d"}`, "escé\"d", true},
		{`{"model":"\ud83d\ude00 \ud800x"}`, "😀 \uFFFDx", true},
		{`{"model":null}`, "", false},
		{`{"stream":true}`, "", false},
		{`{}`, "", false},
		{`[{"model":"x"}]`, "", false},
		{`{"model":"x"`, "", false},
		{`{"model":"x",}`, "", false},
		{`{"model" "x"}`, "", false},
		{`{"n":1.5e3,"t":true,"z":null,"model":"ok"}`, "ok", true},
		{``, "", false},
	}
	for _, tc := range tests {
		got, ok := modelOf([]byte(tc.body))
		if ok != tc.ok || got != tc.want {
			t.Errorf("scanModel(%s) = %q, %v; want %q, %v", tc.body, got, ok, tc.want, tc.ok)
		}
	}
}

func TestAppendJSONString(t *testing.T) {
	for _, s := range []string{"", "plain", `q"uo\te`, "ctl\x00\x1f\n", "ünï"} {
		var back string
		if err := json.Unmarshal(appendJSONString(nil, s), &back); err != nil || back != s {
			t.Errorf("appendJSONString(%q) round trip: %q %v", s, back, err)
		}
	}
}

// FuzzScanModel checks the scanner against encoding/json: on a valid JSON
// object, scanModel finds exactly the string encoding/json decodes for
// "model" (the last one when repeated), and nothing when there is none or
// it is not a string. It must never panic on anything.
func FuzzScanModel(f *testing.F) {
	for _, s := range []string{
		`{"model":"llama","messages":[{"role":"user","content":"hi"}]}`,
		`{"model":"a","model":"b"}`,
		`{"mod\u0065l":"x\ud800"}`,
		`{"x":[{"model":"y"}],"model":null}`,
		`{"model":"a\\\"b"}`,
		`{"model"`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		got, ok := modelOf(b)
		if !utf8.Valid(b) {
			return // encoding/json rewrites invalid UTF-8
		}
		var m map[string]json.RawMessage
		if err := json.Unmarshal(b, &m); err != nil {
			return // invalid JSON or not an object: only "no panic"
		}
		raw, has := m["model"]
		var want string
		isStr := has && json.Unmarshal(raw, &want) == nil && strings.HasPrefix(strings.TrimSpace(string(raw)), `"`)
		if ok != isStr || ok && got != want {
			t.Fatalf("scanModel(%q) = %q, %v; encoding/json: %q (string: %v)", b, got, ok, want, isStr)
		}
	})
}

func TestUsageTrackerSSEStraddles(t *testing.T) {
	stream := "data: {\"choices\":[{\"delta\":{\"content\":\"a\"}}],\"usage\":null}\n\n" +
		": keep-alive\r\n\r\n" +
		"data: {\"choices\":[{\"delta\":{\"content\":\"usage\\\": {\"}}]}\r\n\r\n" +
		"data: {\"choices\":[],\"usage\":{\"prompt_tokens\":12,\"completion_tokens\":34,\"total_tokens\":46}}\n\n" +
		"data: [DONE]\n\n"
	set := newModelMetricSet(metrics.NewSet(), NewConfig())
	for split := 0; split <= len(stream); split++ {
		var u usageTracker
		u.begin(set.other, time.Time{}, true)
		u.observe([]byte(stream[:split]))
		u.observe([]byte(stream[split:]))
		u.eof()
		if !u.haveUsage || u.prompt != 12 || u.completion != 34 {
			t.Fatalf("split at %d: usage %v %d %d", split, u.haveUsage, u.prompt, u.completion)
		}
	}
	// Byte by byte.
	var u usageTracker
	u.begin(set.other, time.Time{}, true)
	for i := range len(stream) {
		u.observe([]byte{stream[i]})
	}
	if !u.haveUsage || u.prompt != 12 {
		t.Fatal("byte-by-byte stream lost the usage")
	}
	// An over-long line is dropped without growing the carry past its bound.
	u = usageTracker{}
	u.begin(set.other, time.Time{}, true)
	long := "data: {\"x\":\"" + strings.Repeat("y", maxSSELine) + "\"}\n"
	for i := 0; i < len(long); i += 1000 {
		u.observe([]byte(long[i:min(i+1000, len(long))]))
		if len(u.carry) > maxSSELine {
			t.Fatalf("carry grew to %d", len(u.carry))
		}
	}
	u.observe([]byte(stream))
	if !u.haveUsage {
		t.Fatal("usage after an over-long line was lost")
	}
}

func TestUsageTrackerJSONTail(t *testing.T) {
	set := newModelMetricSet(metrics.NewSet(), NewConfig())
	body := `{"id":"x","choices":[{"message":{"content":"` + strings.Repeat("the \"usage\": {} ", 2000) +
		`"}}],"usage":{"prompt_tokens":5,"total_tokens":12,"completion_tokens":7},"system_fingerprint":"fp"}`
	for _, chunk := range []int{1, 7, 4096, len(body)} {
		var u usageTracker
		u.begin(set.other, time.Time{}, false)
		for i := 0; i < len(body); i += chunk {
			u.observe([]byte(body[i:min(i+chunk, len(body))]))
		}
		if len(u.tail) > maxUsageTail {
			t.Fatalf("tail %d bytes", len(u.tail))
		}
		u.eof()
		if !u.haveUsage || u.prompt != 5 || u.completion != 7 {
			t.Fatalf("chunk %d: %v %d %d", chunk, u.haveUsage, u.prompt, u.completion)
		}
	}
	var u usageTracker
	u.begin(set.other, time.Time{}, false)
	u.observe([]byte(`{"error":{"message":"usage"}}`))
	u.eof()
	if u.haveUsage {
		t.Fatal("usage found in a body without one")
	}
}

// TestScanModelLinear guards against quadratic scanning: a body of many
// megabytes with an escape every few bytes scans in linear time.
func TestScanModelLinear(t *testing.T) {
	body := `{"messages":[{"content":"` + strings.Repeat(`line\n`, 800_000) + `"}],"model":"m"}`
	start := time.Now()
	if got, ok := modelOf([]byte(body)); !ok || got != "m" {
		t.Fatalf("got %q %v", got, ok)
	}
	if d := time.Since(start); d > 2*time.Second { // linear: a few ms
		t.Fatalf("scanning %d bytes took %s", len(body), d)
	}
}
