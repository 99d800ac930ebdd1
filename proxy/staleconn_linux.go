package proxy

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

const peekSupported = true

// peek runs once per check under the connection's poller; it returns true
// so the runtime never waits for readability. It calls recvfrom directly,
// without a source address: unix.Recvfrom allocates one per call.
func (s *staleCheck) peek(fd uintptr) bool {
	n, _, errno := unix.Syscall6(unix.SYS_RECVFROM, fd, uintptr(unsafe.Pointer(&s.buf[0])), 1,
		unix.MSG_PEEK|unix.MSG_DONTWAIT, 0, 0)
	switch {
	case errno == unix.EAGAIN || errno == unix.EINTR:
		s.gone = false // open, nothing pending
	case errno != 0:
		s.gone = true // reset
	default:
		s.gone = n == 0 // EOF; pending bytes: open
	}
	return true
}
