package main

import (
	"encoding/binary"
	"math"
	"strconv"

	"github.com/sluice-proxy/sluice/plugins/internal/upstreams"
)

// fastPoolLoads reads sluice.upstream_stats in the exact shape the host
// writes it (proxy.Exchange.AppendUpstreamsJSON: fixed member order, no
// escapes in names, no space), in one pass and without allocating,
// except for an endpoint address that changed since the last snapshot
// (dst's old entries are reused). ok is false for anything else, which
// poolLoads then reads with the general, validating scanner: every
// document this accepts is valid JSON that the scanner reads the same way
// (FuzzPoolLoads checks it). With jsonscan, the four nested scans and
// their allocations cost a Go guest ~150 µs a snapshot on the test
// machine; with several instances and a request every few milliseconds,
// each request takes a fresh snapshot.
func fastPoolLoads(dst []endpoint, data []byte, pool string) (name string, out []endpoint, ok bool) {
	r := statsReader{b: data}
	if !r.lit(`{"pools":{`) {
		return "", dst, false
	}
	if r.lit(`}}`) {
		return pool, dst, r.end()
	}
	base := len(dst)
	for first := true; ; first = false {
		key, ok := r.str()
		if !ok || !r.lit(`:{"policy":`) {
			return "", dst, false
		}
		if _, ok := r.str(); !ok || !r.lit(`,"healthy":`) || !r.num() || !r.lit(`,"total":`) || !r.num() ||
			!r.lit(`,"max_in_flight":`) || !r.num() || !r.lit(`,"queued":`) || !r.num() || !r.lit(`,"endpoints":{`) {
			return "", dst, false
		}
		// The pool asked for, or the first when none is: read its
		// endpoints into dst; skip the others' (dst is cut back).
		want := pool == "" && first || pool != "" && string(key) == pool
		if want && name == "" {
			name = pool
			if pool == "" {
				name = string(key)
			}
		} else {
			want = false
		}
		mark := len(dst)
		if !r.lit(`}`) {
			for {
				addr, load, up, ok := r.endpoint()
				if !ok {
					return "", dst[:base], false
				}
				if up && want {
					dst = appendEndpoint(dst, addr, load)
				}
				if r.lit(`}`) {
					break
				}
				if !r.lit(`,`) {
					return "", dst[:base], false
				}
			}
		}
		if !want {
			dst = dst[:mark]
		}
		if !r.lit(`}`) {
			return "", dst[:base], false
		}
		if r.lit(`}}`) {
			if !r.end() {
				return "", dst[:base], false
			}
			if name == "" {
				name = pool // not found: no endpoints
			}
			return name, dst, true
		}
		if !r.lit(`,`) {
			return "", dst[:base], false
		}
		if pool == "" { // several pools: left to the validating scanner
			return "", dst[:base], false
		}
	}
}

// statsReader reads the host's stats JSON; pos is the next byte.
type statsReader struct {
	b   []byte
	pos int
}

// lit consumes s if the input continues with it.
func (r *statsReader) lit(s string) bool {
	if len(r.b)-r.pos >= len(s) && string(r.b[r.pos:r.pos+len(s)]) == s {
		r.pos += len(s)
		return true
	}
	return false
}

func (r *statsReader) end() bool { return r.pos == len(r.b) }

// str consumes a string without escapes or control bytes and returns
// its content.
func (r *statsReader) str() ([]byte, bool) {
	if !r.lit(`"`) {
		return nil, false
	}
	start := r.pos
	for ; r.pos < len(r.b); r.pos++ {
		switch c := r.b[r.pos]; {
		case c == '"':
			r.pos++
			return r.b[start : r.pos-1], true
		case c == '\\' || c < 0x20:
			return nil, false
		}
	}
	return nil, false
}

// number consumes a JSON number (RFC 8259) and returns its value as
// number() reads it (negative, infinite or out of range: 0); ok is false
// when there is none.
func (r *statsReader) number() (float64, bool) {
	start := r.pos
	r.lit("-")
	intStart := r.pos
	digits := r.digits()
	if digits == 0 || digits > 1 && r.b[intStart] == '0' {
		return 0, false
	}
	simple := r.b[start] != '-' && digits <= 15
	if r.lit(".") {
		if r.digits() == 0 {
			return 0, false
		}
		simple = false
	}
	if r.lit("e") || r.lit("E") {
		if !r.lit("+") {
			r.lit("-")
		}
		if r.digits() == 0 {
			return 0, false
		}
		simple = false
	}
	if simple { // a small non-negative integer: the usual in_flight
		var v float64
		for _, c := range r.b[intStart:r.pos] {
			v = v*10 + float64(c-'0')
		}
		return v, true
	}
	v, err := strconv.ParseFloat(string(r.b[start:r.pos]), 64)
	if err != nil { // out of range: 0, as number() reads it
		return 0, true
	}
	return clean(v), true
}

