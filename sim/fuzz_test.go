package sim

import (
	"strings"
	"testing"
)

// FuzzParseRequest: any body gives a parsed request or an error naming a
// problem, never a panic; a parsed chat prompt ends with the assistant
// header, and the tokenizer covers every prompt byte.
func FuzzParseRequest(f *testing.F) {
	for _, s := range []string{
		`{"messages":[{"role":"user","content":"hi"}]}`,
		`{"model":"m","messages":[{"role":"system","content":null},{"role":"user","content":[{"type":"text","text":"a"},{"type":"image_url"}]}],"stream":true,"stream_options":{"include_usage":true},"max_tokens":3,"max_completion_tokens":2,"ignore_eos":true,"n":1}`,
		`{"prompt":"abc","max_tokens":1}`,
		`{"prompt":["abc"]}`,
		`{"messages":[{"role":"user","content":"\u00e9\ud83d\ude00"}]}`,
		`{`, `[]`, `null`, `{"messages":[1]}`, `{"max_tokens":1e3}`,
	} {
		f.Add([]byte(s), true)
		f.Add([]byte(s), false)
	}
	f.Fuzz(func(t *testing.T, body []byte, chat bool) {
		p, err := parseRequest(body, chat)
		if err != nil {
			if err.status != 400 || err.message == "" {
				t.Fatalf("error %+v", err)
			}
			if errorJSON(err) == nil {
				t.Fatal("no error body")
			}
			return
		}
		if p.prompt == "" {
			t.Fatal("parsed with an empty prompt")
		}
		if chat && !strings.HasSuffix(p.prompt, "<|assistant|>\n") {
			t.Fatalf("chat prompt %q lacks the assistant header", p.prompt)
		}
		if p.maxTokens < 0 {
			t.Fatalf("max tokens %d", p.maxTokens)
		}
		if n := len(tokenize(nil, p.prompt)); n != numTokens(len(p.prompt)) {
			t.Fatalf("%d tokens for %d bytes", n, len(p.prompt))
		}
	})
}
