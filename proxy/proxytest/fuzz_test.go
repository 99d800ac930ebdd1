package proxytest

import (
	"strings"
	"testing"
)

// FuzzParseOpenAIRequest checks the OpenAI body parser never panics, that
// an accepted body yields sane parameters, and that a rejection says why.
func FuzzParseOpenAIRequest(f *testing.F) {
	for _, seed := range []string{
		chatBody,
		`{"messages":[{"role":"user","content":null}],"stream":true,"stream_options":{"include_usage":true}}`,
		`{"prompt":[[1,2],[3]],"max_tokens":3,"max_completion_tokens":2}`,
		`{"prompt":["a b","c"]}`,
		`{"messages":[{"role":"user","content":[{"type":"image_url"},{"type":"text","text":"x y"}]}]}`,
		`{"max_tokens":-1}`, `[]`, `null`, `{"messages":{}}`, `{"prompt":1e400}`, "\xff",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		for _, chat := range []bool{true, false} {
			p, err := parseOpenAIRequest(body, chat)
			if err != nil {
				if !strings.HasPrefix(err.msg, "proxytest: ") {
					t.Errorf("error without package prefix: %q", err.msg)
				}
				continue
			}
			if p.maxTokens < 0 || p.promptTokens < 0 {
				t.Errorf("accepted %q with maxTokens %d promptTokens %d", body, p.maxTokens, p.promptTokens)
			}
			o := Options{}.withDefaults()
			if n, _ := o.tokensFor(p.maxTokens); n < 1 || n > o.Tokens {
				t.Errorf("tokensFor(%d) = %d", p.maxTokens, n)
			}
		}
	})
}

// FuzzParseTGIRequest does the same for TGI generate bodies.
func FuzzParseTGIRequest(f *testing.F) {
	for _, seed := range []string{
		`{"inputs":"hi there","parameters":{"max_new_tokens":2,"details":true}}`,
		`{"inputs":""}`, `{"inputs":"x","parameters":null}`, `{"parameters":{}}`, `{"inputs":1}`, ``,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		p, err := parseTGIRequest(body)
		if err != nil {
			if !strings.HasPrefix(err.msg, "proxytest: ") {
				t.Errorf("error without package prefix: %q", err.msg)
			}
			return
		}
		if p.maxNewTokens < 0 || p.inputTokens < 0 {
			t.Errorf("accepted %q with %+v", body, p)
		}
	})
}
