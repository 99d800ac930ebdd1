package proxy

import (
	"net"
	"syscall"
	"testing"

	"github.com/sluice-proxy/sluice/proxy/internal/peek"
)

// peekConn runs peekClosed on c's socket.
func peekConn(t *testing.T, c net.Conn) bool {
	t.Helper()
	raw, err := c.(syscall.Conn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var buf [1]byte
	var gone bool
	if err := raw.Control(func(fd uintptr) { gone = peek.Closed(fd, &buf) }); err != nil {
		t.Fatal(err)
	}
	return gone
}

// TestPeekClosed: quiet and talkative peers are present, and a peek
// consumes nothing; a closed, half-closed or reset peer is gone.
func TestPeekClosed(t *testing.T) {
	c, s := tcpPair(t)
	if peekConn(t, s) {
		t.Fatal("quiet peer reported gone")
	}
	if _, err := c.Write([]byte("GET / HTTP/1.1\r\n")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "pipelined bytes seen", func() bool { return !peekConn(t, s) && peekAvailable(t, s) })
	buf := make([]byte, 64)
	if n, err := s.Read(buf); err != nil || string(buf[:n]) != "GET / HTTP/1.1\r\n" {
		t.Fatalf("peek consumed data: read %q, %v", buf[:n], err)
	}
	_ = c.CloseWrite()
	waitFor(t, "half-closed peer gone", func() bool { return peekConn(t, s) })

	// Pending bytes followed by a FIN (a TLS close_notify, or a pipelined
	// request): gone, and still nothing consumed.
	c1, s1 := tcpPair(t)
	if _, err := c1.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	_ = c1.Close()
	waitFor(t, "peer gone behind pending bytes", func() bool { return peekConn(t, s1) })
	if !peekAvailable(t, s1) {
		t.Fatal("peek consumed the pending byte")
	}

	c2, s2 := tcpPair(t)
	_ = c2.Close()
	waitFor(t, "closed peer gone", func() bool { return peekConn(t, s2) })

	c3, s3 := tcpPair(t)
	_ = c3.SetLinger(0) // close sends RST
	_ = c3.Close()
	waitFor(t, "reset peer gone", func() bool { return peekConn(t, s3) })
}

// peekAvailable reports whether s has bytes to read, without reading them.
func peekAvailable(t *testing.T, s net.Conn) bool {
	raw, _ := s.(syscall.Conn).SyscallConn()
	n := 0
	_ = raw.Control(func(fd uintptr) {
		var b [1]byte
		n, _, _ = syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
	})
	return n > 0
}
