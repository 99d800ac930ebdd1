//go:build wasip1

package guest

import "github.com/sluice-proxy/sluice/plugins/sdk"

// Reply sends a local response and returns ActionPause, which the caller
// returns from its callback. If the host refuses the local response, the
// request is reset rather than let through (fail closed), and both
// failures are logged.
func Reply(status uint32, headers [][2]string, body []byte) sdk.Action {
	if err := sdk.SendHttpResponse(status, headers, body, -1); err != nil {
		sdk.LogErrorf("%s: sending the %d reply failed, closing the request: %v", name, status, err)
		if err := sdk.CloseStream(sdk.StreamHttpRequest); err != nil {
			sdk.LogErrorf("%s: closing the request failed: %v", name, err)
		}
	}
	return sdk.ActionPause
}
