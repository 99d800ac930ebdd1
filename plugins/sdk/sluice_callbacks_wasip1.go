//go:build wasip1

package sdk

// SkipCallbacks tells Sluice (sluice.skip_callbacks) that this plugin's
// HTTP contexts do without cbs, so the host stops calling them on this
// instance: each call a Go guest is spared saves ~1–4 µs per request.
// Call it from OnPluginStart (later calls fail with ErrBadArgument). On a
// host without the function (Envoy) the error matches ErrNotFound and
// the callbacks keep coming; the plugin's handlers must still answer
// them (DefaultHttpContext does, with ActionContinue).
func SkipCallbacks(cbs ...Callback) error {
	_, err := CallForeignFunction("sluice.skip_callbacks", skipCallbacksArgs(cbs))
	return err
}
