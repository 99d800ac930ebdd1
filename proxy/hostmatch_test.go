package proxy

import (
	"errors"
	"strings"
	"testing"

	"github.com/sluice-proxy/sluice/proxy/config"
	"github.com/valyala/fasthttp"
)

// TestHostPatternMatchesLikeEnvoyDomains checks the route host patterns
// against Envoy's VirtualHost.domains rules: exact, suffix and prefix
// wildcards that never match the empty string, "*" for any host, ASCII
// case ignored; a numeric port stripped unless the pattern names one.
func TestHostPatternMatchesLikeEnvoyDomains(t *testing.T) {
	tests := []struct {
		pattern, authority string
		want               bool
	}{
		// Exact, case-insensitive, any port when the pattern has none.
		{"api.example.com", "api.example.com", true},
		{"api.example.com", "API.Example.COM:8080", true},
		{"API.example.com", "api.example.com", true},
		{"api.example.com", "api.example.com.evil", false},
		{"api.example.com", "xapi.example.com", false},
		// Suffix wildcards; the '*' never matches "".
		{"*.example.com", "a.example.com", true},
		{"*.example.com", "a.b.example.com:443", true},
		{"*.example.com", ".example.com", false},
		{"*.example.com", "example.com", false},
		{"*-bar.baz.com", "foo-bar.baz.com", true},
		{"*-bar.baz.com", "-bar.baz.com", false},
		{"*-canary", "web-canary", true},
		{"*-canary", "127.0.0.1:8080-canary", true}, // not a numeric port: kept
		{"*-canary", "-canary", false},
		{"*-canary", "web-canary:8080", true},
		{"*-canary", "web", false},
		// Prefix wildcards.
		{"api.*", "api.example.com", true},
		{"api.*", "API.internal:9000", true},
		{"api.*", "api.", false},
		{"api.*", "api.:80", false},
		{"api.*", "web.example.com", false},
		{"foo-*", "foo-1", true},
		// "*" and no pattern match every authority, even an empty one.
		{"*", "anything.test:1", true},
		{"*", "", true},
		{"", "x", true},
		// A pattern with a numeric port compares the whole authority.
		{"api.example.com:8443", "api.example.com:8443", true},
		{"api.example.com:8443", "api.example.com:8080", false},
		{"api.example.com:8443", "api.example.com", false},
		{"*.example.com:8443", "a.example.com:8443", true},
		{"*.example.com:8443", "a.example.com", false},
		{"[::1]:8080", "[::1]:8080", true},
		{"[::1]", "[::1]:8080", true},
		{"[::1]", "[::1]", true},
		// Only a numeric port is stripped from the authority.
		{"127.0.0.1", "127.0.0.1:8080-canary", false},
		{"127.0.0.1", "127.0.0.1:8080", true},
		{"example.com", "example.com:", false},
		{"::1", "::1", true}, // unbracketed IPv6: no port to strip
	}
	for _, tc := range tests {
		if err := config.ValidHostPattern(tc.pattern); err != nil {
			t.Fatalf("config.ValidHostPattern(%q): %v", tc.pattern, err)
		}
		p := compileHostPattern(tc.pattern)
		a := []byte(tc.authority)
		if got := p.match(a, hostOf(a)); got != tc.want {
			t.Errorf("pattern %q, authority %q: match %v, want %v", tc.pattern, tc.authority, got, tc.want)
		}
	}
}

