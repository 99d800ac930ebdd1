package sdk

import (
	"errors"
	"strconv"
)

// RedisCommand encodes a command as RESP, an array of bulk strings, for
// DispatchRedisCall: RedisCommand("INCR", "hits").
func RedisCommand(args ...string) []byte {
	b := make([]byte, 0, 16+16*len(args))
	b = append(b, '*')
	b = strconv.AppendInt(b, int64(len(args)), 10)
	b = append(b, '\r', '\n')
	for _, a := range args {
		b = append(b, '$')
		b = strconv.AppendInt(b, int64(len(a)), 10)
		b = append(b, '\r', '\n')
		b = append(b, a...)
		b = append(b, '\r', '\n')
	}
	return b
}

// RESPValue is one decoded RESP2 reply.
type RESPValue struct {
	// Kind is the reply's type byte: '+' simple string, '-' error, ':'
	// integer, '$' bulk string, '*' array.
	Kind byte
	// Null is true for a null bulk string or array ("$-1", "*-1").
	Null bool
	// Str holds a string's or an error's text.
	Str string
	// Int holds an integer.
	Int int64
	// Array holds an array's elements.
	Array []RESPValue
}

// ErrRESP is wrapped by ParseRESP's errors.
var ErrRESP = errors.New("sdk: malformed RESP")

// maxRESPNesting bounds the nesting of arrays ParseRESP accepts.
const maxRESPNesting = 32

// ParseRESP decodes one RESP2 reply from b and returns it and the bytes
// after it.
func ParseRESP(b []byte) (RESPValue, []byte, error) {
	return parseRESP(b, 0)
}

func parseRESP(b []byte, depth int) (RESPValue, []byte, error) {
	if depth > maxRESPNesting {
		return RESPValue{}, nil, errors.Join(ErrRESP, errors.New("nested too deep"))
	}
	if len(b) == 0 {
		return RESPValue{}, nil, errors.Join(ErrRESP, errors.New("empty reply"))
	}
	v := RESPValue{Kind: b[0]}
	line, rest, ok := respLine(b[1:])
	if !ok {
		return RESPValue{}, nil, errors.Join(ErrRESP, errors.New("line without CRLF"))
	}
	switch v.Kind {
	case '+', '-':
		v.Str = string(line)
		return v, rest, nil
	case ':':
		n, err := strconv.ParseInt(string(line), 10, 64)
		if err != nil {
			return RESPValue{}, nil, errors.Join(ErrRESP, err)
		}
		v.Int = n
		return v, rest, nil
	case '$', '*':
		n, err := strconv.Atoi(string(line))
		if err != nil || n < -1 {
			return RESPValue{}, nil, errors.Join(ErrRESP, errors.New("bad length "+strconv.Quote(string(line))))
		}
		if n == -1 {
			v.Null = true
			return v, rest, nil
		}
		if v.Kind == '$' {
			if n > len(rest)-2 || rest[n] != '\r' || rest[n+1] != '\n' {
				return RESPValue{}, nil, errors.Join(ErrRESP, errors.New("bulk string shorter than its length"))
			}
			v.Str = string(rest[:n])
			return v, rest[n+2:], nil
		}
		if n > len(rest)/3 { // each element takes at least ":0\r\n"-like 3 bytes
			return RESPValue{}, nil, errors.Join(ErrRESP, errors.New("array longer than the reply"))
		}
		v.Array = make([]RESPValue, 0, n)
		for range n {
			var e RESPValue
			if e, rest, err = parseRESP(rest, depth+1); err != nil {
				return RESPValue{}, nil, err
			}
			v.Array = append(v.Array, e)
		}
		return v, rest, nil
	}
	return RESPValue{}, nil, errors.Join(ErrRESP, errors.New("unknown type byte "+strconv.QuoteRune(rune(v.Kind))))
}

// respLine splits b at the first CRLF.
func respLine(b []byte) (line, rest []byte, ok bool) {
	for i := 0; i+1 < len(b); i++ {
		if b[i] == '\r' && b[i+1] == '\n' {
			return b[:i], b[i+2:], true
		}
	}
	return nil, nil, false
}
