package proxy

import (
	"bytes"
	"encoding/json"
	"math"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/VictoriaMetrics/metrics"
	"github.com/valyala/fastjson"
)

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
	// An over-long line is dropped without growing the carry past its bound,
	// whether it straddles chunks or comes in one.
	long := "data: {\"x\":\"" + strings.Repeat("y", maxSSELine) + "\",\"usage\":{\"prompt_tokens\":1,\"completion_tokens\":1}}\n"
	u = usageTracker{}
	u.begin(set.other, time.Time{}, true)
	for i := 0; i < len(long); i += 1000 {
		u.observe([]byte(long[i:min(i+1000, len(long))]))
		if len(u.carry) > maxSSELine {
			t.Fatalf("carry grew to %d", len(u.carry))
		}
	}
	u.observe([]byte(long))
	if u.haveUsage {
		t.Fatal("usage read from an over-long line")
	}
	u.observe([]byte(stream))
	if !u.haveUsage || u.prompt != 12 {
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

// TestUsageTrackerCounts pins what counts as usage in an SSE event.
func TestUsageTrackerCounts(t *testing.T) {
	set := newModelMetricSet(metrics.NewSet(), NewConfig())
	for _, tc := range []struct {
		data    string
		ok      bool
		p, c    uint64
		comment string
	}{
		{`{"usage":{"prompt_tokens":3,"completion_tokens":4}}`, true, 3, 4, "plain"},
		{`{"usage":{"completion_tokens":4,"prompt_tokens":3,"prompt_tokens":9}}`, true, 9, 4, "the last duplicate wins"},
		{`{"usage":{"prompt_tokens":1,"completion_tokens":1},"usage":{"prompt_tokens":2,"completion_tokens":3}}`, true, 2, 3, "the last usage wins"},
		{`{"usage":{"prompt_tokens":1,"completion_tokens":1},"usage":null}`, false, 0, 0, "a last null usage has none"},
		{`{"us\u0061ge":{"prompt_\u0074okens":5,"completion_tokens":6},"x":"\"usage"}`, true, 5, 6, "escaped keys"},
		{`{"x":{"usage":{"prompt_tokens":1,"completion_tokens":1}}}`, false, 0, 0, "nested usage is not the event's"},
		{`{"usage":{"prompt_tokens":1.0,"completion_tokens":1}}`, false, 0, 0, "a fraction"},
		{`{"usage":{"prompt_tokens":-1,"completion_tokens":1}}`, false, 0, 0, "a sign"},
		{`{"usage":{"prompt_tokens":"1","completion_tokens":1}}`, false, 0, 0, "a string"},
		{`{"usage":{"prompt_tokens":9223372036854775808,"completion_tokens":1}}`, false, 0, 0, "past MaxInt64"},
		{`{"usage":{"prompt_tokens":9223372036854775807,"completion_tokens":0}}`, true, math.MaxInt64, 0, "MaxInt64"},
		{`{"usage":{"prompt_tokens":1}}`, false, 0, 0, "one count"},
		{`{"usage":{"prompt_tokens":1,"completion_tokens":1}`, false, 0, 0, "truncated"},
		{`["usage"]`, false, 0, 0, "not an object"},
	} {
		var u usageTracker
		u.begin(set.other, time.Time{}, true)
		u.observe([]byte("data: " + tc.data + "\n"))
		u.eof()
		if u.haveUsage != tc.ok || u.prompt != tc.p || u.completion != tc.c {
			t.Errorf("%s: %s: usage %v %d %d", tc.comment, tc.data, u.haveUsage, u.prompt, u.completion)
		}
	}
}

// FuzzUsageSSE checks an SSE event's usage against encoding/json: on a
// valid JSON object that mentions "usage", the tracker reads exactly the
// counts encoding/json finds in its top-level usage (the last member of
// each name). The same bytes as a JSON body's tail must never panic.
func FuzzUsageSSE(f *testing.F) {
	for _, s := range []string{
		`{"choices":[],"usage":{"prompt_tokens":12,"completion_tokens":34,"total_tokens":46}}`,
		`{"usage":null}`,
		`{"usage":{"prompt_tokens":1,"completion_tokens":1},"usage":{"prompt_tokens":2}}`,
		`{"us\u0061ge":{"prompt_tokens":5,"completion_tokens":6}}`,
		`{"a":"\"usage\": {\"prompt_tokens\":1,\"completion_tokens\":2}","usage":{"prompt_tokens":1e2,"completion_tokens":3}}`,
		`{"usage":{"prompt_tokens":18446744073709551616,"completion_tokens":0}}`,
	} {
		f.Add([]byte(s))
	}
	set := newModelMetricSet(metrics.NewSet(), NewConfig())
	f.Fuzz(func(t *testing.T, d []byte) {
		var tail usageTracker
		tail.begin(set.other, time.Time{}, false)
		tail.observe(d)
		tail.eof()

		if bytes.ContainsAny(d, "\r\n") {
			return // not one SSE line
		}
		var u usageTracker
		u.begin(set.other, time.Time{}, true)
		u.observe(append([]byte("data: "), d...))
		u.eof()
		var m map[string]json.RawMessage
		if !utf8.Valid(d) || json.Unmarshal(d, &m) != nil || m == nil || len(d) > maxSSELine {
			return
		}
		if _, err := new(fastjson.Parser).ParseBytes(d); err != nil {
			if depth(d) >= fastjson.MaxDepth {
				return // fastjson's limit; encoding/json's is 10000
			}
			t.Fatalf("fastjson rejects %q, which encoding/json accepts: %v", d, err)
		}
		var wantP, wantC uint64
		var want bool
		if bytes.Contains(d, strUsage) {
			var um map[string]json.RawMessage
			if json.Unmarshal(m["usage"], &um) == nil {
				var okP, okC bool
				wantP, okP = count(um["prompt_tokens"])
				wantC, okC = count(um["completion_tokens"])
				want = okP && okC
			}
		}
		if u.haveUsage != want || want && (u.prompt != wantP || u.completion != wantC) {
			t.Fatalf("%q: usage %v %d %d; encoding/json %v %d %d", d, u.haveUsage, u.prompt, u.completion, want, wantP, wantC)
		}
	})
}

// count is tokenCount by other means.
func count(raw json.RawMessage) (uint64, bool) {
	n, err := strconv.ParseUint(string(raw), 10, 64)
	return n, err == nil && n <= math.MaxInt64
}

// depth returns how deep b's brackets nest, outside strings.
func depth(b []byte) int {
	d, maxD, inStr := 0, 0, false
	for i := 0; i < len(b); i++ {
		switch c := b[i]; {
		case inStr && c == '\\':
			i++
		case c == '"':
			inStr = !inStr
		case !inStr && (c == '{' || c == '['):
			d++
			maxD = max(maxD, d)
		case !inStr && (c == '}' || c == ']'):
			d--
		}
	}
	return maxD
}
