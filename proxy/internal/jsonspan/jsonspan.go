// Package jsonspan finds JSON tokens in a body without parsing all of
// it, and gives their byte spans: StringMember walks an object's top-level
// members to the last one of a name whose value is a string (package
// proxy reads and rewrites an OpenAI request's "model" with it);
// SkipWS and SkipValue step over blanks and one whole value (proxy's
// usage tracker finds a response's "usage" object with them);
// DecodeString decodes a string token; AppendString writes one. None
// allocates, except AppendString growing dst and DecodeString decoding
// an escape into the parser it is given. The functions are safe for
// concurrent use; a fastjson.Parser passed to them is not.
package jsonspan

import (
	"bytes"

	"github.com/valyala/fastjson"
)

// JSON on the request path. fastjson (github.com/valyala/fastjson) decodes
// what Sluice reads: the string tokens here and the usage objects of
// responses (proxy/usage.go). What fastjson cannot do is the walk over a
// request body's top-level members, so this package keeps one:
//
//   - fastjson gives no byte offsets, and the alias rewrite must splice the
//     new name into the original bytes (proxy/select.go says why);
//   - fastjson.Parser builds a tree of the whole document, one 80-byte
//     Value per JSON value. A request body of up to max_request_body_size
//     is client input: with fastjson v1.6.10, a 4 MiB prompt of token ids
//     cost 349 MB of allocations on its first parse (87x its size), a
//     4 MiB "[0,0,…]" 1 GB (266x), and a pooled parser keeps what it grew.
//     Walking the top level and skipping nested values allocates nothing,
//     and a warm full parse was 2 to 3 times slower than the walk on the
//     1 MiB and token-id bodies of BenchmarkFindModel;
//   - fastjson.Validate must never see client input: it recurses without
//     a depth limit, and 4 MiB of "[" overflow the goroutine stack, a fatal
//     error that no recover catches.
//
// The walk checks the object's own structure (keys, colons, commas) and
// skips nested values by counting brackets outside strings, so it accepts
// some invalid JSON; what it finds in valid JSON is what encoding/json
// finds (FuzzScanModel checks this).

// StringMember returns the bounds of the string token (quotes included)
// that is the value of body's last top-level member named name; false
// when body is not a JSON object, is malformed, or its last such member
// is not a string. dec decodes escaped keys. Duplicates resolve to the
// last, as Python's json module and Go's encoding/json do.
func StringMember(dec *fastjson.Parser, body []byte, name string) (start, end int, ok bool) {
	o, isObj := openMembers(body)
	if !isObj {
		return 0, 0, false
	}
	for o.next() {
		if !o.keyIs(dec, name) {
			continue
		}
		ok = body[o.valStart] == '"'
		start, end = o.valStart, o.valEnd
	}
	if !o.ok() {
		return 0, 0, false
	}
	return start, end, ok
}

// jsonMembers iterates the members of a JSON object.
type jsonMembers struct {
	b    []byte
	i    int
	done bool

	// The current member, after next returned true.
	key        []byte // the key token, quotes included
	keyEscaped bool   // key holds a backslash escape
	valStart   int    // the value token is b[valStart:valEnd]
	valEnd     int
}

// openMembers starts iterating the object b holds (leading blanks
// allowed); false when b does not start with one.
func openMembers(b []byte) (jsonMembers, bool) {
	i := SkipWS(b, 0)
	if i >= len(b) || b[i] != '{' {
		return jsonMembers{}, false
	}
	i = SkipWS(b, i+1)
	o := jsonMembers{b: b, i: i}
	if i < len(b) && b[i] == '}' {
		o.done = true
	}
	return o, true
}

