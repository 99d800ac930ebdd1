package wasm

import (
	"errors"
	"fmt"
	"strconv"

	"github.com/redis/go-redis/v9"
)

// RESP (the Redis serialization protocol, version 2) as the Higress
// extension uses it: a plugin passes proxy_redis_call one command as an
// array of bulk strings ("*2\r\n$4\r\nINCR\r\n$1\r\nk\r\n"), and reads the
// reply back, RESP-encoded, from buffer 9.

// RESP limits.
const (
	// MaxRedisQuery caps the RESP query a plugin passes (larger is
	// BAD_ARGUMENT).
	MaxRedisQuery = 1 << 20
	// maxRedisArgs caps the arguments of one command.
	maxRedisArgs = 1 << 16
	// maxRESPDepth caps the nesting of a reply the host encodes (Redis
	// replies nest a few levels at most: EVAL can return nested tables).
	maxRESPDepth = 32
)

// parseRESPCommand reads one command, an array of one or more bulk
// strings, from query, which must hold exactly that. The arguments are
// copied out of query (it may be guest memory) into one buffer. The error
// names what is malformed and where.
func parseRESPCommand(query []byte) ([]any, error) {
	if len(query) > MaxRedisQuery {
		return nil, fmt.Errorf("query is %d bytes, over %d", len(query), MaxRedisQuery)
	}
	if len(query) == 0 || query[0] != '*' {
		return nil, errors.New("query must be a RESP array of bulk strings (start with '*')")
	}
	n, pos, err := respLength(query, 1)
	if err != nil {
		return nil, fmt.Errorf("array length: %w", err)
	}
	if n < 1 || n > maxRedisArgs {
		return nil, fmt.Errorf("array of %d elements, want 1 to %d", n, maxRedisArgs)
	}
	// Every element takes at least "$0\r\n\r\n": a count the query cannot
	// hold is refused before anything is allocated for it.
	if n > (len(query)-pos)/6 {
		return nil, fmt.Errorf("array of %d elements does not fit in %d bytes", n, len(query))
	}
	buf := append([]byte(nil), query...)
	args := make([]any, 0, n)
	for i := range n {
		if pos >= len(buf) || buf[pos] != '$' {
			return nil, fmt.Errorf("element %d at byte %d is not a bulk string", i, pos)
		}
		size, next, err := respLength(buf, pos+1)
		if err != nil {
			return nil, fmt.Errorf("element %d: %w", i, err)
		}
		if size < 0 || size > len(buf)-next-2 {
			return nil, fmt.Errorf("element %d: length %d does not fit in the query", i, size)
		}
		end := next + size
		if buf[end] != '\r' || buf[end+1] != '\n' {
			return nil, fmt.Errorf("element %d: missing CRLF after %d bytes", i, size)
		}
		args = append(args, buf[next:end:end])
		pos = end + 2
	}
	if pos != len(buf) {
		return nil, fmt.Errorf("%d bytes after the command (one command per call)", len(buf)-pos)
	}
	return args, nil
}

