//go:build !linux

package peek

// Supported is false: sockets are peeked at on Linux only. Elsewhere
// the disconnect watch registers no connection (a gone client is noticed
// when the upstream answers) and a pooled connection the upstream closed
// fails its request with 502.
const Supported = false

func Closed(fd uintptr, buf *[1]byte) bool { return false }
