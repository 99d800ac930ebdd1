package sim

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
)

// fast is a config whose simulated time runs a million times faster than
// the wall: HTTP tests finish at once without a manual step driver.
var fast = Config{TimeScale: 1e6}

func startServer(t *testing.T, cfg Config) (*Engine, *httptest.Server) {
	t.Helper()
	e, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(e.Handler())
	t.Cleanup(func() { e.Close(); srv.Close() })
	return e, srv
}

func post(t *testing.T, url, body string) (int, []byte) {
	t.Helper()
	resp, err := http.Post(url, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, b
}

type completion struct {
	ID      string
	Object  string
	Model   string
	Choices []struct {
		Index        int
		Text         *string
		Message      *struct{ Role, Content string }
		Delta        *struct{ Role, Content *string }
		FinishReason *string `json:"finish_reason"`
	}
	Usage *struct {
		PromptTokens     int `json:"prompt_tokens"`
		CompletionTokens int `json:"completion_tokens"`
		TotalTokens      int `json:"total_tokens"`
	}
}

func TestChatNonStreaming(t *testing.T) {
	_, srv := startServer(t, fast)
	code, b := post(t, srv.URL+"/v1/chat/completions",
		`{"model":"sim-llama-3-8b","messages":[{"role":"system","content":"Be brief."},{"role":"user","content":[{"type":"text","text":"hi"}]}],"max_tokens":7,"ignore_eos":true}`)
	if code != 200 {
		t.Fatalf("%d %s", code, b)
	}
	var c completion
	if err := json.Unmarshal(b, &c); err != nil {
		t.Fatal(err, string(b))
	}
	prompt := "<|system|>\nBe brief.\n<|user|>\nhi\n<|assistant|>\n"
	if c.Object != "chat.completion" || len(c.Choices) != 1 || c.Choices[0].Message == nil ||
		c.Choices[0].Message.Role != "assistant" || len(c.Choices[0].Message.Content) != 28 ||
		*c.Choices[0].FinishReason != "length" || c.Usage == nil ||
		c.Usage.PromptTokens != numTokens(len(prompt)) || c.Usage.CompletionTokens != 7 || c.Usage.TotalTokens != c.Usage.PromptTokens+7 {
		t.Fatalf("unexpected completion %s", b)
	}
}

func TestCompletionsNonStreamingAndDeterminism(t *testing.T) {
	_, srv := startServer(t, fast)
	body := `{"prompt":"Once upon a time","max_completion_tokens":5}`
	_, b1 := post(t, srv.URL+"/v1/completions", body)
	code, b2 := post(t, srv.URL+"/v1/completions", body)
	var c1, c2 completion
	if err := json.Unmarshal(b1, &c1); err != nil || code != 200 {
		t.Fatal(code, err, string(b1))
	}
	_ = json.Unmarshal(b2, &c2)
	if c1.Object != "text_completion" || c1.Choices[0].Text == nil || len(*c1.Choices[0].Text) != 20 ||
		c1.Usage.PromptTokens != 4 || c1.Usage.CompletionTokens != 5 {
		t.Fatalf("unexpected completion %s", b1)
	}
	if *c1.Choices[0].Text != *c2.Choices[0].Text {
		t.Errorf("same request, different text: %q and %q", *c1.Choices[0].Text, *c2.Choices[0].Text)
	}
}

// readSSE returns the data payloads of an event stream.
func readSSE(t *testing.T, r io.Reader) []string {
	t.Helper()
	var out []string
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		if l, ok := strings.CutPrefix(sc.Text(), "data: "); ok {
			out = append(out, l)
		} else if sc.Text() != "" {
			t.Fatalf("unexpected SSE line %q", sc.Text())
		}
	}
	return out
}

