package proxytest

import (
	"fmt"
	"net"
	"net/http"
)

// FailMode is a failure a Server injects into its answers. The zero value,
// FailNone, injects nothing.
type FailMode int

const (
	// FailNone answers normally.
	FailNone FailMode = iota
	// Fail500 answers 500 with an error body in the route's API shape
	// (OpenAI `{"error":{...}}`, TGI `{"error","error_type"}`).
	Fail500
	// FailResetBeforeHeaders takes over the connection and resets it
	// (TCP RST) without sending anything.
	FailResetBeforeHeaders
	// FailResetMidStream sends the headers and Options.FailAfterTokens
	// token events, then resets the connection. A non-streaming reply is
	// cut after its headers and the first half of its body.
	FailResetMidStream
	// FailHang never answers: the handler waits until the client goes away
	// (counted by Cancelled) or the server is closed.
	FailHang
)

var failModeNames = [...]string{
	FailNone:               "none",
	Fail500:                "500",
	FailResetBeforeHeaders: "reset-before-headers",
	FailResetMidStream:     "reset-mid-stream",
	FailHang:               "hang",
}

func (m FailMode) valid() bool { return m >= 0 && int(m) < len(failModeNames) }

// String returns the mode's name as accepted by ParseFailMode.
func (m FailMode) String() string {
	if !m.valid() {
		return fmt.Sprintf("FailMode(%d)", int(m))
	}
	return failModeNames[m]
}

// ParseFailMode returns the mode named s: "none" (or ""), "500",
// "reset-before-headers", "reset-mid-stream" or "hang".
func ParseFailMode(s string) (FailMode, error) {
	if s == "" {
		return FailNone, nil
	}
	for m, name := range failModeNames {
		if s == name {
			return FailMode(m), nil
		}
	}
	return FailNone, fmt.Errorf("proxytest: unknown fail mode %q (want none, 500, reset-before-headers, reset-mid-stream or hang)", s)
}

// resetConn ends the response abruptly. On an HTTP/1.x connection it
// flushes what was written (when started, that is when the headers were
// written), takes the connection over and closes it with SO_LINGER 0 so the
// peer sees a TCP reset. Where the connection cannot be taken over (HTTP/2)
// it aborts the handler with http.ErrAbortHandler, which makes the server
// reset the stream; it does not return in that case.
func resetConn(w http.ResponseWriter, started bool) {
	rc := http.NewResponseController(w)
	if started {
		// Hijack drops what was written but not flushed; Flush without
		// started would send the headers.
		_ = rc.Flush()
	}
	conn, _, err := rc.Hijack()
	if err != nil {
		panic(http.ErrAbortHandler)
	}
	if tc, ok := conn.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	_ = conn.Close()
}
