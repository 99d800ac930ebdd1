package config

import (
	"fmt"
	"strings"
)

// ValidHostPattern checks a RouteMatch.Host: at most one '*', only as its
// first or last byte (Envoy's rule), and otherwise only bytes that may
// appear in an authority (no whitespace, control bytes, '/', '?', '#',
// '@' or non-ASCII).
func ValidHostPattern(s string) error {
	if s == "" {
		return nil
	}
	if n := strings.Count(s, "*"); n > 1 || (n == 1 && s[0] != '*' && s[len(s)-1] != '*') {
		return fmt.Errorf("%q: the wildcard '*' may only start (\"*.example.com\", \"*-canary\") or end (\"api.*\") the pattern, once", s)
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == '*' {
			continue
		}
		if !IsAuthorityByte(c) {
			return fmt.Errorf("%q: byte %q at %d cannot appear in a host", s, c, i)
		}
	}
	return nil
}

// IsAuthorityByte reports whether c may appear in an RFC 3986 authority
// without userinfo: unreserved, sub-delims, '%' (pct-encoding), ':', '['
// and ']'.
func IsAuthorityByte(c byte) bool {
	switch {
	case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		return true
	}
	return strings.IndexByte("-._~!$&'()*+,;=%:[]", c) >= 0
}
