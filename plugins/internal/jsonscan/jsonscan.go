// Package jsonscan is a small, allocation-light JSON scanner for the top
// level of request and response bodies, shared by the policy plugins. It
// validates a document and returns the byte spans of the members asked
// for, without decoding the rest: a Go guest scans a 1 MiB prompt in a few
// milliseconds, inside a plugin's call budget, where a full decode would not
// fit. It builds for the host and for wasip1, so it is tested and fuzzed
// on the host.
package jsonscan

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math/bits"
	"strconv"
)

// MaxDepth bounds the nesting the scanner accepts, so a hostile body
// cannot exhaust the guest's stack.
const MaxDepth = 256

// ErrNotObject is returned by Object when the document is valid JSON
// but its top level is not an object.
var ErrNotObject = errors.New("the JSON document is not an object")

// SyntaxError names the byte offset of the first problem.
type SyntaxError struct {
	off int
	msg string
}

func (e *SyntaxError) Error() string {
	return "invalid JSON at offset " + strconv.Itoa(e.off) + ": " + e.msg
}

// Member is the span of one top-level Member's value: data[start:end], and
// how many times the key occurred (the span is that of the last occurrence,
// which is the one Python's json module, Go's encoding/json and most
// inference servers keep).
type Member struct {
	Start, End int // the value is data[Start:End]
	Count      int // occurrences of the key
}

// found reports whether the key occurred at all.
func (m Member) Found() bool { return m.Count > 0 }

// raw returns the value's bytes (nil when the key did not occur).
func (m Member) Raw(data []byte) []byte {
	if m.Count == 0 {
		return nil
	}
	return data[m.Start:m.End]
}

// Object validates data as one JSON document whose top level is an
// object, and returns for each of keys the span of its value. Keys are
// compared after unescaping, exactly and case-sensitively, so
// `"mod\u0065l"` is the key "model" (as a JSON parser upstream sees it) and
// "Model" is not. Errors are ErrNotObject or a *SyntaxError.
func Object(data []byte, keys ...string) ([]Member, error) {
	out := make([]Member, len(keys))
	s := jsonScanner{data: data}
	s.space()
	if s.pos >= len(data) {
		return nil, s.fail("empty document")
	}
	if data[s.pos] != '{' {
		if err := s.value(0); err != nil {
			return nil, err
		}
		if err := s.end(); err != nil {
			return nil, err
		}
		return nil, ErrNotObject
	}
	if s.open('}') {
		return out, s.end()
	}
	for {
		s.space()
		ks := s.pos
		escaped, err := s.str()
		if err != nil {
			return nil, err
		}
		ke := s.pos
		key := data[ks+1 : ke-1]
		if err := s.colon(); err != nil {
			return nil, err
		}
		vs := s.pos
		if err := s.value(1); err != nil {
			return nil, err
		}
		for i, k := range keys {
			if keyEquals(key, escaped, data[ks:ke], k) {
				out[i].Start, out[i].End = vs, s.pos
				out[i].Count++
			}
		}
		if more, err := s.more('}', "an object"); err != nil {
			return nil, err
		} else if !more {
			return out, s.end()
		}
	}
}

// keyEquals compares a raw key (without quotes) with want; quoted is the
// key with its quotes, decoded only when it has escapes.
func keyEquals(raw []byte, escaped bool, quoted []byte, want string) bool {
	if !escaped {
		return string(raw) == want
	}
	var k string
	if json.Unmarshal(quoted, &k) != nil {
		return false
	}
	return k == want
}

// jsonScanner walks a document; pos is the next byte to read.
type jsonScanner struct {
	data []byte
	pos  int
}

func (s *jsonScanner) fail(msg string) error { return &SyntaxError{off: s.pos, msg: msg} }

func (s *jsonScanner) peek() byte {
	if s.pos < len(s.data) {
		return s.data[s.pos]
	}
	return 0
}

