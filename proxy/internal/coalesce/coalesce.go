// Package coalesce lets a streamed chunked response leave in fewer,
// larger writes: after one read of a chunked body, ReadBuffered adds the
// chunks that are already whole in the connection's read buffer, so
// events that arrived together are sent together. It never reads what
// has not arrived. The functions are safe for concurrent use on
// different readers.
package coalesce

import (
	"bufio"
	"bytes"
	"io"
)

// Coalescing stream events already received (issue 12).
//
// fasthttp writes a streamed response one Read at a time, each as one
// chunk followed by a flush: one write system call per Read. Reading a
// chunked upstream body returns at most one upstream chunk per Read, and
// an inference server sends one SSE event per chunk, so Sluice made one
// write per event even when several events had arrived together (strace,
// 300 streams × 100 events: 1.04 writes per event; nginx, which sends
// whatever it has read in one writev, 0.39). So after a Read, while the
// upstream connection's read buffer already holds the whole next chunk
// and it fits in what is left of the caller's buffer, it is read too.
// Only bytes that are already in memory are added: reading them cannot
// block, so no event waits for a later one, and an event is never split
// that would not have been.

// maxChunkSizeDigits bounds the chunk-size line coalescing accepts
// (2^28 − 1 bytes); larger chunks are left to the normal Read.
const maxChunkSizeDigits = 7

// completeChunk reports whether b starts with a whole chunk of a chunked
// body (RFC 9112 section 7.1) of positive size: its size line, as far as
// its CRLF, then size bytes of data and two more bytes (the data's CRLF).
// It returns the chunk's data size. It only answers "is everything the
// chunk reader will consume here"; the reader itself still validates the
// framing.
func completeChunk(b []byte) (size int, ok bool) {
	i := 0
	for ; i < len(b) && i <= maxChunkSizeDigits; i++ {
		v := hexDigit(b[i])
		if v < 0 {
			break
		}
		size = size<<4 | v
	}
	if i == 0 || i > maxChunkSizeDigits || size == 0 {
		return 0, false
	}
	cr := bytes.IndexByte(b[i:], '\r')
	if cr < 0 {
		return 0, false
	}
	end := i + cr + 2 + size + 2 // size line with CRLF, data, CRLF
	if end > len(b) {
		return 0, false
	}
	return size, true
}

func hexDigit(c byte) int {
	switch {
	case '0' <= c && c <= '9':
		return int(c - '0')
	case 'a' <= c && c <= 'f':
		return int(c-'a') + 10
	case 'A' <= c && c <= 'F':
		return int(c-'A') + 10
	}
	return -1
}

// ReadBuffered adds to p[:n] the chunks of a chunked body that are
// already in br, the upstream connection's read buffer, whole, while they
// fit in p; body is the chunked body's reader, reading from br. It
// returns the new n and body's error, if any. It is for a chunked body
// read without filters (package proxy's respond.go); a nil br adds
// nothing.
func ReadBuffered(br *bufio.Reader, body io.Reader, p []byte, n int) (int, error) {
	for br != nil && n < len(p) && br.Buffered() > 0 {
		b, _ := br.Peek(br.Buffered())
		size, ok := completeChunk(b)
		if !ok || size > len(p)-n {
			break
		}
		m, err := body.Read(p[n : n+size])
		n += m
		if err != nil {
			return n, err
		}
	}
	return n, nil
}
