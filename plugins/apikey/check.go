package main

import (
	"errors"
	"github.com/sluice-proxy/sluice/plugins/internal/jsonscan"
	"github.com/sluice-proxy/sluice/plugins/internal/openai"
)

// rejection is a local reply: a status and an OpenAI-shaped error body.
type rejection struct {
	status uint32
	body   []byte
}

// unauthorized is the reply to a missing or unknown key; the body is the
// one OpenAI sends for an incorrect key, so SDKs raise AuthenticationError.
var unauthorized = rejection{status: 401,
	body: openai.ErrorBody("Incorrect API key provided", "invalid_request_error", "", "invalid_api_key")}

// checkBody checks a request body against the key's model allow-list. It
// returns nil when the request may go on. A key without an allow-list
// accepts any body. With one, the body must be a JSON object with exactly
// one string "model" member (a duplicate would let the client show this
// plugin one model and the upstream another), and the model must match the
// list.
func checkBody(e *keyEntry, body []byte) *rejection {
	if !e.restricted() {
		return nil
	}
	ms, err := jsonscan.Object(body, "model")
	if err != nil {
		msg := "The request body is not a valid JSON object, so its model cannot be checked against the models this API key may use."
		if errors.Is(err, jsonscan.ErrNotObject) {
			msg = "The request body is not a JSON object, so its model cannot be checked against the models this API key may use."
		}
		return &rejection{status: 400, body: openai.ErrorBody(msg, "invalid_request_error", "", "invalid_body")}
	}
	m := ms[0]
	switch {
	case !m.Found():
		return &rejection{status: 400, body: openai.ErrorBody("You must provide a model parameter.", "invalid_request_error", "model", "model_required")}
	case m.Count > 1:
		return &rejection{status: 400, body: openai.ErrorBody(`The request body has more than one "model" member.`, "invalid_request_error", "model", "invalid_body")}
	}
	model, ok := jsonscan.String(m.Raw(body))
	if !ok {
		return &rejection{status: 400, body: openai.ErrorBody("The model parameter must be a string.", "invalid_request_error", "model", "invalid_type")}
	}
	if !e.allows(model) {
		return &rejection{status: 403, body: openai.ErrorBody("The model `"+model+"` is not allowed for this API key.",
			"permission_error", "model", "model_not_allowed")}
	}
	return nil
}