func (s *jsonScanner) space() {
	for s.pos < len(s.data) {
		switch s.data[s.pos] {
		case ' ', '\t', '\n', '\r':
			s.pos++
		default:
			return
		}
	}
}

// end checks that only whitespace follows the document.
func (s *jsonScanner) end() error {
	s.space()
	if s.pos != len(s.data) {
		return s.fail("unexpected data after the document")
	}
	return nil
}

// colon consumes the ':' after an object key and the space around it.
func (s *jsonScanner) colon() error {
	s.space()
	if s.peek() != ':' {
		return s.fail("want ':' after an object key")
	}
	s.pos++
	s.space()
	return nil
}

// open consumes the opening byte of an object or array at pos and the
// space after it; when close follows (the container is empty) it consumes
// that too and reports true.
func (s *jsonScanner) open(close byte) (empty bool) {
	s.pos++
	s.space()
	if s.peek() == close {
		s.pos++
		return true
	}
	return false
}

// more consumes what follows a member or element: after space, a ','
// (more is true: another follows) or the closing byte close (more is
// false, err nil); anything else is an error naming the container in.
func (s *jsonScanner) more(close byte, in string) (more bool, err error) {
	s.space()
	switch s.peek() {
	case ',':
		s.pos++
		return true, nil
	case close:
		s.pos++
		return false, nil
	}
	return false, s.fail("want ',' or '" + string(close) + "' in " + in)
}

// value skips one value at the given nesting depth.
func (s *jsonScanner) value(depth int) error {
	if depth > MaxDepth {
		return s.fail("nesting deeper than " + strconv.Itoa(MaxDepth))
	}
	switch c := s.peek(); {
	case c == '{':
		if s.open('}') {
			return nil
		}
		for {
			s.space()
			if _, err := s.str(); err != nil {
				return err
			}
			if err := s.colon(); err != nil {
				return err
			}
			if err := s.value(depth + 1); err != nil {
				return err
			}
			if more, err := s.more('}', "an object"); !more {
				return err
			}
		}
	case c == '[':
		if s.open(']') {
			return nil
		}
		for {
			s.space()
			if err := s.value(depth + 1); err != nil {
				return err
			}
			if more, err := s.more(']', "an array"); !more {
				return err
			}
		}
	case c == '"':
		_, err := s.str()
		return err
	case c == '-' || (c >= '0' && c <= '9'):
		return s.number()
	case c == 't':
		return s.literal("true")
	case c == 'f':
		return s.literal("false")
	case c == 'n':
		return s.literal("null")
	case c == 0 && s.pos >= len(s.data):
		return s.fail("unexpected end of document")
	}
	return s.fail(fmt.Sprintf("unexpected byte %q", s.peek()))
}

func (s *jsonScanner) literal(lit string) error {
	if len(s.data)-s.pos < len(lit) || string(s.data[s.pos:s.pos+len(lit)]) != lit {
		return s.fail("invalid literal")
	}
	s.pos += len(lit)
	return nil
}

// str skips a string (pos at its opening quote) and reports whether it
// had escapes.
func (s *jsonScanner) str() (escaped bool, err error) {
	if s.peek() != '"' {
		return false, s.fail("want a string")
	}
	s.pos++
	for {
		i := nextSpecial(s.data[s.pos:])
		if i < 0 {
			s.pos = len(s.data)
			return false, s.fail("unterminated string")
		}
		s.pos += i
		switch s.data[s.pos] {
		case '"':
			s.pos++
			return escaped, nil
		case '\\':
			escaped = true
			if s.pos+1 >= len(s.data) {
				return false, s.fail("unterminated escape")
			}
			switch s.data[s.pos+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				s.pos += 2
			case 'u':
				if len(s.data)-s.pos < 6 || !isHex4(s.data[s.pos+2:s.pos+6]) {
					return false, s.fail("invalid \\u escape")
				}
				s.pos += 6
			default:
				return false, s.fail("invalid escape")
			}
		default:
			return false, s.fail("control byte in a string")
		}
	}
}

