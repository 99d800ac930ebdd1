// Package peek tells whether the peer of a TCP socket has closed it, without
// consuming a byte: the one check the client disconnect watch and the
// stale-connection check of upstream connections share.
package peek

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// Linux TCP states (include/net/tcp_states.h) past the peer's FIN or RST.
const (
	tcpClose     = 7
	tcpCloseWait = 8
	tcpLastAck   = 9
)

// Supported: the peek below works on Linux sockets. Two checks use it:
// the disconnect watch (is the client still there?) and the stale check of
// a pooled upstream connection before reuse (did the upstream close it?).
const Supported = true

// Closed reports whether the peer of socket fd closed or reset the
// connection. A non-blocking recv of one byte with MSG_PEEK returns 0 at
// EOF and EAGAIN when nothing is pending, and consumes nothing either way
// (nginx's check). When bytes are pending — pipelined requests, or the
// close_notify alert a TLS client sends before its FIN — the peek cannot
// see past them, so the TCP state decides: the peer's FIN puts the socket
// in CLOSE_WAIT, a reset in CLOSE.
func Closed(fd uintptr, buf *[1]byte) bool {
	for {
		// recvfrom with no address: unix.Recvfrom would allocate one.
		n, _, errno := unix.Syscall6(unix.SYS_RECVFROM, fd, uintptr(unsafe.Pointer(&buf[0])), 1,
			unix.MSG_PEEK|unix.MSG_DONTWAIT, 0, 0)
		switch errno {
		case 0:
			if n == 0 {
				return true
			}
			info, err := unix.GetsockoptTCPInfo(int(fd), unix.IPPROTO_TCP, unix.TCP_INFO)
			if err != nil { // not TCP
				return false
			}
			return info.State == tcpCloseWait || info.State == tcpClose || info.State == tcpLastAck
		case unix.EINTR:
			continue
		case unix.ECONNRESET, unix.EPIPE, unix.ENOTCONN, unix.ETIMEDOUT, unix.ECONNABORTED:
			return true
		default: // EAGAIN: the client is there and quiet
			return false
		}
	}
}
