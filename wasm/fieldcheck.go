package wasm

import (
	"github.com/sluice-proxy/sluice/proxy"
)

// Header fields a guest writes are checked before they reach a map: with
// proxy_add_header_map_value, proxy_replace_header_map_value,
// proxy_set_header_map_pairs, proxy_send_local_response and
// proxy_http_call. fasthttp would not let a CR or LF through to the wire
// (it turns them into spaces), but the guest would be told OK for a
// header that was not sent as written, and a ":method" or ":path" goes
// into the upstream request line, where fasthttp does not check it at
// all. Envoy refuses such headers at its codec; a Proxy-Wasm host cannot
// return an error later, so it refuses them at the host call with
// BAD_ARGUMENT and changes nothing.

// validField reports whether name: value may be written into a header
// map:
//   - a regular name is an RFC 9110 token; its value holds no control
//     byte other than horizontal tab (no CR, LF or NUL) and no DEL;
//   - a pseudo-header is ':' and a token. ":method" must be a token;
//     ":path" must start with '/' (or be "*") and hold no whitespace or
//     control bytes; ":authority" must be empty or host[:port]
//     (proxy.ValidAuthority); ":scheme" must be an RFC 3986 scheme;
//     ":status" three digits, 100–999; other pseudo-headers follow the
//     value rule of regular fields.
//
// Pseudo-header names are compared ignoring ASCII case (maps lower-case
// names). It allocates nothing.
func validField(name, value []byte) bool {
	if len(name) == 0 {
		return false
	}
	if name[0] != ':' {
		return isToken(name) && isFieldValue(value)
	}
	if !isToken(name[1:]) {
		return false
	}
	switch {
	case equalFoldASCII(name, ":method"):
		return isToken(value)
	case equalFoldASCII(name, ":path"):
		return validPath(value)
	case equalFoldASCII(name, ":authority"):
		return len(value) == 0 || proxy.ValidAuthority(value)
	case equalFoldASCII(name, ":scheme"):
		return validScheme(value)
	case equalFoldASCII(name, ":status"):
		return len(value) == 3 && value[0] >= '1' && value[0] <= '9' &&
			isDigit(value[1]) && isDigit(value[2])
	}
	return isFieldValue(value)
}

// validFieldOrKept is validField, except that a field equal to one h holds
// already is accepted: a guest that reads the whole map and writes it back
// (proxy_get_header_map_pairs, then proxy_set_header_map_pairs) must not
// fail because the client sent something the rules above refuse and
// fasthttp accepts (an absolute-form ":path", a space in the Host).
func validFieldOrKept(h *proxy.Headers, name, value []byte) bool {
	if validField(name, value) {
		return true
	}
	for i := 0; i < h.Len(); i++ {
		k, v := h.At(i)
		if equalFoldASCII(k, name) && string(v) == string(value) {
			return true
		}
	}
	return false
}

// validPath: "*", or '/' then no whitespace, control byte or DEL.
func validPath(v []byte) bool {
	if len(v) == 1 && v[0] == '*' {
		return true
	}
	if len(v) == 0 || v[0] != '/' {
		return false
	}
	for _, c := range v {
		if c <= ' ' || c == 0x7f {
			return false
		}
	}
	return true
}

// validScheme: ALPHA *( ALPHA / DIGIT / "+" / "-" / "." ) (RFC 3986 3.1).
func validScheme(v []byte) bool {
	if len(v) == 0 || !isAlpha(v[0]) {
		return false
	}
	for _, c := range v[1:] {
		if !isAlpha(c) && !isDigit(c) && c != '+' && c != '-' && c != '.' {
			return false
		}
	}
	return true
}

// isToken reports whether b is a non-empty RFC 9110 token (a method or a
// field name).
func isToken(b []byte) bool {
	if len(b) == 0 {
		return false
	}
	for _, c := range b {
		switch {
		case isAlpha(c), isDigit(c):
		case c == '!' || c == '#' || c == '$' || c == '%' || c == '&' || c == '\'' || c == '*' ||
			c == '+' || c == '-' || c == '.' || c == '^' || c == '_' || c == '`' || c == '|' || c == '~':
		default:
			return false
		}
	}
	return true
}

// isFieldValue reports whether b holds no control characters other than
// horizontal tab (no CR, LF or NUL that could split a message) and no DEL:
// RFC 9110's field-value bytes, as nghttp2 checks them.
func isFieldValue(b []byte) bool {
	for _, c := range b {
		if (c < 0x20 && c != '\t') || c == 0x7f {
			return false
		}
	}
	return true
}

func isAlpha(c byte) bool { return c|0x20 >= 'a' && c|0x20 <= 'z' }
func isDigit(c byte) bool { return c >= '0' && c <= '9' }

func lowerASCII(c byte) byte {
	if c >= 'A' && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}

// equalFoldASCII reports whether a and b are equal, ignoring the case of
// ASCII letters.
func equalFoldASCII[S string | []byte](a []byte, b S) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if lowerASCII(a[i]) != lowerASCII(b[i]) {
			return false
		}
	}
	return true
}
