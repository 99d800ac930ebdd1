package config

import (
	"strings"
	"testing"
	"time"
)

func TestEdgeConfigParsedAndDefaulted(t *testing.T) {
	cfg, err := Parse([]byte(`
client_header_timeout: 5s
client_body_timeout: 7s
max_request_header_size: 16KiB
max_request_body_size: 1MiB
max_request_body_buffer: 64MiB
upstreams: [{name: a, endpoints: ["http://127.0.0.1:8000"]}]
`))
	if err != nil {
		t.Fatal(err)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	if cfg.clientHeaderTimeout() != 5*time.Second || cfg.clientBodyTimeout() != 7*time.Second ||
		cfg.maxRequestHeaderSize() != 16<<10 || cfg.maxRequestBodyBuffer() != 64<<20 {
		t.Fatalf("parsed %+v", cfg)
	}
	d := New()
	if d.clientHeaderTimeout() != 30*time.Second || d.clientBodyTimeout() != 30*time.Second ||
		d.maxRequestHeaderSize() != 64<<10 || d.maxRequestBodyBuffer() != 128*(4<<20) {
		t.Fatalf("defaults: header %s body %s head size %d buffer %d", d.clientHeaderTimeout(),
			d.clientBodyTimeout(), d.maxRequestHeaderSize(), d.maxRequestBodyBuffer())
	}
	// Zero means the default, for Configs built as literals too.
	var z Config
	if z.clientHeaderTimeout() != DefaultClientHeaderTimeout || z.maxRequestHeaderSize() != DefaultMaxRequestHeaderSize {
		t.Fatal("zero values are not the defaults")
	}
}

func TestEdgeConfigValidateNamesField(t *testing.T) {
	ok := func() *Config { return New().WithUpstream("a", "http://127.0.0.1:8000") }
	tests := []rejectCase{
		{"negative header timeout", func(c *Config) { c.ClientHeaderTimeout = -1 }, "client_header_timeout"},
		{"negative body timeout", func(c *Config) { c.ClientBodyTimeout = -1 }, "client_body_timeout"},
		{"head limit too small", func(c *Config) { c.MaxRequestHeaderSize = 512 }, "max_request_header_size"},
		{"head limit too big", func(c *Config) { c.MaxRequestHeaderSize = 2 << 20 }, "max_request_header_size"},
		{"negative body buffer", func(c *Config) { c.MaxRequestBodyBuffer = -1 }, "max_request_body_buffer"},
		{"body buffer under one body", func(c *Config) { c.MaxRequestBodyBuffer = c.MaxRequestBodySize - 1 }, "max_request_body_buffer"},
	}
	checkRejects(t, ok, tests)
	if _, err := Parse([]byte("client_body_timeout: slow\n")); err == nil || !strings.Contains(err.Error(), "client_body_timeout") {
		t.Fatalf("bad duration: %v", err)
	}
}
