//go:build !linux

package proxy

// peekSupported is false: sockets are peeked at on Linux only. Elsewhere
// the disconnect watch registers no connection (a gone client is noticed
// when the upstream answers) and a pooled connection the upstream closed
// fails its request with 502.
const peekSupported = false

func peekClosed(fd uintptr, buf *[1]byte) bool { return false }
