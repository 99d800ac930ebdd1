package main

import (
	"strings"
	"testing"
)

func TestRequestCost(t *testing.T) {
	s := &settings{defaultEstimate: 100}
	for _, c := range []struct {
		body string
		want int64
	}{
		{`{"model":"m","max_tokens":50}`, 50},
		{`{"max_tokens":50,"max_completion_tokens":70}`, 70},
		{`{"max_completion_tokens":0,"max_tokens":30}`, 30},
		{`{"max_tokens":null}`, 100},
		{`{"max_tokens":"50"}`, 100},
		{`{"max_tokens":-4}`, 100},
		{`{"max_tokens":50,"n":3}`, 150},
		{`{"n":1000}`, 100 * maxChoices},
		{`{"max_tokens":9007199254740992,"n":128}`, maxLimit},
		{`not json`, 100},
		{`{"messages":[{"max_tokens":5}]}`, 100},
	} {
		if got := requestCost([]byte(c.body), s); got != c.want {
			t.Errorf("requestCost(%s) = %d, want %d", c.body, got, c.want)
		}
	}
	s.promptBytes = 4
	if got := requestCost([]byte(`{"max_tokens":10}`), s); got != 10+5 { // 17 bytes → 5 tokens
		t.Errorf("with prompt estimate: %d, want 15", got)
	}
}

func TestUsageTokens(t *testing.T) {
	for _, c := range []struct {
		doc  string
		want int64
		ok   bool
	}{
		{`{"id":"x","usage":{"prompt_tokens":3,"completion_tokens":8,"total_tokens":11}}`, 11, true},
		{`{"usage":{"prompt_tokens":3,"completion_tokens":8}}`, 11, true},
		{`{"usage":{"completion_tokens":8}}`, 8, true},
		{`{"usage":null}`, 0, false},
		{`{"usage":{}}`, 0, false},
		{`{"usage":{"total_tokens":-1,"prompt_tokens":-1}}`, 0, false},
		{`{"choices":[{"usage":{"total_tokens":5}}]}`, 0, false},
		{`{"usage":{"total_tokens":5}`, 0, false},
		{`[{"usage":{"total_tokens":5}}]`, 0, false},
	} {
		got, ok := usageTokens([]byte(c.doc))
		if got != c.want || ok != c.ok {
			t.Errorf("usageTokens(%s) = %d, %v; want %d, %v", c.doc, got, ok, c.want, c.ok)
		}
	}
	if n, ok := usageFromHeaders("12", " 30 "); !ok || n != 42 {
		t.Errorf("usageFromHeaders = %d, %v", n, ok)
	}
	if _, ok := usageFromHeaders("", "x"); ok {
		t.Error("usageFromHeaders accepted no counts")
	}
	if _, ok := usageFromHeaders("-1", "3"); ok {
		t.Error("usageFromHeaders accepted a negative count")
	}
}

const sseBody = "data: {\"choices\":[{\"delta\":{\"content\":\"a\"}}],\"usage\":null}\n\n" +
	"data: {\"choices\":[{\"delta\":{\"content\":\"b\"}}],\"usage\":null}\r\n\r\n" +
	": comment\n\n" +
	"data: {\"choices\":[],\"usage\":{\"prompt_tokens\":4,\"completion_tokens\":2,\"total_tokens\":6}}\n\n" +
	"data: [DONE]\n\n"

// TestUsageScannerSplits feeds a stream cut at every possible pair of
// places: the usage is found whatever the chunking.
func TestUsageScannerSplits(t *testing.T) {
	for i := 0; i <= len(sseBody); i++ {
		for j := i; j <= len(sseBody); j += 7 {
			u := usageScanner{sse: true}
			u.feed([]byte(sseBody[:i]), false)
			u.feed([]byte(sseBody[i:j]), false)
			u.feed([]byte(sseBody[j:]), true)
			if !u.found || u.tokens != 6 {
				t.Fatalf("split at %d,%d: found %v tokens %d", i, j, u.found, u.tokens)
			}
			if len(u.buf) != 0 {
				t.Fatalf("split at %d,%d: %d bytes kept after the end", i, j, len(u.buf))
			}
		}
	}
	// No trailing newline: the last line is scanned at end of stream.
	u := usageScanner{sse: true}
	u.feed([]byte(`data: {"usage":{"total_tokens":9}}`), true)
	if !u.found || u.tokens != 9 {
		t.Errorf("unterminated last line: %+v", u)
	}
}

func TestUsageScannerLimits(t *testing.T) {
	// An over-long line is skipped without holding it, and the scanner
	// recovers at the next line.
	u := usageScanner{sse: true}
	u.feed([]byte(`data: {"usage":{"total_tokens":1},"pad":"`), false)
	for range 3 {
		u.feed([]byte(strings.Repeat("x", maxSSELine/2)), false)
	}
	if len(u.buf) > maxSSELine {
		t.Fatalf("held %d bytes", len(u.buf))
	}
	u.feed([]byte("\"}\ndata: {\"usage\":{\"total_tokens\":2}}\n"), true)
	if !u.found || u.tokens != 2 {
		t.Errorf("after an over-long line: %+v", u)
	}
	// A JSON body in one piece, and in chunks.
	u = usageScanner{}
	u.feed([]byte(`{"usage":{"total_tokens":5}}`), true)
	if !u.found || u.tokens != 5 {
		t.Errorf("whole JSON: %+v", u)
	}
	u = usageScanner{}
	u.feed([]byte(`{"usage":{"tot`), false)
	u.feed([]byte(`al_tokens":7}}`), true)
	if !u.found || u.tokens != 7 {
		t.Errorf("chunked JSON: %+v", u)
	}
	u = usageScanner{}
	u.feed([]byte(`{"pad":"`+strings.Repeat("x", maxJSONBody)), false)
	u.feed([]byte(`","usage":{"total_tokens":7}}`), true)
	if u.found || !u.gaveUp || u.buf != nil {
		t.Errorf("over-long chunked JSON: found %v gaveUp %v", u.found, u.gaveUp)
	}
}

func TestIsEventStream(t *testing.T) {
	for ct, want := range map[string]bool{"text/event-stream": true, "Text/Event-Stream; charset=utf-8": true,
		"application/json": false, "": false} {
		if got := isEventStream(ct); got != want {
			t.Errorf("isEventStream(%q) = %v", ct, got)
		}
	}
}

// FuzzUsageScanner checks that chunking never changes what the scanner
// finds in an event stream, and that it never holds more than a line.
func FuzzUsageScanner(f *testing.F) {
	f.Add([]byte(sseBody), uint16(10), uint16(50))
	f.Add([]byte("data: {\"usage\":{\"total_tokens\":1}}"), uint16(3), uint16(4))
	f.Fuzz(func(t *testing.T, body []byte, a, b uint16) {
		whole := usageScanner{sse: true}
		whole.feed(body, true)
		i, j := int(a)%(len(body)+1), int(b)%(len(body)+1)
		if i > j {
			i, j = j, i
		}
		parts := usageScanner{sse: true}
		parts.feed(body[:i], false)
		parts.feed(body[i:j], false)
		parts.feed(body[j:], true)
		if whole.found != parts.found || whole.tokens != parts.tokens {
			t.Fatalf("%q split at %d,%d: whole %+v, parts %+v", body, i, j, whole, parts)
		}
		js := usageScanner{}
		js.feed(body[:i], false)
		js.feed(body[i:], true)
		want, ok := usageTokens(body)
		if js.found != ok || js.tokens != want {
			t.Fatalf("%q as JSON: %+v, usageTokens %d %v", body, js, want, ok)
		}
	})
}
