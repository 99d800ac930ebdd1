// Package openai renders the error envelope OpenAI's API answers with,
// {"error":{"message","type","param","code"}}, so that OpenAI client SDKs
// raise the matching exception for a plugin's local reply. It builds for
// the host and for wasip1 guests.
package openai

import "encoding/json"

// ErrorBody returns the JSON error envelope with message, type typ, param
// and code; an empty param or code is JSON null, as in OpenAI's replies.
// The result is a new slice owned by the caller.
func ErrorBody(message, typ, param, code string) []byte {
	type detail struct {
		Message string  `json:"message"`
		Type    string  `json:"type"`
		Param   *string `json:"param"`
		Code    *string `json:"code"`
	}
	d := detail{Message: message, Type: typ}
	if param != "" {
		d.Param = &param
	}
	if code != "" {
		d.Code = &code
	}
	b, err := json.Marshal(struct {
		Error detail `json:"error"`
	}{d})
	if err != nil { // only strings: cannot fail
		panic("openai: marshal error body: " + err.Error())
	}
	return b
}
