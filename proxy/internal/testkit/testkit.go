// Package testkit holds the test helpers that package proxy's tests and
// its sub-packages' tests share: one copy of each. Only tests import it.
package testkit

import (
	"net"
	"testing"
	"time"

	"github.com/sluice-proxy/sluice/internal/testsync"
	"github.com/sluice-proxy/sluice/proxy/proxytest"
)

// WaitFor polls cond every 5ms until it holds, failing the test after 10s
// (a bound for a starved CI machine, not a claim about speed).
func WaitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	testsync.WaitFor(t, 10*time.Second, what, cond)
}

// TCPPair returns both ends of a loopback TCP connection, closed when the
// test ends.
func TCPPair(t testing.TB) (client, server *net.TCPConn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	s, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close(); _ = s.Close() })
	return c.(*net.TCPConn), s.(*net.TCPConn)
}

// StartUpstream starts a fake engine, closed when the test ends.
func StartUpstream(t testing.TB, opts proxytest.Options) *proxytest.Server {
	t.Helper()
	up := proxytest.NewServer(opts)
	t.Cleanup(up.Close)
	return up
}
