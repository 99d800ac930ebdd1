package wasm

import (
	"errors"
	"fmt"
	"strconv"
)

// CallError is the error a Stream callback returns when the plugin failed
// on that request: the proxy then applies the plugin's failure policy.
type CallError struct {
	// Plugin is the plugin's configured name.
	Plugin string
	// Callback is the guest export that failed (proxy_on_request_headers…).
	Callback string
	// Kind classifies the failure: KindTrap, KindTimeout, KindMemory,
	// KindExit, KindBadAction or KindUnavailable.
	Kind string
	// Err is the underlying error.
	Err error
}

func (e *CallError) Error() string {
	return "wasm: plugin " + strconv.Quote(e.Plugin) + ": " + e.Callback + ": " + e.Kind + ": " + e.Err.Error()
}

func (e *CallError) Unwrap() error { return e.Err }

// ErrInstanceDiscarded is wrapped by the CallError of a request in flight
// on an instance discarded after another failure (or closed with its
// plugin) that still needed a callback from it.
var ErrInstanceDiscarded = errors.New("wasm: plugin instance discarded after a failure")

// ErrNoInstance is wrapped by the CallError of a new request that found no
// live instance within HostConfig.StartTimeout (every slot's instance was
// discarded and no replacement could be built in time), or whose plugin
// was closed.
var ErrNoInstance = errors.New("wasm: no live plugin instance")

// pluginError prefixes an error with the plugin's name.
func pluginError(name string, err error) error {
	return fmt.Errorf("wasm: plugin %q: %w", name, err)
}
