package proxytest

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/sluice-proxy/sluice/proxy/internal/testhttp"
)

// chatReply is the part of a chat.completion the tests check.
type chatReply struct {
	ID                string `json:"id"`
	Object            string `json:"object"`
	Created           int64  `json:"created"`
	Model             string `json:"model"`
	SystemFingerprint string `json:"system_fingerprint"`
	Choices           []struct {
		Index   int `json:"index"`
		Message struct {
			Role    string `json:"role"`
			Content string `json:"content"`
		} `json:"message"`
		Text         string  `json:"text"`
		FinishReason *string `json:"finish_reason"`
	} `json:"choices"`
	Usage *struct {
		PromptTokens     int `json:"prompt_tokens"`
		CompletionTokens int `json:"completion_tokens"`
		TotalTokens      int `json:"total_tokens"`
	} `json:"usage"`
}

func TestChatCompletion(t *testing.T) {
	s := newTestServer(t, Options{Name: "up-a", Tokens: 3})
	c := newClient(t)
	f := func(body, wantModel, wantText, wantFinish string, wantCompletion int) {
		t.Helper()
		resp, b := do(t, c, http.MethodPost, s.URL+pathChat, body)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("status %d, body %s", resp.StatusCode, b)
		}
		if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
			t.Errorf("Content-Type %q", ct)
		}
		var r chatReply
		if err := json.Unmarshal(b, &r); err != nil {
			t.Fatal(err)
		}
		if r.Object != "chat.completion" || !strings.HasPrefix(r.ID, "chatcmpl-") || r.Created == 0 {
			t.Errorf("object %q id %q created %d", r.Object, r.ID, r.Created)
		}
		if r.Model != wantModel || r.SystemFingerprint != "up-a" {
			t.Errorf("model %q fingerprint %q, want %q, up-a", r.Model, r.SystemFingerprint, wantModel)
		}
		if len(r.Choices) != 1 {
			t.Fatalf("%d choices", len(r.Choices))
		}
		ch := r.Choices[0]
		if ch.Message.Role != "assistant" || ch.Message.Content != wantText || ch.FinishReason == nil || *ch.FinishReason != wantFinish {
			t.Errorf("choice %+v, want content %q finish %q", ch, wantText, wantFinish)
		}
		if r.Usage == nil || r.Usage.CompletionTokens != wantCompletion || r.Usage.PromptTokens != 5 ||
			r.Usage.TotalTokens != 5+wantCompletion {
			t.Errorf("usage %+v, want completion %d prompt 5", r.Usage, wantCompletion)
		}
	}
	f(chatBody, "m1", "tok0 tok1 tok2 ", "stop", 3)
	f(`{"max_tokens":2,`+chatBody[1:], "m1", "tok0 tok1 ", "length", 2)
	f(`{"max_completion_tokens":1,"max_tokens":2,`+chatBody[1:], "m1", "tok0 ", "length", 1)
	f(`{"max_tokens":0,"messages":[{"role":"user","content":"a b c d e"}]}`, DefaultModel, "tok0 tok1 tok2 ", "stop", 3)
	f(`{"max_tokens":99,"messages":[{"role":"user","content":"a b"},{"role":"assistant","content":null},{"role":"user","content":"c d e"}]}`, DefaultModel, "tok0 tok1 tok2 ", "stop", 3)
}

func TestTextCompletion(t *testing.T) {
	s := newTestServer(t, Options{})
	c := newClient(t)
	f := func(prompt string, wantPrompt int) {
		t.Helper()
		resp, b := do(t, c, http.MethodPost, s.URL+pathCompletions, `{"model":"m2","prompt":`+prompt+`}`)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("status %d, body %s", resp.StatusCode, b)
		}
		var r chatReply
		if err := json.Unmarshal(b, &r); err != nil {
			t.Fatal(err)
		}
		if r.Object != "text_completion" || !strings.HasPrefix(r.ID, "cmpl-") || r.Model != "m2" || r.SystemFingerprint != "" {
			t.Errorf("reply %s", b)
		}
		if len(r.Choices) != 1 || r.Choices[0].Text != completionText(DefaultTokens) || *r.Choices[0].FinishReason != "stop" {
			t.Errorf("choices in %s", b)
		}
		if r.Usage.PromptTokens != wantPrompt || r.Usage.CompletionTokens != DefaultTokens {
			t.Errorf("usage %+v, want prompt %d", r.Usage, wantPrompt)
		}
		if strings.Contains(string(b), "system_fingerprint") {
			t.Errorf("system_fingerprint sent without Options.Name: %s", b)
		}
	}
	f(`"one two three"`, 3)
	f(`["one two", "three"]`, 3)
	f(`[1, 2, 3, 4]`, 4)
	f(`[[1, 2], [3]]`, 3)
	f(`""`, 0)
}