// digits consumes decimal digits and returns how many.
func (r *statsReader) digits() int {
	start := r.pos
	for r.pos < len(r.b) && r.b[r.pos] >= '0' && r.b[r.pos] <= '9' {
		r.pos++
	}
	return r.pos - start
}

// num consumes a number whose value is not needed.
func (r *statsReader) num() bool {
	_, ok := r.number()
	return ok
}

// boolean consumes true or false.
func (r *statsReader) boolean() (v, ok bool) {
	switch {
	case r.lit("true"):
		return true, true
	case r.lit("false"):
		return false, true
	}
	return false, false
}

// endpoint consumes one `"addr":{…}` member of "endpoints".
func (r *statsReader) endpoint() (addr []byte, load float64, healthy, ok bool) {
	if addr, ok = r.str(); !ok || !r.lit(`:{"healthy":`) {
		return nil, 0, false, false
	}
	if healthy, ok = r.boolean(); !ok || !r.lit(`,"ejected":`) {
		return nil, 0, false, false
	}
	if _, ok = r.boolean(); !ok || !r.lit(`,"weight":`) || !r.num() || !r.lit(`,"in_flight":`) {
		return nil, 0, false, false
	}
	inFlight, ok := r.number()
	if !ok || !r.lit(`,"queue_depth":`) {
		return nil, 0, false, false
	}
	queue, ok := r.number()
	if !ok || !r.lit(`,"running":`) || !r.num() || !r.lit(`,"kv_cache_usage":`) || !r.num() || !r.lit(`}`) {
		return nil, 0, false, false
	}
	return addr, inFlight + queue, healthy, true
}

// appendEndpoint appends a usable endpoint (an address without ',' or
// ' ', which sluice.endpoint would split) to dst, reusing the address
// string of dst's next slot, left by the previous snapshot read into the
// same slice (in the host's order), when it is the same.
func appendEndpoint(dst []endpoint, addr []byte, load float64) []endpoint {
	n := len(dst)
	if n < cap(dst) {
		if prev := dst[:n+1][n].addr; prev != "" && prev == string(addr) {
			return append(dst, endpoint{addr: prev, load: load}) // checked when first read
		}
	}
	if !usableAddr(addr) {
		return dst
	}
	return append(dst, endpoint{addr: string(addr), load: load})
}

// usableAddr reports whether addr is not empty and has no ',' or ' '
// (a byte loop: bytes.ContainsAny costs a Go guest ten times more).
func usableAddr(addr []byte) bool {
	for _, c := range addr {
		if c == ',' || c == ' ' {
			return false
		}
	}
	return len(addr) > 0
}

// decodePoolLoads reads sluice.upstream_loads' answer
// (proxy.Exchange.AppendPoolLoads), appending the pool's endpoints to
// dst: u32 little-endian name length and the name, then per endpoint in
// rotation a u32 little-endian address length, the address, and two
// little-endian f64, requests in flight and queue depth (their sum is
// the load; negative or not finite counts as 0). prev is the last
// snapshot's pool name, returned instead of a new string when equal. ok
// is false for a malformed answer.
func decodePoolLoads(dst []endpoint, b []byte, prev string) (name string, out []endpoint, ok bool) {
	raw, b, ok := upstreams.CutField(b)
	if !ok {
		return "", dst, false
	}
	name = prev
	if string(raw) != prev {
		name = string(raw)
	}
	base := len(dst)
	for len(b) > 0 {
		var addr []byte
		if addr, b, ok = upstreams.CutField(b); !ok || len(b) < 16 {
			return "", dst[:base], false
		}
		inFlight := math.Float64frombits(binary.LittleEndian.Uint64(b))
		queue := math.Float64frombits(binary.LittleEndian.Uint64(b[8:]))
		b = b[16:]
		dst = appendEndpoint(dst, addr, clean(inFlight)+clean(queue))
	}
	return name, dst, true
}
