package proxy

import (
	"errors"
	"fmt"
	"net"
	"syscall"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
)

// TestEdgeConnSyscallConn: the wrapped connection still yields the TCP
// socket's raw fd (the disconnect watcher polls it).
func TestEdgeConnSyscallConn(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	el := &edgeListener{Listener: ln, stop: make(chan struct{}), linger: &defaultLinger}
	defer el.Close()
	go func() {
		if c, err := net.Dial("tcp", ln.Addr().String()); err == nil {
			defer c.Close()
			_, _ = c.Write([]byte("x"))
			time.Sleep(100 * time.Millisecond)
		}
	}()
	c, err := el.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, ok := c.(*edgeConn); !ok {
		t.Fatalf("accepted %T, want *edgeConn", c)
	}
	sc, ok := c.(syscall.Conn)
	if !ok {
		t.Fatal("edgeConn is not a syscall.Conn")
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var fd uintptr
	if err := rc.Control(func(f uintptr) { fd = f }); err != nil || fd == 0 {
		t.Fatalf("Control: fd %d, %v", fd, err)
	}
}

// lingerPair returns a client connection and the server's edgeConn for
// it, lingering within b.
func lingerPair(t *testing.T, b lingerBounds, stop chan struct{}) (net.Conn, *edgeConn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	el := &edgeListener{Listener: ln, stop: stop, linger: &b}
	t.Cleanup(func() { el.Close() })
	client := rawConn(t, ln.Addr().String())
	c, err := el.Accept()
	if err != nil {
		t.Fatal(err)
	}
	return client, c.(*edgeConn)
}

// TestLingerBounded: a lingering close ends when the client stops
// sending (timeout), when it sends for too long (time), past the byte cap,
// and at shutdown; the client sees EOF (the server's FIN) before that.
func TestLingerBounded(t *testing.T) {
	short := lingerBounds{time: 600 * time.Millisecond, timeout: 200 * time.Millisecond, afterTimeout: 100 * time.Millisecond, maxBytes: 1 << 20}
	closed := func(srv *edgeConn, mode uint32) chan time.Duration {
		ch := make(chan time.Duration, 1)
		srv.lingerOnClose(mode)
		go func() {
			start := time.Now()
			srv.Close()
			ch <- time.Since(start)
		}()
		return ch
	}
	t.Run("client silent", func(t *testing.T) {
		client, srv := lingerPair(t, short, make(chan struct{}))
		done := closed(srv, lingerFull)
		// The write side is shut down at once: the client reads EOF.
		expectClosed(t, client, 5*time.Second)
		if d := <-done; d < short.timeout || d > 5*time.Second {
			t.Fatalf("lingered %s with a silent client, want about %s", d, short.timeout)
		}
	})
	t.Run("client keeps sending", func(t *testing.T) {
		// A long read timeout, so that only the total time ends it.
		b := lingerBounds{time: 600 * time.Millisecond, timeout: 5 * time.Second, maxBytes: 1 << 20}
		client, srv := lingerPair(t, b, make(chan struct{}))
		stop := make(chan struct{})
		defer close(stop)
		go func() {
			for {
				select {
				case <-stop:
					return
				case <-time.After(50 * time.Millisecond):
					_, _ = client.Write([]byte("more"))
				}
			}
		}()
		if d := <-closed(srv, lingerFull); d < b.time || d > 5*time.Second {
			t.Fatalf("lingered %s with a client that keeps sending, want about %s", d, b.time)
		}
	})
	t.Run("after a timeout", func(t *testing.T) {
		_, srv := lingerPair(t, short, make(chan struct{}))
		if d := <-closed(srv, lingerShort); d > 5*time.Second {
			t.Fatalf("lingered %s after a timeout", d)
		}
	})
	t.Run("byte cap", func(t *testing.T) {
		client, srv := lingerPair(t, lingerBounds{time: time.Minute, timeout: time.Minute, maxBytes: 64 << 10}, make(chan struct{}))
		done := closed(srv, lingerFull)
		chunk := make([]byte, 16<<10)
		go func() {
			for {
				if _, err := client.Write(chunk); err != nil {
					return
				}
			}
		}()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatal("lingering did not stop at the byte cap")
		}
	})
	t.Run("shutdown", func(t *testing.T) {
		stop := make(chan struct{})
		client, srv := lingerPair(t, lingerBounds{time: time.Minute, timeout: 300 * time.Millisecond, maxBytes: 1 << 30}, stop)
		done := closed(srv, lingerFull)
		close(stop)
		_, _ = client.Write([]byte("x")) // wakes the pending read
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatal("lingering did not end at shutdown")
		}
	})
	t.Run("no linger", func(t *testing.T) {
		client, srv := lingerPair(t, short, make(chan struct{}))
		_, _ = client.Write([]byte("unread"))
		if d := <-closed(srv, lingerNone); d > 100*time.Millisecond {
			t.Fatalf("plain close took %s", d)
		}
		if err := srv.Close(); err != nil {
			t.Fatalf("second Close: %v", err)
		}
	})
}

// TestParseErrorStatus maps each error fasthttp reports while reading a
// request to its answer; every answer closes the connection and carries
// a request id.
func TestParseErrorStatus(t *testing.T) {
	srv := newServer(t, baseConfig("http://127.0.0.1:1"), Options{})
	timeout := &net.OpError{Op: "read", Net: "tcp", Err: osTimeout{}}
	tests := []struct {
		err  error
		want int
	}{
		{&fasthttp.ErrSmallBuffer{}, 431},
		{fmt.Errorf("error when reading request headers: %w", timeout), 408},
		{timeout, 408},
		{fmt.Errorf("error when reading request headers: %w", fasthttp.ErrDuplicateContentLength), 400},
		{fmt.Errorf("error when reading request headers: %w", fasthttp.ErrUnsupportedTransferEncoding), 501},
		{fasthttp.ErrBodyTooLarge, 413},
		{errors.New("cannot find http request method"), 400},
	}
	for _, tc := range tests {
		var ctx fasthttp.RequestCtx
		ctx.Init(&fasthttp.Request{}, nil, nil)
		srv.handleParseError(&ctx, tc.err)
		if got := ctx.Response.StatusCode(); got != tc.want {
			t.Errorf("%v: status %d, want %d", tc.err, got, tc.want)
		}
		if !ctx.Response.ConnectionClose() {
			t.Errorf("%v: connection not closed", tc.err)
		}
		if id := ctx.Response.Header.Peek("X-Request-Id"); len(id) != 32 {
			t.Errorf("%v: x-request-id %q, want a generated one", tc.err, id)
		}
	}
}

type osTimeout struct{}

func (osTimeout) Error() string   { return "i/o timeout" }
func (osTimeout) Timeout() bool   { return true }
func (osTimeout) Temporary() bool { return true }
