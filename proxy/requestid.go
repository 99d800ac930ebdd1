package proxy

import (
	"crypto/rand"
	"encoding/hex"
	"sync/atomic"
)

// requestIDs generates x-request-id values: a random per-process prefix
// and a counter, 32 hex digits, unique within the process and unlikely to
// collide across processes. Safe for concurrent use; no allocation.
type requestIDs struct {
	prefix [16]byte // hex of 8 random bytes
	n      atomic.Uint64
}

func (g *requestIDs) init() {
	var raw [8]byte
	_, _ = rand.Read(raw[:]) // crypto/rand.Read never fails on supported platforms
	hex.Encode(g.prefix[:], raw[:])
}

// append appends a new ID to dst.
func (g *requestIDs) append(dst []byte) []byte {
	v := g.n.Add(1)
	dst = append(dst, g.prefix[:]...)
	const digits = "0123456789abcdef"
	for shift := 60; shift >= 0; shift -= 4 {
		dst = append(dst, digits[(v>>uint(shift))&0xf])
	}
	return dst
}
