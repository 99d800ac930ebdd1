package sim

import (
	"strings"

	"github.com/valyala/fastjson"
)

// apiError is an OpenAI-style error: HTTP status, message and the
// parameter it is about.
type apiError struct {
	status  int
	message string
	param   string
	typ     string
}

func (e *apiError) Error() string { return e.message }

func badRequest(param, msg string) *apiError {
	return &apiError{status: 400, message: msg, param: param, typ: "invalid_request_error"}
}

// parsed is a validated completion request.
type parsed struct {
	chat         bool
	model        string
	prompt       string // the rendered prompt text
	stream       bool
	includeUsage bool
	maxTokens    int // 0: not given
	ignoreEOS    bool
}

// parseRequest validates an OpenAI chat (chat true) or completions
// request body and renders its prompt. Unknown fields are ignored, as
// OpenAI-compatible servers do; an error names the offending field.
func parseRequest(body []byte, chat bool) (parsed, *apiError) {
	var pr fastjson.Parser
	v, err := pr.ParseBytes(body)
	if err != nil {
		return parsed{}, badRequest("", "the request body is not valid JSON: "+err.Error())
	}
	o, err := v.Object()
	if err != nil {
		return parsed{}, badRequest("", "the request body must be a JSON object")
	}
	p := parsed{chat: chat}
	if m := o.Get("model"); m != nil && m.Type() != fastjson.TypeNull {
		s, err := m.StringBytes()
		if err != nil {
			return parsed{}, badRequest("model", "model must be a string")
		}
		p.model = string(s)
	}
	var aerr *apiError
	if p.stream, aerr = optBool(o, "stream"); aerr != nil {
		return parsed{}, aerr
	}
	if p.ignoreEOS, aerr = optBool(o, "ignore_eos"); aerr != nil {
		return parsed{}, aerr
	}
	if so := o.Get("stream_options"); so != nil && so.Type() != fastjson.TypeNull {
		soo, err := so.Object()
		if err != nil {
			return parsed{}, badRequest("stream_options", "stream_options must be an object")
		}
		if p.includeUsage, aerr = optBool(soo, "include_usage"); aerr != nil {
			aerr.param = "stream_options.include_usage"
			return parsed{}, aerr
		}
	}
	for _, k := range [...]string{"max_tokens", "max_completion_tokens"} {
		n := o.Get(k)
		if n == nil || n.Type() == fastjson.TypeNull {
			continue
		}
		i, err := n.Int()
		if err != nil || i < 1 {
			return parsed{}, badRequest(k, k+" must be an integer of at least 1")
		}
		if p.maxTokens == 0 || i < p.maxTokens {
			p.maxTokens = i
		}
	}
	if n := o.Get("n"); n != nil && n.Type() != fastjson.TypeNull {
		if i, err := n.Int(); err != nil || i != 1 {
			return parsed{}, badRequest("n", "n must be 1: the simulator generates one choice")
		}
	}
	if chat {
		p.prompt, aerr = renderChat(o.Get("messages"))
	} else {
		p.prompt, aerr = completionPrompt(o.Get("prompt"))
	}
	return p, aerr
}

func optBool(o *fastjson.Object, k string) (bool, *apiError) {
	v := o.Get(k)
	if v == nil || v.Type() == fastjson.TypeNull {
		return false, nil
	}
	b, err := v.Bool()
	if err != nil {
		return false, badRequest(k, k+" must be a boolean")
	}
	return b, nil
}

// renderChat applies the simulator's chat template: each message as
// "<|ROLE|>\nCONTENT\n" in order, then "<|assistant|>\n" for the reply.
func renderChat(v *fastjson.Value) (string, *apiError) {
	if v == nil {
		return "", badRequest("messages", "messages is required")
	}
	msgs, err := v.Array()
	if err != nil {
		return "", badRequest("messages", "messages must be an array")
	}
	if len(msgs) == 0 {
		return "", badRequest("messages", "messages must not be empty")
	}
	var b strings.Builder
	for i, m := range msgs {
		param := "messages[" + itoa(i) + "]"
		mo, err := m.Object()
		if err != nil {
			return "", badRequest(param, param+" must be an object")
		}
		role, ok := str(mo.Get("role"))
		if !ok || len(role) == 0 {
			return "", badRequest(param+".role", param+".role must be a non-empty string")
		}
		b.WriteString("<|")
		b.Write(role)
		b.WriteString("|>\n")
		if aerr := writeContent(&b, mo.Get("content"), param+".content"); aerr != nil {
			return "", aerr
		}
		b.WriteByte('\n')
	}
	b.WriteString("<|assistant|>\n")
	return b.String(), nil
}

// writeContent writes a message's content: a string, null (an assistant
// message with tool calls) or an array of parts whose "text" parts count.
func writeContent(b *strings.Builder, c *fastjson.Value, param string) *apiError {
	if c == nil || c.Type() == fastjson.TypeNull {
		return nil
	}
	switch c.Type() {
	case fastjson.TypeString:
		s, _ := c.StringBytes()
		b.Write(s)
		return nil
	case fastjson.TypeArray:
		parts, _ := c.Array()
		for j, part := range parts {
			pp := param + "[" + itoa(j) + "]"
			if part.Type() != fastjson.TypeObject {
				return badRequest(pp, pp+" must be an object")
			}
			if t := part.GetStringBytes("type"); string(t) != "text" {
				continue // images, audio: no text to count
			}
			s, ok := str(part.Get("text"))
			if !ok {
				return badRequest(pp+".text", pp+".text must be a string")
			}
			b.Write(s)
		}
		return nil
	}
	return badRequest(param, param+" must be a string, an array of parts or null")
}

// completionPrompt reads a completions prompt: a string, or an array of
// one string.
func completionPrompt(v *fastjson.Value) (string, *apiError) {
	if v == nil {
		return "", badRequest("prompt", "prompt is required")
	}
	if v.Type() == fastjson.TypeArray {
		a, _ := v.Array()
		if len(a) != 1 {
			return "", badRequest("prompt", "prompt must be a string or an array of exactly one string")
		}
		v = a[0]
	}
	s, err := v.StringBytes()
	if err != nil {
		return "", badRequest("prompt", "prompt must be a string or an array of exactly one string")
	}
	if len(s) == 0 {
		return "", badRequest("prompt", "prompt must not be empty")
	}
	return string(s), nil
}

// str returns v's string value; false when v is missing or not a string.
func str(v *fastjson.Value) ([]byte, bool) {
	if v == nil || v.Type() != fastjson.TypeString {
		return nil, false
	}
	s, _ := v.StringBytes()
	return s, true
}