func TestChatStream(t *testing.T) {
	s := newTestServer(t, Options{Tokens: 4, Name: "up-b"})
	c := newClient(t)
	f := func(extra string, includeUsage bool, wantTokens int) {
		t.Helper()
		resp, err := c.Post(s.URL+pathChat, "application/json", strings.NewReader(`{"stream":true,`+extra+chatBody[1:]))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "text/event-stream" {
			t.Fatalf("status %d, Content-Type %q", resp.StatusCode, resp.Header.Get("Content-Type"))
		}
		events, err := readSSE(t, resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		want := wantTokens + 1
		if includeUsage {
			want++
		}
		if len(events) != want {
			t.Fatalf("%d events, want %d: %q", len(events), want, events)
		}
		if events[len(events)-1] != "[DONE]" {
			t.Errorf("last event %q, want [DONE]", events[len(events)-1])
		}
		var id string
		var text strings.Builder
		for i, e := range events[:wantTokens] {
			m := decode(t, []byte(e))
			if m["object"] != "chat.completion.chunk" || m["model"] != "m1" || m["system_fingerprint"] != "up-b" {
				t.Errorf("chunk %d: %s", i, e)
			}
			if i == 0 {
				id, _ = m["id"].(string)
			} else if m["id"] != id {
				t.Errorf("chunk %d id %v, want %q", i, m["id"], id)
			}
			u, hasUsage := m["usage"]
			if hasUsage != includeUsage || u != nil {
				t.Errorf("chunk %d usage present=%v value=%v, want present=%v null", i, hasUsage, u, includeUsage)
			}
			ch := m["choices"].([]any)[0].(map[string]any)
			delta := ch["delta"].(map[string]any)
			text.WriteString(delta["content"].(string))
			if role, ok := delta["role"]; ok != (i == 0) || (ok && role != "assistant") {
				t.Errorf("chunk %d delta %v: role only in the first chunk", i, delta)
			}
			if fr := ch["finish_reason"]; (i == wantTokens-1) != (fr != nil) {
				t.Errorf("chunk %d finish_reason %v", i, fr)
			}
		}
		if got := text.String(); got != completionText(wantTokens) {
			t.Errorf("streamed text %q", got)
		}
		if includeUsage {
			m := decode(t, []byte(events[wantTokens]))
			if ch, ok := m["choices"].([]any); !ok || len(ch) != 0 {
				t.Errorf("usage chunk choices %v, want []", m["choices"])
			}
			u := m["usage"].(map[string]any)
			if u["completion_tokens"] != float64(wantTokens) || u["prompt_tokens"] != 5.0 || u["total_tokens"] != float64(5+wantTokens) {
				t.Errorf("usage chunk %s", events[wantTokens])
			}
			if m["id"] != id {
				t.Errorf("usage chunk id %v, want %q", m["id"], id)
			}
		}
	}
	f(``, false, 4)
	f(`"stream_options":{"include_usage":true},`, true, 4)
	f(`"stream_options":{"include_usage":false},"max_tokens":2,`, false, 2)
	f(`"stream_options":{"include_usage":true},"max_tokens":1,`, true, 1)
}

func TestTextCompletionStream(t *testing.T) {
	s := newTestServer(t, Options{Tokens: 2})
	resp, err := newClient(t).Post(s.URL+pathCompletions, "application/json",
		strings.NewReader(`{"prompt":"x","stream":true,"stream_options":{"include_usage":true}}`))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	events, err := readSSE(t, resp.Body)
	if err != nil || len(events) != 4 {
		t.Fatalf("events %q, err %v", events, err)
	}
	for i := range 2 {
		m := decode(t, []byte(events[i]))
		ch := m["choices"].([]any)[0].(map[string]any)
		if m["object"] != "text_completion" || ch["text"] != tokenText(i) || m["model"] != DefaultModel {
			t.Errorf("event %d: %s", i, events[i])
		}
	}
	if u := decode(t, []byte(events[2]))["usage"].(map[string]any); u["prompt_tokens"] != 1.0 {
		t.Errorf("usage %v", u)
	}
	if events[3] != "[DONE]" {
		t.Errorf("last event %q", events[3])
	}
}

func TestOpenAIBadRequests(t *testing.T) {
	s := newTestServer(t, Options{})
	c := newClient(t)
	f := func(path, body, wantParam, wantInMsg string) {
		t.Helper()
		resp, b := do(t, c, http.MethodPost, s.URL+path, body)
		if resp.StatusCode != http.StatusBadRequest {
			t.Fatalf("%s %s: status %d, want 400", path, body, resp.StatusCode)
		}
		var e struct {
			Error struct {
				Message string  `json:"message"`
				Type    string  `json:"type"`
				Param   *string `json:"param"`
				Code    *string `json:"code"`
			} `json:"error"`
		}
		if err := json.Unmarshal(b, &e); err != nil {
			t.Fatalf("error body %q: %v", b, err)
		}
		if e.Error.Type != "invalid_request_error" || !strings.Contains(e.Error.Message, wantInMsg) {
			t.Errorf("%s: error %+v, want message containing %q", body, e.Error, wantInMsg)
		}
		if (e.Error.Param == nil) != (wantParam == "") || (e.Error.Param != nil && *e.Error.Param != wantParam) {
			t.Errorf("%s: param %v, want %q", body, e.Error.Param, wantParam)
		}
	}
	f(pathChat, ``, "", "empty")
	f(pathChat, `{"model":`, "", "not a valid JSON")
	f(pathChat, `[1]`, "", "not a valid JSON")
	f(pathChat, `{"model":"m"}`, "messages", "required")
	f(pathChat, `{"messages":[]}`, "messages", "empty")
	f(pathChat, `{"messages":"hi"}`, "messages", "array")
	f(pathChat, `{"messages":[{"content":"hi"}]}`, "messages[0].role", "required")
	f(pathChat, `{"messages":[{"role":"user","content":7}]}`, "messages[0].content", "content parts")
	f(pathChat, `{"stream":"yes","messages":[{"role":"user","content":"hi"}]}`, "stream", "want bool")
	f(pathChat, `{"max_tokens":-1,"messages":[{"role":"user","content":"hi"}]}`, "max_tokens", ">= 0")
	f(pathChat, `{"max_tokens":1.5,"messages":[{"role":"user","content":"hi"}]}`, "max_tokens", "want int")
	f(pathChat, `{"stream_options":{"include_usage":1},"messages":[{"role":"user","content":"hi"}]}`, "stream_options.include_usage", "want bool")
	f(pathCompletions, `{"model":"m"}`, "prompt", "required")
	f(pathCompletions, `{"prompt":{"a":1}}`, "prompt", "must be a string")
	f(pathCompletions, `{"prompt":"x","max_completion_tokens":-3}`, "max_completion_tokens", ">= 0")
}

func TestModels(t *testing.T) {
	f := func(o Options, want ...string) {
		t.Helper()
		s := newTestServer(t, o)
		resp, b := do(t, newClient(t), http.MethodGet, s.URL+pathModels, "")
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("status %d", resp.StatusCode)
		}
		var list testhttp.ModelList
		if err := json.Unmarshal(b, &list); err != nil {
			t.Fatal(err)
		}
		if list.Object != "list" || len(list.Data) != len(want) {
			t.Fatalf("models %s, want %q", b, want)
		}
		for i, m := range list.Data {
			if m.ID != want[i] || m.Object != "model" || m.OwnedBy != "proxytest" || m.Created == 0 {
				t.Errorf("model %d: %+v, want id %q", i, m, want[i])
			}
		}
	}
	f(Options{}, DefaultModel)
	f(Options{Model: "only"}, "only")
	f(Options{Model: "x", Models: []string{"a", "b"}}, "a", "b")
}

func TestOpenAIMethodNotAllowed(t *testing.T) {
	s := newTestServer(t, Options{})
	c := newClient(t)
	resp, b := do(t, c, http.MethodGet, s.URL+pathChat, "")
	if resp.StatusCode != http.StatusMethodNotAllowed || resp.Header.Get("Allow") != "POST" {
		t.Errorf("GET chat: %d Allow %q", resp.StatusCode, resp.Header.Get("Allow"))
	}
	if e, ok := decode(t, b)["error"].(map[string]any); !ok || !strings.Contains(e["message"].(string), "GET") {
		t.Errorf("body %s", b)
	}
	resp, _ = do(t, c, http.MethodPost, s.URL+pathModels, "{}")
	if resp.StatusCode != http.StatusMethodNotAllowed || resp.Header.Get("Allow") != "GET, HEAD" {
		t.Errorf("POST models: %d Allow %q", resp.StatusCode, resp.Header.Get("Allow"))
	}
}