// respLength reads a decimal length ending in CRLF at b[pos:] and returns
// it and the position after the CRLF. "-1" (a null) is returned as -1.
func respLength(b []byte, pos int) (int, int, error) {
	start := pos
	neg := pos < len(b) && b[pos] == '-'
	if neg {
		pos++
	}
	n := 0
	digits := 0
	for pos < len(b) && b[pos] >= '0' && b[pos] <= '9' {
		if n > (MaxRedisQuery+9)/10 {
			return 0, 0, fmt.Errorf("length at byte %d is too large", start)
		}
		n = n*10 + int(b[pos]-'0')
		pos++
		digits++
	}
	if digits == 0 || digits > 1 && b[start+boolInt(neg)] == '0' {
		return 0, 0, fmt.Errorf("no valid length at byte %d", start)
	}
	if pos+1 >= len(b) || b[pos] != '\r' || b[pos+1] != '\n' {
		return 0, 0, fmt.Errorf("length at byte %d does not end in CRLF", start)
	}
	if neg {
		if n != 1 {
			return 0, 0, fmt.Errorf("negative length at byte %d", start)
		}
		n = -1
	}
	return n, pos + 2, nil
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// redisCommandRefused names the commands a plugin may not send through the
// shared connection pool, and why: they change or depend on the state of
// one connection (authentication, database, transactions, subscriptions,
// replication, client modes), which the next caller of that pooled
// connection would inherit or miss. Envoy's redis_proxy refuses the same
// families (its supported-commands list has none of them).
var redisCommandRefused = map[string]string{
	"auth": "connection state", "hello": "connection state", "select": "connection state",
	"quit": "connection state", "reset": "connection state", "client": "connection state",
	"readonly": "connection state", "readwrite": "connection state",
	"multi": "transactions span one connection", "exec": "transactions span one connection",
	"discard": "transactions span one connection", "watch": "transactions span one connection",
	"unwatch":   "transactions span one connection",
	"subscribe": "subscriptions", "psubscribe": "subscriptions", "ssubscribe": "subscriptions",
	"unsubscribe": "subscriptions", "punsubscribe": "subscriptions", "sunsubscribe": "subscriptions",
	"monitor": "connection mode", "sync": "replication", "psync": "replication", "replconf": "replication",
}

// refusedCommand returns why the command name may not be sent, or "".
func refusedCommand(name []byte) string {
	if len(name) > 16 {
		return ""
	}
	var lower [16]byte
	for i, c := range name {
		if c >= 'A' && c <= 'Z' {
			c += 'a' - 'A'
		}
		lower[i] = c
	}
	return redisCommandRefused[string(lower[:len(name)])]
}

// appendRESP appends the RESP2 encoding of a reply as go-redis returns it
// from Do with protocol 2: strings (simple or bulk) as bulk strings,
// integers, arrays, nil as the null bulk string, server errors as error
// replies. Values RESP2 has no type for (from a RESP3 server: doubles,
// booleans, maps) are encoded as RESP2 clients see them (bulk string,
// integer, flat array). It reports false past maxRESPDepth or for a type
// it does not know.
func appendRESP(dst []byte, v any, depth int) ([]byte, bool) {
	if depth > maxRESPDepth {
		return dst, false
	}
	switch v := v.(type) {
	case nil:
		return append(dst, "$-1\r\n"...), true
	case string:
		return appendBulk(dst, v), true
	case []byte:
		return appendBulk(dst, string(v)), true
	case int64:
		return appendRESPInt(dst, ':', v), true
	case bool:
		return appendRESPInt(dst, ':', int64(boolInt(v))), true
	case float64:
		return appendBulk(dst, strconv.FormatFloat(v, 'f', -1, 64)), true
	case redis.Error:
		return appendRESPError(dst, v.Error()), true
	case []any:
		dst = appendRESPInt(dst, '*', int64(len(v)))
		for _, e := range v {
			var ok bool
			if dst, ok = appendRESP(dst, e, depth+1); !ok {
				return dst, false
			}
		}
		return dst, true
	case map[any]any:
		dst = appendRESPInt(dst, '*', int64(2*len(v)))
		for k, e := range v {
			var ok bool
			if dst, ok = appendRESP(dst, k, depth+1); !ok {
				return dst, false
			}
			if dst, ok = appendRESP(dst, e, depth+1); !ok {
				return dst, false
			}
		}
		return dst, true
	}
	return dst, false
}

func appendBulk(dst []byte, s string) []byte {
	dst = appendRESPInt(dst, '$', int64(len(s)))
	dst = append(dst, s...)
	return append(dst, '\r', '\n')
}

func appendRESPInt(dst []byte, kind byte, n int64) []byte {
	dst = append(dst, kind)
	dst = strconv.AppendInt(dst, n, 10)
	return append(dst, '\r', '\n')
}

// appendRESPError appends an error reply; CR and LF in msg (which a
// simple string cannot hold) become spaces.
func appendRESPError(dst []byte, msg string) []byte {
	dst = append(dst, '-')
	for i := 0; i < len(msg); i++ {
		c := msg[i]
		if c == '\r' || c == '\n' {
			c = ' '
		}
		dst = append(dst, c)
	}
	return append(dst, '\r', '\n')
}
