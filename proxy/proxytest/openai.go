package proxytest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// openAIRequest is what the server reads from a chat or text completion
// request. Other fields are accepted and ignored.
type openAIRequest struct {
	Model               string          `json:"model"`
	Messages            json.RawMessage `json:"messages"`
	Prompt              json.RawMessage `json:"prompt"`
	Stream              bool            `json:"stream"`
	StreamOptions       *streamOptions  `json:"stream_options"`
	MaxTokens           *int            `json:"max_tokens"`
	MaxCompletionTokens *int            `json:"max_completion_tokens"`
}

type streamOptions struct {
	IncludeUsage bool `json:"include_usage"`
}

type chatMessage struct {
	Role    string          `json:"role"`
	Content json.RawMessage `json:"content"`
}

// completionParams is a validated OpenAI request.
type completionParams struct {
	model        string // "" when the request named none
	stream       bool
	includeUsage bool
	maxTokens    int // 0: no limit
	promptTokens int // whitespace-separated words (or token ids) in the prompt
}

// requestError is a request the server rejects; param names the field.
type requestError struct {
	param string
	msg   string
}

func (e *requestError) Error() string { return e.msg }

func badField(param, format string, args ...any) *requestError {
	return &requestError{param: param, msg: "proxytest: " + param + ": " + fmt.Sprintf(format, args...)}
}

// decodeJSON unmarshals body into v, describing the problem and the field
// at fault when it cannot.
func decodeJSON(body []byte, v any) *requestError {
	if len(bytes.TrimSpace(body)) == 0 {
		return &requestError{msg: "proxytest: request body is empty, want a JSON object"}
	}
	err := json.Unmarshal(body, v)
	if err == nil {
		return nil
	}
	var typeErr *json.UnmarshalTypeError
	if errors.As(err, &typeErr) && typeErr.Field != "" {
		return &requestError{param: typeErr.Field,
			msg: fmt.Sprintf("proxytest: %s: got JSON %s, want %s", typeErr.Field, typeErr.Value, typeErr.Type)}
	}
	return &requestError{msg: fmt.Sprintf("proxytest: request body is not a valid JSON object: %v", err)}
}

// parseOpenAIRequest validates a chat (chat true) or text completion body.
func parseOpenAIRequest(body []byte, chat bool) (completionParams, *requestError) {
	var req openAIRequest
	if err := decodeJSON(body, &req); err != nil {
		return completionParams{}, err
	}
	p := completionParams{model: req.Model, stream: req.Stream}
	if req.StreamOptions != nil {
		p.includeUsage = req.StreamOptions.IncludeUsage
	}
	for _, f := range []struct {
		name string
		v    *int
	}{{"max_tokens", req.MaxTokens}, {"max_completion_tokens", req.MaxCompletionTokens}} {
		if f.v == nil {
			continue
		}
		if *f.v < 0 {
			return completionParams{}, badField(f.name, "is %d, must be >= 0", *f.v)
		}
		if *f.v > 0 && (p.maxTokens == 0 || *f.v < p.maxTokens) {
			p.maxTokens = *f.v
		}
	}
	var err *requestError
	if chat {
		p.promptTokens, err = countMessages(req.Messages)
	} else {
		p.promptTokens, err = countPrompt(req.Prompt)
	}
	if err != nil {
		return completionParams{}, err
	}
	return p, nil
}

func isNull(raw json.RawMessage) bool {
	return len(raw) == 0 || string(raw) == "null"
}

// countMessages checks a chat messages array and counts the words of its
// text content.
func countMessages(raw json.RawMessage) (int, *requestError) {
	if isNull(raw) {
		return 0, badField("messages", "is required")
	}
	var msgs []chatMessage
	if err := json.Unmarshal(raw, &msgs); err != nil {
		return 0, badField("messages", "must be an array of {role, content} objects: %v", err)
	}
	if len(msgs) == 0 {
		return 0, badField("messages", "is empty, want at least one message")
	}
	n := 0
	for i, m := range msgs {
		if m.Role == "" {
			return 0, badField(fmt.Sprintf("messages[%d].role", i), "is required")
		}
		c, err := countContent(m.Content)
		if err != nil {
			return 0, badField(fmt.Sprintf("messages[%d].content", i), "%v", err)
		}
		n += c
	}
	return n, nil
}

// countContent counts the words in a message content: a string, null, or
// an array of content parts (only "text" parts count).
func countContent(raw json.RawMessage) (int, error) {
	if isNull(raw) {
		return 0, nil
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return len(strings.Fields(s)), nil
	}
	var parts []struct {
		Type string `json:"type"`
		Text string `json:"text"`
	}
	if err := json.Unmarshal(raw, &parts); err != nil {
		return 0, errors.New("must be a string, an array of content parts or null")
	}
	n := 0
	for _, p := range parts {
		n += len(strings.Fields(p.Text))
	}
	return n, nil
}

