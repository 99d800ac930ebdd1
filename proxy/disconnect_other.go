//go:build !linux

package proxy

// disconnectWatchSupported: the disconnect watch peeks at sockets on Linux
// only; elsewhere no connection is registered and a gone client is noticed
// when the upstream answers, as before.
const disconnectWatchSupported = false

func peekClosed(fd uintptr, buf *[1]byte) bool { return false }
