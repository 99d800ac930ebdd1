// Package hopheaders strips hop-by-hop header fields from a fasthttp
// request or response header before a proxy forwards it: the nine fields
// RFC 9110 section 7.6.1 and net/http/httputil name (names), and every
// field the Connection header lists. StripRequest and StripResponse
// allocate nothing unless a Connection value names another field; they
// are safe for concurrent use on different headers.
package hopheaders

import (
	"bytes"
	"iter"

	"github.com/valyala/fasthttp"
)

// Stripping hop-by-hop headers cheaply (issue 12).
//
// fasthttp's DelBytes copies and normalises its key and then scans every
// header, whether the header is there or not; the nine hop-by-hop names
// deleted that way from every request and every response were 15 % of the
// instructions of a proxied request (callgrind, BenchmarkProxyHotPath).
// Almost no request carries any of them, so one pass over the headers
// finds the ones present and only those are deleted; what is left is the
// same as after nine deletes (TestStripHopHeadersMatchesDeletingAll).
// The two functions are one per fasthttp header type: through a generic
// or an interface fasthttp's iterator escapes and allocates.

// names are meaningful for one connection only and never forwarded
// (RFC 9110 section 7.6.1; the list net/http/httputil uses). Connection
// is first (connectionBit).
var names = [][]byte{
	[]byte("Connection"), []byte("Proxy-Connection"), []byte("Keep-Alive"),
	[]byte("Proxy-Authenticate"), []byte("Proxy-Authorization"), []byte("Te"),
	[]byte("Trailer"), []byte("Transfer-Encoding"), []byte("Upgrade"),
}

// StripRequest deletes from h every header of names it holds, and those
// its Connection header names.
func StripRequest(h *fasthttp.RequestHeader) {
	if present := hopPresent(h.All()); present != 0 {
		if present&connectionBit != 0 {
			delConnectionListed(h.DelBytes, h.PeekBytes(names[0]))
		}
		delHop(h.DelBytes, present)
	}
}

// StripResponse deletes from h every header of names it holds, and
// those its Connection header names.
func StripResponse(h *fasthttp.ResponseHeader) {
	if present := hopPresent(h.All()); present != 0 {
		if present&connectionBit != 0 {
			delConnectionListed(h.DelBytes, h.PeekBytes(names[0]))
		}
		delHop(h.DelBytes, present)
	}
}

// connectionBit is Connection's bit in hopPresent (names[0]).
const connectionBit = 1 << 0

// delConnectionListed deletes the headers the Connection header value
// lists (RFC 9110 §7.6.1: a proxy removes every field the Connection
// header names before forwarding; net/http/httputil does, nginx does
// not). Only a value that names such a field (rare: "keep-alive",
// "close" and "Upgrade" are the usual tokens, and cost one scan and no
// allocation) is copied, since value points into the header buffer the
// deletes rewrite.
func delConnectionListed(del func([]byte), value []byte) {
	if !namesField(value) {
		return
	}
	v := append([]byte(nil), value...)
	for len(v) > 0 {
		var tok []byte
		tok, v, _ = bytes.Cut(v, []byte{','})
		if tok = bytes.TrimSpace(tok); isConnectionField(tok) {
			del(tok)
		}
	}
}

// namesField reports whether a Connection value lists a field
// (isConnectionField).
func namesField(value []byte) bool {
	for len(value) > 0 {
		var tok []byte
		tok, value, _ = bytes.Cut(value, []byte{','})
		if isConnectionField(bytes.TrimSpace(tok)) {
			return true
		}
	}
	return false
}

// isConnectionField reports whether tok, a Connection token, names a
// field to delete: not empty, not "close", not one of names (those
// go anyway).
func isConnectionField(tok []byte) bool {
	return len(tok) > 0 && hopBit(tok) == 0 && !bytes.EqualFold(tok, []byte("close"))
}

// hopPresent has the bits (hopBit) of the hop-by-hop headers in headers.
func hopPresent(headers iter.Seq2[[]byte, []byte]) uint32 {
	var present uint32
	for k := range headers {
		present |= hopBit(k)
	}
	return present
}

// delHop deletes the hop-by-hop headers whose bits are set in present.
func delHop(del func([]byte), present uint32) {
	for i, k := range names {
		if present&(1<<i) != 0 {
			del(k)
		}
	}
}

// hopBit is the bit of key's position in names (case-insensitive),
// or 0 when key is not hop-by-hop.
func hopBit(key []byte) uint32 {
	switch len(key) { // the lengths of names' names
	case 2, 7, 10, 16, 17, 18, 19:
	default:
		return 0
	}
	for i, k := range names {
		if len(k) == len(key) && bytes.EqualFold(k, key) {
			return 1 << i
		}
	}
	return 0
}
