package testsync

import (
	"net"
	"testing"
)

// ClosedAddr returns a 127.0.0.1 "host:port" that nothing listens on: a
// port the kernel handed out a moment ago and that is closed again. A test
// dials it for "connection refused" (an upstream or a Redis that is down),
// or listens on it itself.
func ClosedAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	return addr
}