// next moves to the next member. It returns false at the end of the
// object or at malformed input (then ok reports false).
func (o *jsonMembers) next() bool {
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
	o.key, o.keyEscaped = b[i:end], esc
	i = SkipWS(b, end)
	if i >= len(b) || b[i] != ':' {
		return o.fail()
	}
	i = SkipWS(b, i+1)
	vend, ok := SkipValue(b, i)
	if !ok {
		return o.fail()
	}
	o.valStart, o.valEnd = i, vend
	i = SkipWS(b, vend)
	switch {
	case i < len(b) && b[i] == ',':
		o.i = SkipWS(b, i+1)
	case i < len(b) && b[i] == '}':
		o.done = true
	default:
		return o.fail()
	}
	return true
}

func (o *jsonMembers) fail() bool {
	o.done, o.i = true, -1
	return false
}

// ok reports whether the iteration so far met no malformed input.
func (o *jsonMembers) ok() bool { return o.i >= 0 }

// keyIs reports whether the current key, escapes decoded, is name. dec
// decodes an escaped key; values it returned before are invalid after.
func (o *jsonMembers) keyIs(dec *fastjson.Parser, name string) bool {
	if !o.keyEscaped {
		return string(o.key[1:len(o.key)-1]) == name
	}
	s, ok := DecodeString(dec, o.key)
	return ok && string(s) == name
}

// DecodeString decodes the JSON string token tok (quotes included, as
// StringMember delimits it) with dec: a view into tok when it has no escape,
// else into dec's buffer, valid until dec's next parse. Escapes are
// decoded as fastjson does, which differs from encoding/json only on
// input that is not valid UTF-16: an escaped surrogate that is not half
// of a pair stays as its six characters (encoding/json writes U+FFFD).
func DecodeString(dec *fastjson.Parser, tok []byte) ([]byte, bool) {
	raw := tok[1 : len(tok)-1]
	if bytes.IndexByte(raw, '\\') < 0 {
		return raw, true
	}
	v, err := dec.ParseBytes(tok)
	if err != nil {
		return nil, false
	}
	s, err := v.StringBytes()
	return s, err == nil
}

// SkipWS returns the index of the first byte at or after b[i] that is
// not JSON whitespace (len(b) when there is none).
func SkipWS(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// stringEnd returns the index just past the string starting at b[i]
// (a '"'), and whether it contains escapes. The next shortRun bytes are
// read one by one (an escape-dense string finds its next quote or
// backslash there, cheaper than a call); past them the next quote, and
// then the backslashes before it, are found with bytes.IndexByte
// (vectorised), and a quote is searched for again only once past the one
// found. Each byte is read at most once for each, so a long string full
// of escapes stays linear; a long prompt is read at ~2× a byte loop's
// speed (BenchmarkFindModel).
func stringEnd(b []byte, i int) (end int, escaped, ok bool) {
	i++
	q := -1 // the first '"' at or after i, once found by IndexByte
	for i < len(b) {
		if q < i {
			k, n := i, min(len(b), i+shortRun)
			for k < n && b[k] != '"' && b[k] != '\\' {
				k++
			}
			switch {
			case k < n && b[k] == '"':
				return k + 1, escaped, true
			case k < n:
				escaped = true
				i = k + 2
				continue
			}
			j := bytes.IndexByte(b[n:], '"')
			if j < 0 {
				return 0, false, false
			}
			i, q = n, n+j
		}
		j := bytes.IndexByte(b[i:q], '\\')
		if j < 0 {
			return q + 1, escaped, true
		}
		escaped = true
		i += j + 2
	}
	return 0, false, false
}

// shortRun is how many bytes stringEnd reads one by one before it calls
// bytes.IndexByte.
const shortRun = 16

// SkipValue returns the index just past the value starting at b[i]; false
// when none starts there or it does not end. It counts brackets instead
// of recursing, so depth costs no stack, and it checks only the
// brackets and strings of a nested value, not its commas and colons.
func SkipValue(b []byte, i int) (int, bool) {
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

// AppendString appends s as a JSON string: quotes, backslashes and
// control characters escaped; other bytes as they are. (fastjson's own
// encoder quotes with strconv.AppendQuote, whose \x00 and \a escapes are
// not JSON.)
func AppendString(dst []byte, s string) []byte {
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
