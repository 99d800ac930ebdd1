package proxytest

import (
	"net/http"
	"strconv"
	"strings"
)

// tgiRequest is what the server reads from a TGI generate request. Other
// parameters are accepted and ignored.
type tgiRequest struct {
	Inputs     *string `json:"inputs"`
	Parameters *struct {
		MaxNewTokens *int `json:"max_new_tokens"`
		Details      bool `json:"details"`
	} `json:"parameters"`
}

// generateParams is a validated TGI request.
type generateParams struct {
	maxNewTokens int // 0: no limit
	details      bool
	inputTokens  int // whitespace-separated words in inputs
}

func parseTGIRequest(body []byte) (generateParams, *requestError) {
	var req tgiRequest
	if err := decodeJSON(body, &req); err != nil {
		return generateParams{}, err
	}
	if req.Inputs == nil {
		return generateParams{}, badField("inputs", "is required")
	}
	var p generateParams
	p.inputTokens = len(strings.Fields(*req.Inputs))
	if req.Parameters != nil {
		p.details = req.Parameters.Details
		if m := req.Parameters.MaxNewTokens; m != nil {
			if *m < 0 {
				return generateParams{}, badField("parameters.max_new_tokens", "is %d, must be >= 0", *m)
			}
			p.maxNewTokens = *m
		}
	}
	return p, nil
}

// TGI reply shapes.
type (
	tgiError struct {
		Error     string `json:"error"`
		ErrorType string `json:"error_type"`
	}
	tgiDetails struct {
		FinishReason    string `json:"finish_reason"`
		GeneratedTokens int    `json:"generated_tokens"`
		Seed            *int64 `json:"seed"`
	}
	tgiGenerated struct {
		GeneratedText string      `json:"generated_text"`
		Details       *tgiDetails `json:"details,omitempty"`
	}
	tgiToken struct {
		ID      int     `json:"id"`
		Text    string  `json:"text"`
		Logprob float64 `json:"logprob"`
		Special bool    `json:"special"`
	}
	tgiStreamEvent struct {
		Index         int         `json:"index"`
		Token         tgiToken    `json:"token"`
		GeneratedText *string     `json:"generated_text"`
		Details       *tgiDetails `json:"details"`
	}
)

// tokenLogprob is the log-probability reported for every token.
const tokenLogprob = -0.25

// tgi answers POST /generate (stream false) or /generate_stream.
func (x *exchange) tgi(stream bool) {
	p, err := parseTGIRequest(x.body)
	if err != nil {
		x.fail(http.StatusUnprocessableEntity, err.param, err.msg)
		return
	}
	n, capped := x.opts.tokensFor(p.maxNewTokens)
	details := &tgiDetails{FinishReason: "eos_token", GeneratedTokens: n}
	if capped {
		details.FinishReason = "length"
	}
	h := x.w.Header()
	h.Set("X-Prompt-Tokens", strconv.Itoa(p.inputTokens))
	h.Set("X-Generated-Tokens", strconv.Itoa(n))
	text := completionText(n)
	if !stream {
		g := tgiGenerated{GeneratedText: text}
		if p.details {
			g.Details = details
		}
		x.reply("application/json", mustJSON(g), n)
		return
	}
	event := func(i int) []byte {
		e := tgiStreamEvent{
			Index: i + 1,
			Token: tgiToken{ID: i, Text: tokenText(i), Logprob: tokenLogprob},
		}
		if i == n-1 {
			e.GeneratedText = &text
			e.Details = details
		}
		return mustJSON(e)
	}
	x.stream(n, event) // TGI sends no [DONE]
}
