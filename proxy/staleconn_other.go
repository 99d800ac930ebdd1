//go:build !linux

package proxy

// peekSupported is false: without the peek (Linux only for now), a pooled
// connection the upstream closed fails its request with 502.
const peekSupported = false

func (s *staleCheck) peek(uintptr) bool { return true }
