package main

import (
	"errors"

	"github.com/sluice-proxy/sluice/internal/prompthash"
	"github.com/sluice-proxy/sluice/plugins/internal/jsonscan"
)

// request is what the plugin reads from an OpenAI request body.
type request struct {
	// text is the prompt as sent: the body from the value of "messages"
	// (chat completions: every message in order, as the client
	// serialised them, so a conversation's next turn extends the
	// previous turn's text) or of "prompt" (completions) to the body's
	// end, trailing space cut, or to the first member the engine does not
	// read (a decoy that a later member of the same name overrides:
	// prompthash.PromptText). The members after the prompt (max_tokens,
	// stream…) only change the last block or two. A view into the body.
	text []byte
	// seed keys the hashes by model: two models never share a cache.
	seed uint64
	// user is the raw "user" field, quotes included, when it is a
	// non-empty string; nil otherwise (and always nil unless asked for).
	user []byte
}

// parseRequest extracts the prompt of an OpenAI chat completions or
// completions body. ok is false for anything else (not JSON, no
// messages or prompt): the plugin then leaves the request alone. The
// "user" field is read only when wantUser.
//
// Usually the body starts with "model" and "messages" (or "prompt"):
// then only that start is read (quickPrompt) and the rest is not
// validated, which saves a Go guest a pass over the body (~30 µs for 8
// KiB). An invalid body is then routed like a valid one, and the engine
// rejects it. Otherwise, or for the user field, the body is validated
// and the last occurrence of each member counts (jsonscan), as it does
// for the engine; either way no member that a later one of the same name
// overrides is hashed.
func parseRequest(body []byte, wantUser bool) (request, bool) {
	if !wantUser {
		if r, ok := quickPrompt(body); ok {
			return r, true
		}
	}
	r, err := validatedRequest(body)
	if err != nil {
		return request{}, false
	}
	if !wantUser {
		r.user = nil
	}
	return r, true
}

// validatedRequest is parseRequest for any valid JSON body.
func validatedRequest(body []byte) (request, error) {
	ms, err := jsonscan.Object(body, "model", "messages", "prompt", "user")
	if err != nil {
		return request{}, err
	}
	var r request
	switch {
	case ms[1].Found():
		r.text = prompthash.PromptText(body, ms[1].Start)
	case ms[2].Found():
		r.text = prompthash.PromptText(body, ms[2].Start)
	default:
		return request{}, errNoPrompt
	}
	r.seed = prompthash.Seed(ms[0].Raw(body))
	// A non-empty JSON string only: "" or null names no session.
	if u := ms[3].Raw(body); len(u) > 2 && u[0] == '"' {
		r.user = u
	}
	return r, nil
}

var errNoPrompt = errors.New(`cacheaware: no "messages" or "prompt"`)

// quickPrompt reads the usual body start without validating the rest
// (prompthash.Quick); ok is false for any other start, and parseRequest
// validates the body.
func quickPrompt(body []byte) (request, bool) {
	text, model, ok := prompthash.Quick(body)
	if !ok {
		return request{}, false
	}
	return request{text: text, seed: prompthash.Seed(model)}, true
}

// blockHashes appends to dst one chained hash per full chunk of text (at
// most max bytes of it): prompthash.AppendBlocks, the hashes Sluice's
// sluice.prompt_block_hashes returns.
func blockHashes(dst []uint64, seed uint64, text []byte, chunk, max int) []uint64 {
	return prompthash.AppendBlocks(dst, seed, text, chunk, max)
}
