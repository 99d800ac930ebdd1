package sdk

import "testing"

// TestSkipCallbacksArgs: the names go comma-separated, as the host's
// sluice.skip_callbacks parses them; none is an empty argument.
func TestSkipCallbacksArgs(t *testing.T) {
	if got := string(skipCallbacksArgs([]Callback{CallbackResponseHeaders, CallbackLog})); got != "proxy_on_response_headers,proxy_on_log" {
		t.Errorf("got %q", got)
	}
	if got := skipCallbacksArgs(nil); len(got) != 0 {
		t.Errorf("none: %q", got)
	}
}
