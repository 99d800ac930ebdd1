package wasm

import "bytes"

// sluice.skip_callbacks: a guest tells the host, at start, which of an
// HTTP context's callbacks it does without, and the host stops calling
// them on that instance, as if they were not exported. Proxy-Wasm has no
// way to say so, and SDKs export every callback (the Go toolchain cannot
// export conditionally), so a plugin that routes on the request still
// paid for the response headers, each response body chunk, proxy_on_log
// and proxy_on_done: ~1–4 µs each for a Go guest through the proxy,
// about 10 µs per request of the cacheaware plugin's. Envoy answers
// NOT_FOUND and calls them all, which a guest handles anyway.

// skippableCallbacks are the callbacks sluice.skip_callbacks may name.
// proxy_on_context_create and proxy_on_delete stay (the guest's context
// lives between them); proxy_on_done is called only for HTTP contexts by
// this host. An SDK that ends a stream in proxy_on_log must end it in
// proxy_on_delete when no log came (the Go SDK does).
var skippableCallbacks = [...]callback{cbRequestHeaders, cbRequestBody, cbResponseHeaders, cbResponseBody, cbLog, cbDone}

// parseSkipCallbacks decodes sluice.skip_callbacks' argument: export
// names separated by commas (empty: none). ok is false for any other
// name.
func parseSkipCallbacks(args []byte) (skip [numCallbacks]bool, ok bool) {
	if len(args) == 0 {
		return skip, true
	}
	for more := true; more; {
		var name []byte
		name, args, more = bytes.Cut(args, []byte{','})
		found := false
		for _, cb := range skippableCallbacks {
			if string(name) == callbackSpecs[cb].name {
				skip[cb], found = true, true
			}
		}
		if !found {
			return skip, false
		}
	}
	return skip, true
}

// foreignSkipCallbacks stops the calling instance from calling the named
// callbacks (parseSkipCallbacks) for the rest of its life; a replacement
// instance runs the guest's start-up again and asks again. Allowed only
// during start-up (proxy_on_vm_start, proxy_on_configure), so no request
// is halfway through its callbacks: BAD_ARGUMENT later, or for an
// unknown or non-skippable name (nothing is skipped then). The result is
// empty.
func foreignSkipCallbacks(in *instance, args, dst []byte) ([]byte, status) {
	skip, ok := parseSkipCallbacks(args)
	if !ok || !in.starting || in.cur != nil {
		return nil, statusBadArgument
	}
	for cb, s := range skip {
		if s {
			in.fns[cb] = nil
		}
	}
	return dst, statusOK
}
