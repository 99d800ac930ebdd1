package testsync

// OpenAIError is the OpenAI error envelope, {"error": {"message": …,
// "type": …, "param": …, "code": …}}, that plugins and the proxy send in
// local replies; tests decode reply bodies into it with encoding/json. A
// null code decodes as "". It lives here so that package proxy's tests
// share it with the plugin tests (internal/plugintest re-exports it).
type OpenAIError struct {
	Error struct {
		Message string  `json:"message"`
		Type    string  `json:"type"`
		Param   *string `json:"param"`
		Code    string  `json:"code"`
	} `json:"error"`
}