func TestHostOfStripsOnlyANumericPort(t *testing.T) {
	for in, want := range map[string]string{
		"example.com:8080":      "example.com",
		"example.com":           "example.com",
		"127.0.0.1:8080-canary": "127.0.0.1:8080-canary",
		"[::1]:443":             "[::1]",
		"[::1]":                 "[::1]",
		"[::1:443":              "[::1:443",
		"::1":                   "::1",
		"fe80::1:80":            "fe80::1:80",
		"host:":                 "host:",
		":80":                   "",
		"8080":                  "8080",
		"":                      "",
	} {
		if got := string(hostOf([]byte(in))); got != want {
			t.Errorf("hostOf(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestRouteHostWildcardsFirstMatchInListOrder checks that routes keep
// Sluice's first-match order rather than Envoy's most-specific-domain
// order: a "*" listed first wins over an exact host listed after it.
func TestRouteHostWildcardsFirstMatchInListOrder(t *testing.T) {
	cfg := NewConfig().WithUpstream("a", "http://127.0.0.1:1").WithUpstream("b", "http://127.0.0.1:2").
		WithUpstream("c", "http://127.0.0.1:3").
		WithRoute(RouteMatch{Host: "*-canary"}, "c").
		WithRoute(RouteMatch{Host: "*.example.com"}, "b").
		WithRoute(RouteMatch{Host: "api.*"}, "c").
		WithRoute(RouteMatch{Host: "exact.test:9000"}, "b").
		WithRoute(RouteMatch{Host: "*"}, "a").
		WithRoute(RouteMatch{Host: "later.example.org"}, "b")
	srv := newServer(t, cfg, Options{})
	for authority, want := range map[string]string{
		"127.0.0.1:8080-canary":  "c",
		"web.example.com":        "b",
		"web-canary.example.com": "b",
		"api.internal:81":        "c",
		"exact.test:9000":        "b",
		"exact.test:9001":        "a",
		"later.example.org":      "a", // "*" comes first
		"":                       "a",
	} {
		var req fasthttp.Request
		req.SetRequestURI("/")
		req.Header.SetHost(authority)
		p := srv.selectRoute(req.URI().Path(), req.Header.Host(), (*fasthttpHeaders)(&req.Header))
		if p == nil || p.Name() != want {
			got := "<none>"
			if p != nil {
				got = p.Name()
			}
			t.Errorf("authority %q: pool %s, want %s", authority, got, want)
		}
	}
}

func TestConfigRejectsMisplacedHostWildcard(t *testing.T) {
	for _, bad := range []string{"api.*.com", "**", "*.*", "a*b", "*api*", "api .com", "a/b", "user@host", "héllo"} {
		cfg := NewConfig().WithUpstream("a", "http://127.0.0.1:1").WithRoute(RouteMatch{Host: bad}, "a")
		err := cfg.Validate()
		var ce *ConfigError
		if !errors.As(err, &ce) || ce.Field != "routes[0].match.host" {
			t.Errorf("host %q: error %v, want one naming routes[0].match.host", bad, err)
		}
	}
	for _, good := range []string{"*", "*.example.com", "*-canary", "api.*", "foo-*", "[::1]:8080", "a.b:80", "*:8080"} {
		cfg := NewConfig().WithUpstream("a", "http://127.0.0.1:1").WithRoute(RouteMatch{Host: good}, "a")
		if err := cfg.Validate(); err != nil {
			t.Errorf("host %q: %v", good, err)
		}
	}
}

// FuzzHostPattern checks the matcher against a plain string model of
// Envoy's rules for every valid pattern and any authority.
func FuzzHostPattern(f *testing.F) {
	for _, s := range [][2]string{
		{"*-canary", "127.0.0.1:8080-canary"}, {"*.example.com", "a.example.com:1"}, {"api.*", "api.x"},
		{"*", ""}, {"a:80", "a:80"}, {"[::1]", "[::1]:9"}, {"*:8080", "x:8080"}, {"x", "X:0"},
	} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, pattern, authority string) {
		if config.ValidHostPattern(pattern) != nil {
			return
		}
		p := compileHostPattern(pattern)
		a := []byte(authority)
		got := p.match(a, hostOf(a))

		// Model: lower-case both; pick the subject; apply the rule.
		pat, auth := asciiLower(pattern), []byte(asciiLower(authority))
		subject := string(hostOf(auth))
		if s := []byte(pat); len(hostOf(s)) != len(s) {
			subject = string(auth)
		}
		var want bool
		switch {
		case pat == "" || pat == "*":
			want = true
		case pat[0] == '*':
			want = len(subject) > len(pat)-1 && strings.HasSuffix(subject, pat[1:])
		case pat[len(pat)-1] == '*':
			want = len(subject) > len(pat)-1 && strings.HasPrefix(subject, pat[:len(pat)-1])
		default:
			want = subject == pat
		}
		if got != want {
			t.Fatalf("pattern %q, authority %q: match %v, model says %v", pattern, authority, got, want)
		}
		if h := hostOf(a); len(h) > len(a) || string(a[:len(h)]) != string(h) {
			t.Fatalf("hostOf(%q) = %q is not a prefix", authority, h)
		}
	})
}

func asciiLower(s string) string {
	b := []byte(s)
	for i, c := range b {
		b[i] = lowerASCII(c)
	}
	return string(b)
}

func TestValidAuthority(t *testing.T) {
	for in, want := range map[string]bool{
		"example.com": true, "example.com:8080": true, "127.0.0.1:8080-canary": true, "[::1]": true,
		"[::1]:443": true, "[fe80::1%25en0]:1": true, "a_b~c": true,
		"": false, "a b": false, "a/b": false, "a?b": false, "a#b": false, "u@h": false, "[::1": false,
		"[]": false, "[::1]x": false, "h[1]": false, "a]": false, "é.test": false, "a\r\n": false, "a\x00": false,
	} {
		if got := ValidAuthority([]byte(in)); got != want {
			t.Errorf("ValidAuthority(%q) = %v, want %v", in, got, want)
		}
	}
}
