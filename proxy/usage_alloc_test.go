//go:build !race

package proxy

import (
	"strings"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/sluice-proxy/sluice/proxy/internal/jsonspan"
	"github.com/valyala/fastjson"
)

// TestAllocsUpstreamsJSON asserts that the plugins' snapshot allocates
// nothing when dst has room, and that reading a request's model (escapes
// decoded by the pooled fastjson parser) does not either.
func TestAllocsUpstreamsJSON(t *testing.T) {
	ps, err := newPools(NewConfig().WithUpstreamConfig(UpstreamConfig{Name: "p", LBPolicy: LBLeastQueue, MetricsPath: "/metrics",
		MaxBatchSize: 4, Endpoints: []string{"http://127.0.0.1:10001", "http://127.0.0.1:10002", "http://127.0.0.1:10003"}}))
	if err != nil {
		t.Fatal(err)
	}
	defer ps.Close()
	buf := make([]byte, 0, 4096)
	if n := testing.AllocsPerRun(1000, func() { buf = appendPoolsJSON(buf[:0], ps) }); n != 0 {
		t.Fatalf("appendJSON: %v allocs", n)
	}
	body := []byte(`{"messages":[{"role":"user","content":"a \"quoted\" word"}],"mod\u0065l":"ll\u0061ma","stream":true}`)
	var dec fastjson.Parser
	if n := testing.AllocsPerRun(1000, func() {
		start, end, ok := jsonspan.StringMember(&dec, body, "model")
		if !ok {
			t.Fatal("no model")
		}
		if name, _ := jsonspan.DecodeString(&dec, body[start:end]); string(name) != "llama" {
			t.Fatalf("model %q", name)
		}
	}); n != 0 {
		t.Fatalf("scanModel: %v allocs", n)
	}
}

// TestAllocsUsage asserts that reading usage from SSE events and from a
// JSON body's tail allocates nothing once the tracker's parser is warm.
func TestAllocsUsage(t *testing.T) {
	set := newModelMetricSet(metrics.NewSet(), NewConfig())
	sse := []byte("data: {\"choices\":[{\"delta\":{\"content\":\"x\"}}],\"usage\":{\"prompt_tokens\":12,\"completion_tokens\":34}}\n\n" +
		"data: {\"choices\":[],\"us\\u0061ge\":{\"prompt_tokens\":13,\"completion_tokens\":35},\"x\":\"\\\"usage\"}\n\ndata: [DONE]\n\n")
	body := []byte(`{"choices":[{"message":{"content":"hi \"usage\": {}"}}],"usage":{"prompt_tokens":5,"completion_tokens":7}}`)
	var u usageTracker
	for _, tc := range []struct {
		sse  bool
		in   []byte
		want uint64
	}{{true, sse, 13}, {false, body, 5}} {
		run := func() {
			u.reset()
			u.begin(set.other, time.Time{}, tc.sse)
			u.observe(tc.in)
			u.eof()
			if !u.haveUsage || u.prompt != tc.want {
				t.Fatalf("usage %v %d", u.haveUsage, u.prompt)
			}
		}
		run()
		if n := testing.AllocsPerRun(1000, run); n != 0 {
			t.Fatalf("sse=%v: %v allocs", tc.sse, n)
		}
	}
}

// TestAllocsModelHotPath is TestAllocsProxyHotPath for an OpenAI request:
// reading the model, choosing the pool by it, selecting the endpoint and
// following the answer for usage add no allocation to fasthttp's own.
func TestAllocsModelHotPath(t *testing.T) {
	h := newHotPath(t)
	h.req.Header.SetMethod("POST")
	h.req.SetRequestURI("/v1/chat/completions")
	h.req.Header.SetContentType("application/json")
	h.req.SetBodyString(`{"model":"m","messages":[{"role":"user","content":"hi"}],"stream":false}`)
	body := append([]byte(nil), h.req.Body()...)
	reset := func() {
		h.req.SetBody(body)
		h.req.Header.SetContentLength(len(body)) // as a parsed request has
	}
	reset()
	for i := 0; i < 10; i++ {
		h.do(t)
		reset()
	}
	got := testing.AllocsPerRun(500, func() { h.do(t); reset() })
	base := h.baselineAllocs(t, reset)
	if got > base {
		t.Fatalf("OpenAI request: %v allocs/op, fasthttp alone %v", got, base)
	}
	if !strings.Contains(metricsOf(h.srv), `sluice_responses_without_usage_total{model="m"}`) {
		t.Fatal("the model's metrics were not used")
	}
}

func metricsOf(s *Server) string {
	var b strings.Builder
	s.WriteMetrics(&b)
	return b.String()
}