// countPrompt checks a completion prompt (a string, an array of strings,
// an array of token ids or an array of arrays of token ids) and counts its
// words or token ids.
func countPrompt(raw json.RawMessage) (int, *requestError) {
	if isNull(raw) {
		return 0, badField("prompt", "is required")
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return len(strings.Fields(s)), nil
	}
	var strs []string
	if json.Unmarshal(raw, &strs) == nil {
		n := 0
		for _, s := range strs {
			n += len(strings.Fields(s))
		}
		return n, nil
	}
	var ids []int64
	if json.Unmarshal(raw, &ids) == nil {
		return len(ids), nil
	}
	var batches [][]int64
	if json.Unmarshal(raw, &batches) == nil {
		n := 0
		for _, b := range batches {
			n += len(b)
		}
		return n, nil
	}
	return 0, badField("prompt", "must be a string, an array of strings, an array of token ids or an array of arrays of token ids")
}

// OpenAI reply shapes.
type (
	openAIError struct {
		Error openAIErrorBody `json:"error"`
	}
	openAIErrorBody struct {
		Message string  `json:"message"`
		Type    string  `json:"type"`
		Param   *string `json:"param"`
		Code    *string `json:"code"`
	}
	usage struct {
		PromptTokens     int `json:"prompt_tokens"`
		CompletionTokens int `json:"completion_tokens"`
		TotalTokens      int `json:"total_tokens"`
	}
	completion struct {
		ID                string          `json:"id"`
		Object            string          `json:"object"`
		Created           int64           `json:"created"`
		Model             string          `json:"model"`
		SystemFingerprint string          `json:"system_fingerprint,omitempty"`
		Choices           []choice        `json:"choices"`
		Usage             json.RawMessage `json:"usage,omitempty"` // absent, null or a usage
	}
	choice struct {
		Index        int          `json:"index"`
		Message      *chatContent `json:"message,omitempty"` // chat.completion
		Delta        *chatContent `json:"delta,omitempty"`   // chat.completion.chunk
		Text         *string      `json:"text,omitempty"`    // text_completion
		Logprobs     *struct{}    `json:"logprobs"`
		FinishReason *string      `json:"finish_reason"`
	}
	chatContent struct {
		Role    string `json:"role,omitempty"`
		Content string `json:"content"`
	}
	model struct {
		ID      string `json:"id"`
		Object  string `json:"object"`
		Created int64  `json:"created"`
		OwnedBy string `json:"owned_by"`
	}
	modelList struct {
		Object string  `json:"object"`
		Data   []model `json:"data"`
	}
)

var nullJSON = json.RawMessage("null")

// openAI answers POST /v1/chat/completions (chat) or /v1/completions.
func (x *exchange) openAI(chat bool) {
	p, err := parseOpenAIRequest(x.body, chat)
	if err != nil {
		x.fail(http.StatusBadRequest, err.param, err.msg)
		return
	}
	n, capped := x.opts.tokensFor(p.maxTokens)
	finish := "stop"
	if capped {
		finish = "length"
	}
	u := mustJSON(usage{PromptTokens: p.promptTokens, CompletionTokens: n, TotalTokens: p.promptTokens + n})
	seq := strconv.FormatInt(x.s.seq.Add(1), 10)
	base := completion{
		Object:            "text_completion",
		ID:                "cmpl-proxytest-" + seq,
		Created:           time.Now().Unix(),
		Model:             p.model,
		SystemFingerprint: x.opts.Name,
	}
	if chat {
		base.ID = "chatcmpl-proxytest-" + seq
		base.Object = "chat.completion"
	}
	if base.Model == "" {
		base.Model = x.opts.Model
	}
	if !p.stream {
		c := base
		text := completionText(n)
		ch := choice{FinishReason: &finish}
		if chat {
			ch.Message = &chatContent{Role: "assistant", Content: text}
		} else {
			ch.Text = &text
		}
		c.Choices = []choice{ch}
		c.Usage = u
		x.reply("application/json", mustJSON(c), n)
		return
	}
	if chat {
		base.Object = "chat.completion.chunk"
	}
	if p.includeUsage {
		base.Usage = nullJSON
	}
	event := func(i int) []byte {
		c := base
		text := tokenText(i)
		ch := choice{}
		if i == n-1 {
			ch.FinishReason = &finish
		}
		if chat {
			ch.Delta = &chatContent{Content: text}
			if i == 0 {
				ch.Delta.Role = "assistant"
			}
		} else {
			ch.Text = &text
		}
		c.Choices = []choice{ch}
		return mustJSON(c)
	}
	tail := [][]byte{[]byte("[DONE]")}
	if p.includeUsage {
		c := base
		c.Choices = []choice{}
		c.Usage = u
		tail = [][]byte{mustJSON(c), []byte("[DONE]")}
	}
	x.stream(n, event, tail...)
}

// models answers GET /v1/models.
func (x *exchange) models() {
	list := modelList{Object: "list", Data: make([]model, len(x.opts.Models))}
	for i, id := range x.opts.Models {
		list.Data[i] = model{ID: id, Object: "model", Created: x.s.created, OwnedBy: "proxytest"}
	}
	x.reply("application/json", mustJSON(list), 0)
}