func TestChatStreaming(t *testing.T) {
	_, srv := startServer(t, fast)
	for _, includeUsage := range []bool{false, true} {
		body := `{"messages":[{"role":"user","content":"stream please"}],"max_tokens":6,"ignore_eos":true,"stream":true`
		if includeUsage {
			body += `,"stream_options":{"include_usage":true}`
		}
		resp, err := http.Post(srv.URL+"/v1/chat/completions", "application/json", strings.NewReader(body+"}"))
		if err != nil {
			t.Fatal(err)
		}
		if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
			t.Fatalf("content type %q", ct)
		}
		events := readSSE(t, resp.Body)
		resp.Body.Close()
		want := 1 + 6 + 1 // role, tokens, [DONE]
		if includeUsage {
			want++
		}
		if len(events) != want || events[len(events)-1] != "[DONE]" {
			t.Fatalf("include_usage %v: %d events %q", includeUsage, len(events), events)
		}
		var text strings.Builder
		for i, ev := range events[:len(events)-1] {
			var c completion
			if err := json.Unmarshal([]byte(ev), &c); err != nil {
				t.Fatal(err, ev)
			}
			hasUsageKey := strings.Contains(ev, `"usage":`)
			if includeUsage != hasUsageKey {
				t.Fatalf("event %d: usage key present %v with include_usage %v: %s", i, hasUsageKey, includeUsage, ev)
			}
			if c.Object != "chat.completion.chunk" {
				t.Fatalf("event %d object %q", i, c.Object)
			}
			switch {
			case i == 0:
				if len(c.Choices) != 1 || *c.Choices[0].Delta.Role != "assistant" {
					t.Fatalf("first event %s", ev)
				}
			case i <= 6:
				if len(c.Choices) != 1 || c.Choices[0].Delta.Content == nil || len(*c.Choices[0].Delta.Content) != 4 {
					t.Fatalf("token event %s", ev)
				}
				text.WriteString(*c.Choices[0].Delta.Content)
				if fin := c.Choices[0].FinishReason; (i == 6) != (fin != nil) || fin != nil && *fin != "length" {
					t.Fatalf("event %d finish_reason %v", i, fin)
				}
			default:
				if len(c.Choices) != 0 || c.Usage == nil || c.Usage.CompletionTokens != 6 || c.Usage.TotalTokens != c.Usage.PromptTokens+6 {
					t.Fatalf("usage event %s", ev)
				}
			}
		}
		_, b := post(t, srv.URL+"/v1/chat/completions", `{"messages":[{"role":"user","content":"stream please"}],"max_tokens":6,"ignore_eos":true}`)
		var whole completion
		_ = json.Unmarshal(b, &whole)
		if whole.Choices[0].Message.Content != text.String() {
			t.Errorf("stream %q and whole answer %q differ", text.String(), whole.Choices[0].Message.Content)
		}
	}
}

func TestCompletionsStreaming(t *testing.T) {
	_, srv := startServer(t, fast)
	resp, err := http.Post(srv.URL+"/v1/completions", "application/json",
		strings.NewReader(`{"prompt":["abc"],"max_tokens":3,"ignore_eos":true,"stream":true}`))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	events := readSSE(t, resp.Body)
	if len(events) != 4 || events[3] != "[DONE]" || !strings.Contains(events[0], `"object":"text_completion"`) ||
		!strings.Contains(events[2], `"finish_reason":"length"`) {
		t.Fatalf("events %q", events)
	}
}

// The official Go SDK reads the answers, streamed and not, and the model list.
func TestOpenAISDK(t *testing.T) {
	_, srv := startServer(t, fast)
	client := openai.NewClient(option.WithBaseURL(srv.URL+"/v1/"), option.WithAPIKey("x"), option.WithMaxRetries(0))
	ctx := context.Background()
	params := openai.ChatCompletionNewParams{
		Model:     DefaultModel,
		Messages:  []openai.ChatCompletionMessageParamUnion{openai.UserMessage("hi")},
		MaxTokens: openai.Int(5),
	}
	cc, err := client.Chat.Completions.New(ctx, params)
	if err != nil {
		t.Fatal(err)
	}
	if len(cc.Choices) != 1 || cc.Usage.CompletionTokens != 5 || len(cc.Choices[0].Message.Content) != 20 {
		t.Fatalf("completion %+v", cc)
	}
	params.StreamOptions = openai.ChatCompletionStreamOptionsParam{IncludeUsage: openai.Bool(true)}
	stream := client.Chat.Completions.NewStreaming(ctx, params)
	var acc openai.ChatCompletionAccumulator
	for stream.Next() {
		acc.AddChunk(stream.Current())
	}
	if err := stream.Err(); err != nil {
		t.Fatal(err)
	}
	if acc.Choices[0].Message.Content != cc.Choices[0].Message.Content || acc.Usage.CompletionTokens != 5 {
		t.Fatalf("stream %+v", acc.ChatCompletion)
	}
	models, err := client.Models.List(ctx)
	if err != nil || len(models.Data) != 1 || models.Data[0].ID != DefaultModel {
		t.Fatalf("models: %v %+v", err, models)
	}
}

