// Package traceparent keeps or starts a request's W3C Trace Context
// (https://www.w3.org/TR/trace-context/, Level 1): it parses a
// traceparent field strictly (Parse) and, per request, keeps a valid one
// or writes a generated one into the request header (Context.Apply),
// remembering the trace id for the access log. It allocates nothing once
// the header's storage is warm. Package proxy calls Apply right after it
// sets the request id, before the filters see the request.
package traceparent

import (
	"encoding/binary"
	"encoding/hex"
	"math/rand/v2"

	"github.com/valyala/fasthttp"
)

// How Sluice uses the trace context.
//
// Sluice records no spans of its own: it forwards the client's trace
// context and starts one for requests that carry none, so that the
// engines' traces (vLLM, SGLang and TGI export OpenTelemetry spans under
// the traceparent they receive) and Sluice's access log share a trace id.
//
//   - A request with exactly one traceparent field that parses strictly
//     (Parse) keeps it, and its tracestate fields, unchanged:
//     the spec's forwarding mode (section "Processing Model in Forwarding
//     Mode"), since Sluice adds no span to the trace.
//   - A request without one, with one that does not parse, or with
//     several (the W3C test suite's test_traceparent_duplicated expects a
//     restart) gets a new traceparent — version 00, random trace-id and
//     parent-id — and its tracestate fields are dropped, as the spec's
//     restart rule says ("removes all entries from tracestate"; a
//     tracestate without its traceparent means nothing).
//   - The new traceparent's trace-flags are 01 (sampled). The spec lets a
//     component that defers the recording decision set the flag to 1
//     ("may communicate the priority of a recording by setting sampled
//     flag to 1"). Sluice defers it to the engines, and they follow the
//     flag: OpenTelemetry's default sampler (ParentBased(AlwaysOn), what
//     vLLM uses) records a child of a sampled remote parent and drops a
//     child of an unsampled one. With 00, every request that reached
//     Sluice without a trace would go unrecorded by engines that have
//     tracing on, and the trace_id in the access log would name a trace
//     nobody kept. An engine with tracing off ignores the flag.
//
// Plugins see the traceparent Sluice forwards: the header is set before
// the request phase. The access log's trace_id is the one Sluice received
// or generated, even if a plugin rewrites the header afterwards.

var (
	strTraceparent = []byte("traceparent")
	strTracestate  = []byte("tracestate")
)

const (
	// traceparentLen is a version 00 traceparent's length:
	// "00-" 32 hex "-" 16 hex "-" 2 hex.
	traceparentLen = 55
	// traceFlagsGenerated is the trace-flags of a generated traceparent.
	traceFlagsGenerated = "01"
)

// Context is one request's trace id, for the access log. It belongs to
// the request's pooled state (reset with Reset, not safe for concurrent
// use); the zero value means no trace id.
type Context struct {
	id  [32]byte // trace-id, lowercase hex
	has bool
	// header is the generated traceparent value; valid only during Apply.
	header [traceparentLen]byte
}

// Reset forgets the trace id, for the next request.
func (t *Context) Reset() { t.has = false }

// TraceID returns the trace id in lowercase hex, or nil: a view into t,
// valid until the next Apply or Reset.
func (t *Context) TraceID() []byte {
	if !t.has {
		return nil
	}
	return t.id[:]
}

// Apply keeps h's traceparent when it is valid, else replaces it with a
// generated one and drops tracestate; it records the trace id. It
// allocates nothing once the header's storage is warm.
func (t *Context) Apply(h *fasthttp.RequestHeader) {
	vals := h.PeekAll("Traceparent") // a view into h, reused by h
	if len(vals) == 1 {
		if id, ok := Parse(vals[0]); ok {
			copy(t.id[:], id)
			t.has = true
			return
		}
	}
	t.generate()
	h.DelBytes(strTracestate)
	if len(vals) > 1 {
		h.DelBytes(strTraceparent) // SetBytesKV replaces only the first
	}
	h.SetBytesKV(strTraceparent, t.header[:])
}

// generate makes a new trace id and parent id and writes the traceparent
// into t.header. The ids come from math/rand/v2's runtime source
// (ChaCha8, seeded per thread from the OS; no lock, no allocation): the
// spec asks for random ids (section "Considerations for trace-id field
// generation"), not for secret ones.
func (t *Context) generate() {
	var raw [24]byte
	for {
		binary.BigEndian.PutUint64(raw[0:], rand.Uint64())
		binary.BigEndian.PutUint64(raw[8:], rand.Uint64())
		binary.BigEndian.PutUint64(raw[16:], rand.Uint64())
		// All-zero ids are invalid; a retry happens with probability 2^-64.
		if !allZero(raw[0:16]) && !allZero(raw[16:24]) {
			break
		}
	}
	b := t.header[:0]
	b = append(b, "00-"...)
	b = hex.AppendEncode(b, raw[0:16])
	b = append(b, '-')
	b = hex.AppendEncode(b, raw[16:24])
	b = append(b, '-')
	b = append(b, traceFlagsGenerated...)
	copy(t.id[:], b[3:35])
	t.has = true
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// Parse validates a traceparent field value strictly, as the
// W3C spec's ABNF and its versioning rules say, and returns its trace-id
// (a view into v):
//
//   - optional whitespace (SP, HTAB) around the value is ignored (RFC 9110
//     section 5.5; the W3C test suite sends it);
//   - version is two lowercase hex digits, not "ff", followed by '-';
//   - trace-id is 32 lowercase hex digits, not all zero, followed by '-';
//     parent-id 16, not all zero, followed by '-'; trace-flags 2;
//   - version 00 ends there (exactly 55 bytes); a higher version may go
//     on, but only after a '-' (section "Versioning of traceparent").
//
// Uppercase hex is invalid: HEXDIGLC is lowercase only, and the spec says
// to ignore a traceparent whose trace-id or parent-id has characters it
// does not allow.
func Parse(v []byte) ([]byte, bool) {
	v = trimOWS(v)
	if len(v) < traceparentLen {
		return nil, false
	}
	if !lowerHex(v[0:2]) || v[2] != '-' || v[0] == 'f' && v[1] == 'f' {
		return nil, false
	}
	if v[0] == '0' && v[1] == '0' {
		if len(v) != traceparentLen {
			return nil, false
		}
	} else if len(v) > traceparentLen && v[traceparentLen] != '-' {
		return nil, false
	}
	id, parent, flags := v[3:35], v[36:52], v[53:55]
	if v[35] != '-' || v[52] != '-' {
		return nil, false
	}
	if !lowerHex(id) || !lowerHex(parent) || !lowerHex(flags) || zeroHex(id) || zeroHex(parent) {
		return nil, false
	}
	return id, true
}

func trimOWS(v []byte) []byte {
	for len(v) > 0 && (v[0] == ' ' || v[0] == '\t') {
		v = v[1:]
	}
	for len(v) > 0 && (v[len(v)-1] == ' ' || v[len(v)-1] == '\t') {
		v = v[:len(v)-1]
	}
	return v
}

// lowerHex reports whether b is all HEXDIGLC (0-9, a-f).
func lowerHex(b []byte) bool {
	for _, c := range b {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// zeroHex reports whether hex digits b are all '0'.
func zeroHex(b []byte) bool {
	for _, c := range b {
		if c != '0' {
			return false
		}
	}
	return true
}
