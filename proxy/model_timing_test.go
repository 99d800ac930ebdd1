package proxy

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/valyala/fasthttp"
)

// modelBenchBodies are request bodies of the shapes Sluice reads a model
// from: a short chat, escapes in the key and the value, a long chat with
// the model last, and a pre-tokenized prompt (many small values).
func modelBenchBodies() []struct{ name, body string } {
	tokens := make([]string, 64<<10)
	for i := range tokens {
		tokens[i] = strconv.Itoa(1000 + i%30000)
	}
	return []struct{ name, body string }{
		{"chat", `{"model":"llama-3-8b","messages":[{"role":"user","content":"hi"}],"stream":false}`},
		{"escaped", `{"messages":[{"role":"user","content":"a \"quoted\" word"}],"mod\u0065l":"ll\u0061ma","stream":true}`},
		// An 8 KiB prompt of 80-byte lines, as a client escapes them.
		{"text_8KiB", `{"model":"m","messages":[{"role":"user","content":"` + strings.Repeat(strings.Repeat("word ", 15)+`and a \"quote\".\n`, 8<<10/97) + `"}]}`},
		{"long_1MiB", `{"messages":[{"role":"user","content":"` + strings.Repeat(`line \"q\"\n`, 1<<20/11) + `"}],"model":"m"}`},
		{"tokens_64k", `{"prompt":[` + strings.Join(tokens, ",") + `],"model":"m","max_tokens":16}`},
	}
}

func BenchmarkFindModel(b *testing.B) {
	srv := &Server{cfg: NewConfig()}
	var req fasthttp.Request
	req.SetRequestURI("/v1/chat/completions")
	for _, bb := range modelBenchBodies() {
		b.Run(bb.name, func(b *testing.B) {
			rs := &requestState{srv: srv, body: []byte(bb.body)}
			rs.findModel(&req)
			if !rs.model.has {
				b.Fatal("no model")
			}
			b.SetBytes(int64(len(bb.body)))
			b.ReportAllocs()
			for b.Loop() {
				rs.model.reset()
				rs.findModel(&req)
			}
		})
	}
}

func BenchmarkUsage(b *testing.B) {
	set := newModelMetricSet(metrics.NewSet(), NewConfig())
	sse := []byte("data: {\"id\":\"c\",\"choices\":[],\"usage\":{\"prompt_tokens\":12,\"completion_tokens\":34,\"total_tokens\":46}}\n\n")
	body := []byte(`{"id":"x","choices":[{"message":{"role":"assistant","content":"` + strings.Repeat("word ", 400) +
		`"}}],"usage":{"prompt_tokens":5,"total_tokens":12,"completion_tokens":7},"system_fingerprint":"fp"}`)
	run := func(b *testing.B, isSSE bool, in []byte) {
		var u usageTracker
		b.SetBytes(int64(len(in)))
		b.ReportAllocs()
		for b.Loop() {
			u.reset()
			u.begin(set.other, time.Time{}, isSSE)
			u.observe(in)
			u.eof()
			if !u.haveUsage {
				b.Fatal("no usage")
			}
		}
	}
	b.Run("sse_line", func(b *testing.B) { run(b, true, sse) })
	b.Run("json_tail", func(b *testing.B) { run(b, false, body) })
}