func TestModelsAndHealth(t *testing.T) {
	e, srv := startServer(t, Config{Model: "m-1", TimeScale: 1e6})
	resp, err := http.Get(srv.URL + "/v1/models")
	if err != nil {
		t.Fatal(err)
	}
	var list struct {
		Object string
		Data   []struct {
			ID, Object string
			OwnedBy    string `json:"owned_by"`
		}
	}
	err = json.NewDecoder(resp.Body).Decode(&list)
	resp.Body.Close()
	if err != nil || list.Object != "list" || len(list.Data) != 1 || list.Data[0].ID != "m-1" || list.Data[0].Object != "model" {
		t.Fatalf("models: %v %+v", err, list)
	}
	health := func() int {
		resp, err := http.Get(srv.URL + "/health")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if c := health(); c != 200 {
		t.Fatalf("health %d", c)
	}
	e.Close()
	if c := health(); c != 503 {
		t.Fatalf("health after Close %d, want 503", c)
	}
	if code, b := post(t, srv.URL+"/v1/completions", `{"prompt":"x"}`); code != 503 || !strings.Contains(string(b), "closed") {
		t.Fatalf("request after Close: %d %s", code, b)
	}
}

// Bad requests get an OpenAI error body naming the problem.
func TestBadRequests(t *testing.T) {
	_, srv := startServer(t, Config{TimeScale: 1e6, NumBlocks: 64})
	for _, tc := range []struct {
		path, body string
		code       int
		param, msg string
	}{
		{"chat/completions", `{`, 400, "", "not valid JSON"},
		{"chat/completions", `[1]`, 400, "", "JSON object"},
		{"chat/completions", `{}`, 400, "messages", "messages is required"},
		{"chat/completions", `{"messages":"hi"}`, 400, "messages", "must be an array"},
		{"chat/completions", `{"messages":[]}`, 400, "messages", "must not be empty"},
		{"chat/completions", `{"messages":[{"content":"x"}]}`, 400, "messages[0].role", "role"},
		{"chat/completions", `{"messages":[{"role":"user","content":5}]}`, 400, "messages[0].content", "content"},
		{"chat/completions", `{"messages":[{"role":"user","content":[{"type":"text","text":1}]}]}`, 400, "messages[0].content[0].text", "text"},
		{"chat/completions", `{"messages":[{"role":"user","content":"x"}],"max_tokens":0}`, 400, "max_tokens", "at least 1"},
		{"chat/completions", `{"messages":[{"role":"user","content":"x"}],"max_completion_tokens":"9"}`, 400, "max_completion_tokens", "integer"},
		{"chat/completions", `{"messages":[{"role":"user","content":"x"}],"stream":"yes"}`, 400, "stream", "boolean"},
		{"chat/completions", `{"messages":[{"role":"user","content":"x"}],"stream_options":{"include_usage":1}}`, 400, "stream_options.include_usage", "boolean"},
		{"chat/completions", `{"messages":[{"role":"user","content":"x"}],"n":2}`, 400, "n", "n must be 1"},
		{"chat/completions", `{"model":"gpt-9","messages":[{"role":"user","content":"x"}]}`, 404, "model", "gpt-9"},
		{"chat/completions", `{"messages":[{"role":"user","content":"x"}],"max_tokens":5000}`, 400, "max_tokens", "maximum context length is 1024"},
		{"completions", `{"prompt":""}`, 400, "prompt", "must not be empty"},
		{"completions", `{"prompt":["a","b"]}`, 400, "prompt", "exactly one"},
		{"completions", `{"prompt":[1,2]}`, 400, "prompt", "string"},
	} {
		code, b := post(t, srv.URL+"/v1/"+tc.path, tc.body)
		checkErrorBody(t, tc.body, code, b, tc.code, tc.param, tc.msg)
	}
	big := `{"prompt":"` + strings.Repeat("x", maxBody) + `"}`
	code, b := post(t, srv.URL+"/v1/completions", big)
	checkErrorBody(t, "a body over the limit", code, b, 413, "", "over 2000000 bytes")
}

// checkErrorBody checks an OpenAI error answer: status, code, param and
// a message containing wantMsg.
func checkErrorBody(t *testing.T, what string, code int, b []byte, wantCode int, wantParam, wantMsg string) {
	t.Helper()
	var eb struct {
		Error struct {
			Message, Type string
			Param         *string
			Code          int
		}
	}
	if err := json.Unmarshal(b, &eb); err != nil {
		t.Errorf("%s: error body not JSON: %s", what, b)
		return
	}
	param := ""
	if eb.Error.Param != nil {
		param = *eb.Error.Param
	}
	if code != wantCode || eb.Error.Code != wantCode || param != wantParam || !strings.Contains(eb.Error.Message, wantMsg) {
		t.Errorf("%s: %d %s; want %d, param %q, message with %q", what, code, b, wantCode, wantParam, wantMsg)
	}
}
