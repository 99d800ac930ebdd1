package proxy

import (
	"unicode/utf16"
	"unicode/utf8"
)

// A small JSON scanner for the request path: it walks the members of an
// object without decoding values it does not need and without
// allocating, which is all Sluice needs to read a request's "model" and a
// response's "usage". It checks the object's own structure (keys,
// colons, commas) and skips nested values by counting brackets outside
// strings, so it accepts some invalid JSON; what it finds in valid JSON
// is what encoding/json finds (FuzzScanModel checks this).

// jsonObject iterates the members of a JSON object.
type jsonObject struct {
	b    []byte
	i    int
	done bool

	// The current member, after next returned true.
	key        []byte // raw key, without quotes, escapes not decoded
	keyEscaped bool
	val        []byte // the raw value token
	valStart   int    // val's offset in the scanned bytes
}

// openObject starts iterating the object b holds (leading blanks
// allowed); false when b does not start with one.
func openObject(b []byte) (jsonObject, bool) {
	i := skipWS(b, 0)
	if i >= len(b) || b[i] != '{' {
		return jsonObject{}, false
	}
	i = skipWS(b, i+1)
	o := jsonObject{b: b, i: i}
	if i < len(b) && b[i] == '}' {
		o.done = true
	}
	return o, true
}

// next moves to the next member. It returns false at the end of the
// object or at malformed input (then ok reports false).
func (o *jsonObject) next() bool {
	if o.done {
		return false
	}
	b, i := o.b, o.i
	if i >= len(b) || b[i] != '"' {
		return o.fail()
	}
	end, esc, ok := stringEnd(b, i)
	if !ok {
		return o.fail()
	}
	o.key, o.keyEscaped = b[i+1:end-1], esc
	i = skipWS(b, end)
	if i >= len(b) || b[i] != ':' {
		return o.fail()
	}
	i = skipWS(b, i+1)
	vend, ok := skipValue(b, i)
	if !ok {
		return o.fail()
	}
	o.val, o.valStart = b[i:vend], i
	i = skipWS(b, vend)
	switch {
	case i < len(b) && b[i] == ',':
		o.i = skipWS(b, i+1)
	case i < len(b) && b[i] == '}':
		o.done = true
	default:
		return o.fail()
	}
	return true
}

func (o *jsonObject) fail() bool {
	o.done, o.i = true, -1
	return false
}

// ok reports whether the iteration so far met no malformed input.
func (o *jsonObject) ok() bool { return o.i >= 0 }

// keyIs reports whether the current key, escapes decoded, is name.
func (o *jsonObject) keyIs(name string) bool {
	if !o.keyEscaped {
		return string(o.key) == name
	}
	var buf [64]byte
	return string(appendUnescaped(buf[:0], o.key)) == name
}

func skipWS(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// stringEnd returns the index just past the string starting at b[i]
// (a '"'), and whether it contains escapes.
func stringEnd(b []byte, i int) (end int, escaped, ok bool) {
	i++
	for i < len(b) {
		j := indexQuoteOrBackslash(b[i:])
		if j < 0 {
			return 0, false, false
		}
		i += j
		if b[i] == '"' {
			return i + 1, escaped, true
		}
		escaped = true
		i += 2
	}
	return 0, false, false
}

// indexQuoteOrBackslash returns the index of the first '"' or '\\' in b,
// or -1, in one pass (searching for each byte separately would make a
// long string full of escapes quadratic).
func indexQuoteOrBackslash(b []byte) int {
	for i, c := range b {
		if c == '"' || c == '\\' {
			return i
		}
	}
	return -1
}

// skipValue returns the index just past the value starting at b[i].
func skipValue(b []byte, i int) (int, bool) {
	if i >= len(b) {
		return 0, false
	}
	switch b[i] {
	case '"':
		end, _, ok := stringEnd(b, i)
		return end, ok
	case '{', '[':
		depth := 0
		for i < len(b) {
			switch b[i] {
			case '"':
				end, _, ok := stringEnd(b, i)
				if !ok {
					return 0, false
				}
				i = end
				continue
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return i + 1, true
				}
			}
			i++
		}
		return 0, false
	case ',', '}', ']', ':':
		return 0, false
	}
	start := i // a number, true, false, null
	for i < len(b) {
		switch b[i] {
		case ',', '}', ']', ' ', '\t', '\n', '\r':
			return i, i > start
		case '"', '{', '[', ':':
			return 0, false
		}
		i++
	}
	return i, i > start
}

// appendUnescaped appends the JSON string content raw (no quotes) with
// its escapes decoded, as encoding/json does: a lone surrogate becomes
// U+FFFD.
func appendUnescaped(dst, raw []byte) []byte {
	for i := 0; i < len(raw); i++ {
		c := raw[i]
		if c != '\\' || i+1 >= len(raw) {
			dst = append(dst, c)
			continue
		}
		i++
		switch raw[i] {
		case 'b':
			dst = append(dst, '\b')
		case 'f':
			dst = append(dst, '\f')
		case 'n':
			dst = append(dst, '\n')
		case 'r':
			dst = append(dst, '\r')
		case 't':
			dst = append(dst, '\t')
		case 'u':
			r, n := hex4(raw[i+1:])
			if n < 0 {
				dst = append(dst, 'u')
				continue
			}
			i += 4
			if utf16.IsSurrogate(r) {
				r2 := rune(-1)
				if i+2 < len(raw) && raw[i+1] == '\\' && raw[i+2] == 'u' {
					r2, _ = hex4(raw[i+3:])
				}
				if dec := utf16.DecodeRune(r, r2); dec != utf8.RuneError {
					i += 6
					r = dec
				} else {
					r = utf8.RuneError
				}
			}
			dst = utf8.AppendRune(dst, r)
		default: // '"', '\\', '/' and anything else: the byte itself
			dst = append(dst, raw[i])
		}
	}
	return dst
}

// hex4 decodes four hex digits; n is -1 when there are not four.
func hex4(b []byte) (r rune, n int) {
	if len(b) < 4 {
		return 0, -1
	}
	for _, c := range b[:4] {
		var v byte
		switch {
		case '0' <= c && c <= '9':
			v = c - '0'
		case 'a' <= c && c <= 'f':
			v = c - 'a' + 10
		case 'A' <= c && c <= 'F':
			v = c - 'A' + 10
		default:
			return 0, -1
		}
		r = r<<4 | rune(v)
	}
	return r, 4
}

// parseUint reads a non-negative JSON integer token; false for anything
// else (a fraction, an exponent, a sign, null).
func parseUint(b []byte) (uint64, bool) {
	if len(b) == 0 || len(b) > 19 {
		return 0, false
	}
	var n uint64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + uint64(c-'0')
	}
	return n, true
}

// appendJSONString appends s as a JSON string: quotes, backslashes and
// control characters escaped; other bytes as they are.
func appendJSONString(dst []byte, s string) []byte {
	const hexDigits = "0123456789abcdef"
	dst = append(dst, '"')
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '"' || c == '\\':
			dst = append(dst, '\\', c)
		case c < 0x20:
			dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
		default:
			dst = append(dst, c)
		}
	}
	return append(dst, '"')
}
