package proxy

import "errors"

// Action is a filter's answer to a phase callback.
type Action uint8

const (
	// ActionContinue lets the request go on to the next filter or phase.
	ActionContinue Action = iota
	// ActionPause stops the request until the filter calls Exchange.Resume,
	// sends a local response, or the pause times out (Config.Timeout).
	//
	// In the response-body phase, pausing on a chunk before the end of the
	// stream means "buffer": the proxy accumulates the body and calls the
	// filter again with the whole body at end of stream, as Envoy does.
	ActionPause
)

// String returns the action's name.
func (a Action) String() string {
	switch a {
	case ActionContinue:
		return "continue"
	case ActionPause:
		return "pause"
	}
	return "unknown"
}

// Filter is one configured extension (for example one Proxy-Wasm plugin).
// It builds a Stream per request. Filters run in configuration order.
//
// A Filter is safe for concurrent use: NewStream is called from many
// request goroutines at once.
type Filter interface {
	// Name is the configured name, used in logs, metrics and errors.
	Name() string
	// FailOpen reports the failure policy: true skips the filter for a
	// request whose stream failed, false (fail closed) answers that request
	// with 503.
	FailOpen() bool
	// NewStream starts the filter's work on one request. The Exchange is
	// valid until Stream.OnDone returns; the filter must not keep it after.
	NewStream(ex *Exchange) (Stream, error)
	// Close releases the filter's resources. No Stream is used after Close.
	Close() error
}

// Stream is one filter's view of one request. The proxy calls its methods
// from one goroutine at a time, in phase order, and calls OnDone exactly
// once on every path (local reply, error, client gone, panic).
//
// A callback that returns an error has failed (the guest trapped, timed out
// or misbehaved); the proxy applies the filter's failure policy and calls no
// further phase callbacks on that stream, but still calls OnDone.
type Stream interface {
	OnRequestHeaders(endOfStream bool) (Action, error)
	OnRequestBody(endOfStream bool) (Action, error)
	OnResponseHeaders(endOfStream bool) (Action, error)
	OnResponseBody(endOfStream bool) (Action, error)
	// OnDone ends the stream (Proxy-Wasm: log, done, delete).
	OnDone()
}

// ErrUnknownUpstream is returned by Exchange.SetUpstream for a pool name
// that is not configured.
var ErrUnknownUpstream = errors.New("proxy: unknown upstream")
