package proxy

import (
	"strings"
	"testing"
)

// FuzzParseConfig checks that no input makes the parser or the validator
// panic, and that a config that validates has sane values.
func FuzzParseConfig(f *testing.F) {
	f.Add([]byte("hostname: 127.0.0.1\nport: 9000\nupstreams:\n  - name: a\n    endpoints: [\"http://127.0.0.1:8001\", {url: \"https://b.example:8443\", weight: 2}]\nroutes: [{match: {path_prefix: /v1}, upstream: a}]\n"))
	f.Add([]byte("port: 1\n"))
	f.Add([]byte("upstreams: [{name: a, endpoints: ['http://[::1]:80']}]\nroutes: [{upstream: a}]"))
	f.Add([]byte("plugins: [{name: p, path: x, config: [1, {a: b}]}]"))
	f.Add([]byte("timeout: -5s\nmax_request_body_size: 9GiB"))
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := ParseConfig(data)
		if err != nil {
			return
		}
		if cfg.Validate() != nil {
			return
		}
		if cfg.Port < 1 || cfg.Port > 65535 || cfg.MaxConcurrentRequests < 1 || cfg.Timeout <= 0 || len(cfg.Upstreams) == 0 {
			t.Fatalf("invalid config validated: %+v", cfg)
		}
		if _, err := newPools(cfg); err != nil {
			t.Fatalf("validated config does not build pools: %v", err)
		}
	})
}

// FuzzHasHeader checks the raw-head field lookup against a plain
// reference: split into lines, compare the name before the first colon.
func FuzzHasHeader(f *testing.F) {
	f.Add([]byte("Host: x\r\nContent-Length: 5\r\n"), "content-length")
	f.Add([]byte("Transfer-Encoding: chunked\r\ncontent-LENGTH:1"), "content-length")
	f.Add([]byte("X-Content-Length: 5\r\nContent-Lengthx: 1\r\n: \r\n\n\n"), "content-length")
	f.Add([]byte(""), "a")
	f.Fuzz(func(t *testing.T, raw []byte, name string) {
		want := false
		for _, line := range strings.Split(string(raw), "\n") {
			if k, _, ok := strings.Cut(line, ":"); ok && strings.EqualFold(k, name) {
				want = true
			}
		}
		if got := hasHeader(raw, []byte(strings.ToLower(name))); got != want && strings.ToLower(name) == name {
			t.Fatalf("hasHeader(%q, %q) = %v, want %v", raw, name, got, want)
		}
	})
}
