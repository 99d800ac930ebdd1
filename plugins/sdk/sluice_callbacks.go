package sdk

// Callback names an HTTP context callback a plugin can tell Sluice it
// does without (SkipCallbacks): the Proxy-Wasm export's name.
type Callback string

// The callbacks SkipCallbacks accepts. proxy_on_context_create and
// proxy_on_delete cannot be skipped; without proxy_on_log the SDK calls
// HttpContext.OnHttpStreamDone from proxy_on_delete.
const (
	CallbackRequestHeaders  Callback = "proxy_on_request_headers"
	CallbackRequestBody     Callback = "proxy_on_request_body"
	CallbackResponseHeaders Callback = "proxy_on_response_headers"
	CallbackResponseBody    Callback = "proxy_on_response_body"
	CallbackLog             Callback = "proxy_on_log"
	CallbackDone            Callback = "proxy_on_done"
)

// skipCallbacksArgs encodes sluice.skip_callbacks' argument: the names,
// comma-separated.
func skipCallbacksArgs(cbs []Callback) []byte {
	var b []byte
	for i, c := range cbs {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, c...)
	}
	return b
}