// nextSpecial returns the index of the first byte of b that ends a run of
// plain string content — '"', '\\' or a control byte below 0x20 — or -1.
//
// It tests 16 bytes per iteration with word arithmetic: string content is
// most of a request body, and fewer iterations also mean fewer of the
// host's stop checks, which a host that can interrupt guests adds to loops.
func nextSpecial(b []byte) int {
	i := 0
	for ; i+16 <= len(b); i += 16 {
		m1 := specialMask(binary.LittleEndian.Uint64(b[i:]))
		m2 := specialMask(binary.LittleEndian.Uint64(b[i+8:]))
		if m1 != 0 {
			return i + bits.TrailingZeros64(m1)/8
		}
		if m2 != 0 {
			return i + 8 + bits.TrailingZeros64(m2)/8
		}
	}
	for ; i < len(b); i++ {
		if c := b[i]; c == '"' || c == '\\' || c < 0x20 {
			return i
		}
	}
	return -1
}

// specialMask returns, for the 8 bytes of x (little-endian), a word whose
// lowest set bit is the high bit of the first byte that is '"', '\\' or
// below 0x20, or 0 when there is none. (Bits above the lowest may be set
// spuriously by borrows; only the lowest is used.)
func specialMask(x uint64) uint64 {
	const ones, highs = 0x0101010101010101, 0x8080808080808080
	q := x ^ (ones * '"')
	bs := x ^ (ones * '\\')
	return ((q-ones)&^q | (bs-ones)&^bs | (x-ones*0x20)&^x) & highs
}

func isHex4(b []byte) bool {
	for _, c := range b {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F') {
			return false
		}
	}
	return true
}

// number skips a number in RFC 8259 syntax.
func (s *jsonScanner) number() error {
	if s.peek() == '-' {
		s.pos++
	}
	switch c := s.peek(); {
	case c == '0':
		s.pos++
	case c >= '1' && c <= '9':
		s.digits()
	default:
		return s.fail("invalid number")
	}
	if s.peek() == '.' {
		s.pos++
		if c := s.peek(); c < '0' || c > '9' {
			return s.fail("invalid number: no digits after '.'")
		}
		s.digits()
	}
	if c := s.peek(); c == 'e' || c == 'E' {
		s.pos++
		if c := s.peek(); c == '+' || c == '-' {
			s.pos++
		}
		if c := s.peek(); c < '0' || c > '9' {
			return s.fail("invalid number: no digits in the exponent")
		}
		s.digits()
	}
	return nil
}

func (s *jsonScanner) digits() {
	for s.pos < len(s.data) && s.data[s.pos] >= '0' && s.data[s.pos] <= '9' {
		s.pos++
	}
}

// String decodes raw as a JSON string; ok is false for any other
// value (null included).
func String(raw []byte) (string, bool) {
	if len(raw) < 2 || raw[0] != '"' {
		return "", false
	}
	var v string
	if json.Unmarshal(raw, &v) != nil {
		return "", false
	}
	return v, true
}

// Int decodes raw as an integer. Integral floats ("256.0", "1e3") are
// accepted, as Python servers accept them; ok is false for null, other
// types, fractions and values outside ±2^53.
func Int(raw []byte) (int64, bool) {
	if len(raw) == 0 || !(raw[0] == '-' || raw[0] >= '0' && raw[0] <= '9') {
		return 0, false
	}
	if n, err := strconv.ParseInt(string(raw), 10, 64); err == nil {
		if n > 1<<53 || n < -(1<<53) {
			return 0, false
		}
		return n, true
	}
	f, err := strconv.ParseFloat(string(raw), 64)
	if err != nil || f != float64(int64(f)) || f > 1<<53 || f < -(1<<53) {
		return 0, false
	}
	return int64(f), true
}
