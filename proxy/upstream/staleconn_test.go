package upstream

import (
	"net"
	"testing"

	"github.com/sluice-proxy/sluice/proxy/internal/peek"
)

// tcpPair returns the two ends of a loopback TCP connection.
func TestStaleCheck(t *testing.T) {
	if !peek.Supported {
		t.Skip("no non-blocking peek on this platform")
	}
	check := func(t *testing.T, c net.Conn) bool {
		t.Helper()
		var s staleCheck
		s.init(c)
		return s.peerClosed()
	}
	t.Run("open and quiet", func(t *testing.T) {
		c, _ := tcpPair(t)
		if check(t, c) {
			t.Fatal("an open connection reads as closed")
		}
	})
	t.Run("pending bytes are not consumed", func(t *testing.T) {
		c, s := tcpPair(t)
		if _, err := s.Write([]byte("x")); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "byte arrived", func() bool {
			var st staleCheck
			st.init(c)
			st.gone = true
			return !st.peerClosed()
		})
		buf := make([]byte, 1)
		if n, err := c.Read(buf); n != 1 || buf[0] != 'x' || err != nil {
			t.Fatalf("the peek consumed data: %d %q %v", n, buf, err)
		}
	})
	t.Run("closed by the peer", func(t *testing.T) {
		c, s := tcpPair(t)
		s.Close()
		waitFor(t, "FIN seen", func() bool { return check(t, c) })
	})
	t.Run("reset by the peer", func(t *testing.T) {
		c, s := tcpPair(t)
		_ = s.SetLinger(0)
		s.Close()
		waitFor(t, "RST seen", func() bool { return check(t, c) })
	})
	t.Run("closed locally", func(t *testing.T) {
		c, _ := tcpPair(t)
		var st staleCheck
		st.init(c)
		c.Close()
		if !st.peerClosed() {
			t.Fatal("a closed connection reads as open")
		}
	})
}
