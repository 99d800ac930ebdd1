package proxy

import (
	"github.com/sluice-proxy/sluice/proxy/config"
)

// hostPattern is a compiled RouteMatch.Host, matched the way Envoy matches
// a virtual host's domains (envoy.config.route.v3.VirtualHost.domains):
//
//	"api.example.com"   exact
//	"*.example.com"     suffix wildcard: any host ending in ".example.com"
//	"*-canary"          suffix wildcard: "web-canary", "127.0.0.1:8080-canary"
//	"api.*"             prefix wildcard: "api.example.com", "api.internal"
//	"*"                 any host
//
// The wildcard never matches the empty string: "*-bar.baz.com" matches
// "foo-bar.baz.com" but not "-bar.baz.com" (Envoy's rule). Comparison
// ignores ASCII case. A pattern that ends in a numeric port
// ("api.example.com:8443", "*.example.com:8443") is compared with the
// request's whole authority, port included; any other pattern with the
// authority's host, its numeric port stripped (hostOf). The zero value
// matches every request (no host condition).
//
// Unlike Envoy, which picks the most specific virtual host (exact, then
// suffix wildcards longest first, then prefix wildcards longest first,
// then "*"), Sluice's routes stay first-match in list order: put the
// narrower host before the wider one.
type hostPattern struct {
	kind     hostKind
	text     []byte // lower-cased, without the '*'
	withPort bool   // compare with the whole authority
}

type hostKind uint8

const (
	hostAny    hostKind = iota // no condition, or "*"
	hostExact                  // text
	hostSuffix                 // "*" + text
	hostPrefix                 // text + "*"
)

// compileHostPattern compiles a pattern Validate accepted (config.ValidHostPattern).
func compileHostPattern(s string) hostPattern {
	p := hostPattern{withPort: hasNumericPort(s)}
	switch {
	case s == "" || s == "*":
		return hostPattern{}
	case s[0] == '*':
		p.kind, s = hostSuffix, s[1:]
	case s[len(s)-1] == '*':
		p.kind, s = hostPrefix, s[:len(s)-1]
	default:
		p.kind = hostExact
	}
	p.text = appendLowerString(nil, s)
	return p
}

// match reports whether a request whose authority (Host header) is
// authority, and whose host without a numeric port is host, matches p. It
// allocates nothing.
func (p *hostPattern) match(authority, host []byte) bool {
	if p.kind == hostAny {
		return true
	}
	h := host
	if p.withPort {
		h = authority
	}
	switch p.kind {
	case hostExact:
		return equalFold(h, p.text)
	case hostSuffix:
		return len(h) > len(p.text) && equalFold(h[len(h)-len(p.text):], p.text)
	default: // hostPrefix
		return len(h) > len(p.text) && equalFold(h[:len(p.text)], p.text)
	}
}

// hostOf returns authority without its port when the port is numeric:
// "example.com:8080" → "example.com", "[::1]:8080" → "[::1]". Anything
// else after a colon is part of the host as far as routing goes
// ("127.0.0.1:8080-canary", which a plugin may write to route to a
// "*-canary" pattern, stays whole), as is an unbracketed IPv6 address.
func hostOf(authority []byte) []byte {
	i := len(authority)
	for i > 0 && authority[i-1] >= '0' && authority[i-1] <= '9' {
		i--
	}
	if i == len(authority) || i == 0 || authority[i-1] != ':' {
		return authority
	}
	host := authority[:i-1]
	if len(host) > 0 && host[0] == '[' {
		if host[len(host)-1] != ']' {
			return authority
		}
		return host
	}
	for _, c := range host {
		if c == ':' { // unbracketed IPv6: the last group is not a port
			return authority
		}
	}
	return host
}

// hasNumericPort reports whether a host pattern ends in ":<digits>".
func hasNumericPort(s string) bool {
	return len(hostOf([]byte(s))) != len(s)
}

// ValidAuthority reports whether b is a non-empty host[:port] as an
// RFC 3986 authority without userinfo allows: reg-name, IPv4 or a
// bracketed IP literal, then optionally ':' and a port. The port is not
// required to be numeric: Envoy plugins rewrite ":authority" to
// "<authority>-canary", which with a port gives "127.0.0.1:8080-canary",
// and routes match it with "*-canary" (see RouteMatch.Host). Whitespace,
// control bytes, '@', '/', '?', '#', other delimiters and non-ASCII bytes
// are refused.
func ValidAuthority(b []byte) bool {
	if len(b) == 0 {
		return false
	}
	rest := b
	if b[0] == '[' {
		j := 1
		for j < len(b) && b[j] != ']' {
			j++
		}
		if j == len(b) || j == 1 {
			return false
		}
		for _, c := range b[1:j] {
			if !config.IsAuthorityByte(c) || c == '[' {
				return false
			}
		}
		rest = b[j+1:]
		if len(rest) > 0 && rest[0] != ':' {
			return false
		}
	}
	for _, c := range rest {
		if !config.IsAuthorityByte(c) || c == '[' || c == ']' {
			return false
		}
	}
	return true
}
