package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const validYAML = `
hostname: 127.0.0.1
port: 9000
max_concurrent_requests: 64
max_batch_size: 16
timeout: 30s
openai_compat: false
enable_metrics: false
max_request_body_size: 1MiB
shutdown_timeout: 5s
drain_delay: 3s
upstreams:
  - name: a
    endpoints: ["http://127.0.0.1:8001", "http://127.0.0.1:8002"]
  - name: b
    endpoints: ["https://b.example:8443"]
routes:
  - match: {path_prefix: /v1, host: api.example.com, headers: {x-tier: gold}}
    upstream: b
  - match: {}
    upstream: a
plugins:
  - name: hdr
    path: ./headers.wasm
    config: {request: {add: {x-a: "1"}}}
    vm_config: "raw string"
    instances: 2
    failure_policy: fail_open
    call_timeout: 20ms
    memory_limit: 32MiB
`

func TestParseConfig(t *testing.T) {
	cfg := mustParseValid(t, validYAML)
	if cfg.Port != 9000 || cfg.MaxConcurrentRequests != 64 || cfg.MaxBatchSize != 16 ||
		time.Duration(cfg.Timeout) != 30*time.Second || cfg.OpenAICompat || cfg.EnableMetrics ||
		cfg.MaxRequestBodySize != 1<<20 || time.Duration(cfg.ShutdownTimeout) != 5*time.Second ||
		time.Duration(cfg.DrainDelay) != 3*time.Second {
		t.Fatalf("parsed %+v", cfg)
	}
	if len(cfg.Upstreams) != 2 || len(cfg.Routes) != 2 || cfg.Routes[0].Match.Headers["x-tier"] != "gold" {
		t.Fatalf("upstreams/routes: %+v %+v", cfg.Upstreams, cfg.Routes)
	}
	p := cfg.Plugins[0]
	if string(p.Config) != `{"request":{"add":{"x-a":"1"}}}` || string(p.VMConfig) != "raw string" {
		t.Fatalf("plugin config %q vm_config %q", p.Config, p.VMConfig)
	}
	if p.Instances != 2 || p.FailurePolicy != FailOpen || time.Duration(p.CallTimeout) != 20*time.Millisecond || p.MemoryLimit != 32<<20 {
		t.Fatalf("plugin %+v", p)
	}
}

func TestParseConfigDefaults(t *testing.T) {
	cfg, err := Parse([]byte("upstreams: [{name: x, endpoints: ['http://127.0.0.1:1']}]\n"))
	if err != nil {
		t.Fatal(err)
	}
	want := New().WithUpstream("x", "http://127.0.0.1:1")
	if cfg.Hostname != want.Hostname || cfg.Port != want.Port || cfg.MaxConcurrentRequests != 128 ||
		cfg.MaxBatchSize != 32 || cfg.Timeout != Duration(60*time.Second) || !cfg.OpenAICompat ||
		!cfg.EnableMetrics || cfg.MaxRequestBodySize != 4<<20 || cfg.ShutdownTimeout != Duration(30*time.Second) {
		t.Fatalf("defaults not applied: %+v", cfg)
	}
	if empty, err := Parse(nil); err != nil || empty.Port != DefaultPort {
		t.Fatalf("empty document: %v %+v", err, empty)
	}
}

func TestBuilder(t *testing.T) {
	base := New()
	cfg := base.WithHostname("127.0.0.1").WithPort(9).WithMaxConcurrentRequests(3).WithMaxBatchSize(2).
		WithTimeout(time.Second).WithOpenAICompat(false).WithEnableMetrics(false).
		WithMaxRequestBodySize(10).WithShutdownTimeout(time.Second).
		WithUpstream("u", "http://127.0.0.1:1").WithRoute(RouteMatch{PathPrefix: "/"}, "u").
		WithPlugin(PluginConfig{Name: "p", Path: "p.wasm"})
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	if base.Port != DefaultPort || len(base.Upstreams) != 0 {
		t.Fatal("With… changed the receiver")
	}
	if cfg.Port != 9 || cfg.MaxConcurrentRequests != 3 || cfg.Routes[0].Upstream != "u" || cfg.Plugins[0].Name != "p" {
		t.Fatalf("built %+v", cfg)
	}
}

func TestValidateRejects(t *testing.T) {
	ok := func() *Config { return New().WithUpstream("a", "http://127.0.0.1:8000") }
	tests := []rejectCase{
		{"empty hostname", func(c *Config) { c.Hostname = "" }, "hostname"},
		{"bad hostname", func(c *Config) { c.Hostname = "a b" }, "hostname"},
		{"port 0", func(c *Config) { c.Port = 0 }, "port"},
		{"port negative", func(c *Config) { c.Port = -1 }, "port"},
		{"port too big", func(c *Config) { c.Port = 65536 }, "port"},
		{"zero slots", func(c *Config) { c.MaxConcurrentRequests = 0 }, "max_concurrent_requests"},
		{"negative slots", func(c *Config) { c.MaxConcurrentRequests = -5 }, "max_concurrent_requests"},
		{"zero batch", func(c *Config) { c.MaxBatchSize = 0 }, "max_batch_size"},
		{"negative batch", func(c *Config) { c.MaxBatchSize = -1 }, "max_batch_size"},
		{"zero timeout", func(c *Config) { c.Timeout = 0 }, "timeout"},
		{"negative timeout", func(c *Config) { c.Timeout = -1 }, "timeout"},
		{"zero body", func(c *Config) { c.MaxRequestBodySize = 0 }, "max_request_body_size"},
		{"negative shutdown", func(c *Config) { c.ShutdownTimeout = -1 }, "shutdown_timeout"},
		{"negative drain delay", func(c *Config) { c.DrainDelay = -1 }, "drain_delay"},
		{"no upstreams", func(c *Config) { c.Upstreams = nil }, "upstreams"},
		{"unnamed upstream", func(c *Config) { c.Upstreams[0].Name = "" }, "upstreams[0].name"},
		{"duplicate upstream", func(c *Config) { c.Upstreams = append(c.Upstreams, c.Upstreams[0]) }, "upstreams[1].name"},
		{"no endpoints", func(c *Config) { c.Upstreams[0].Endpoints = nil }, "upstreams[0].endpoints"},
		{"bad scheme", func(c *Config) { c.Upstreams[0].Endpoints = []string{"ftp://x"} }, "upstreams[0].endpoints[0]"},
		{"no host", func(c *Config) { c.Upstreams[0].Endpoints = []string{"http://"} }, "upstreams[0].endpoints[0]"},
		{"path in endpoint", func(c *Config) { c.Upstreams[0].Endpoints = []string{"http://h/x"} }, "upstreams[0].endpoints[0]"},
		{"malformed endpoint", func(c *Config) { c.Upstreams[0].Endpoints = []string{"http://[::1"} }, "upstreams[0].endpoints[0]"},
		{"endpoint port", func(c *Config) { c.Upstreams[0].Endpoints = []string{"http://h:99999"} }, "upstreams[0].endpoints[0]"},
		{"duplicate endpoint", func(c *Config) {
			c.Upstreams[0].Endpoints = []string{"http://h:1", "http://h:1"}
		}, "upstreams[0].endpoints[1]"},
		{"route unknown upstream", func(c *Config) { c.Routes = []RouteConfig{{Upstream: "nope"}} }, "routes[0].upstream"},
		{"route no upstream", func(c *Config) { c.Routes = []RouteConfig{{}} }, "routes[0].upstream"},
		{"route bad prefix", func(c *Config) {
			c.Routes = []RouteConfig{{Match: RouteMatch{PathPrefix: "v1"}, Upstream: "a"}}
		}, "routes[0].match.path_prefix"},
		{"route bad header", func(c *Config) {
			c.Routes = []RouteConfig{{Match: RouteMatch{Headers: map[string]string{"bad name": "x"}}, Upstream: "a"}}
		}, "routes[0].match.headers"},
		{"plugin no name", func(c *Config) { c.Plugins = []PluginConfig{{Path: "x"}} }, "plugins[0].name"},
		{"plugin no path", func(c *Config) { c.Plugins = []PluginConfig{{Name: "x"}} }, "plugins[0].path"},
		{"plugin duplicate", func(c *Config) {
			c.Plugins = []PluginConfig{{Name: "x", Path: "a"}, {Name: "x", Path: "b"}}
		}, "plugins[1].name"},
		{"plugin instances", func(c *Config) { c.Plugins = []PluginConfig{{Name: "x", Path: "a", Instances: -1}} }, "plugins[0].instances"},
		{"plugin policy", func(c *Config) {
			c.Plugins = []PluginConfig{{Name: "x", Path: "a", FailurePolicy: "maybe"}}
		}, "plugins[0].failure_policy"},
		{"plugin timeout", func(c *Config) { c.Plugins = []PluginConfig{{Name: "x", Path: "a", CallTimeout: -1}} }, "plugins[0].call_timeout"},
		{"plugin memory small", func(c *Config) { c.Plugins = []PluginConfig{{Name: "x", Path: "a", MemoryLimit: 100}} }, "plugins[0].memory_limit"},
		{"plugin memory big", func(c *Config) { c.Plugins = []PluginConfig{{Name: "x", Path: "a", MemoryLimit: 5 << 30}} }, "plugins[0].memory_limit"},
		{"log format", func(c *Config) { c.Log.Format = "xml" }, "log.format"},
		{"log level", func(c *Config) { c.Log.Level = "loud" }, "log.level"},
	}
	checkRejects(t, ok, tests)
}

func TestParseConfigRejects(t *testing.T) {
	tests := []parseCase{
		{"unknown key", "portt: 1\n", "portt"},
		{"unknown nested key", "upstreams: [{name: a, endpoint: x}]\n", "endpoint"},
		{"bad duration", "timeout: soon\n", `field "timeout"`},
		{"nested bad duration", "upstreams:\n  - name: a\n    queue_timeout: soon\n", `field "queue_timeout"`},
		{"bad size names field", "max_request_body_size: lots\n", `field "max_request_body_size"`},
		{"bad duration type", "timeout: [1]\n", "duration"},
		{"bad size", "max_request_body_size: lots\n", "size"},
		{"negative size", "max_request_body_size: -1\n", "size"},
		{"wrong type", "port: eighty\n", "port"},
		{"two documents", "port: 1\n---\nport: 2\n", "more than one"},
		{"syntax", "port: [\n", "yaml"},
	}
	checkParseRejects(t, tests)
}

func TestLoadConfig(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "sluice.yaml")
	if err := os.WriteFile(path, []byte(validYAML), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(path); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(filepath.Join(dir, "missing.yaml")); err == nil {
		t.Fatal("missing file accepted")
	}
	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(bad, []byte("port: 0\nupstreams: [{name: a, endpoints: ['http://h']}]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(bad); err == nil || !strings.Contains(err.Error(), "port") {
		t.Fatalf("Load(port 0) = %v", err)
	}
}

func TestParseByteSize(t *testing.T) {
	for in, want := range map[string]int64{"0": 0, "10": 10, "4MiB": 4 << 20, "2 KiB": 2048, "1GiB": 1 << 30} {
		if got, err := ParseByteSize(in); err != nil || got != want {
			t.Errorf("ParseByteSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "x", "-1", "1TB", "99999999999GiB"} {
		if _, err := ParseByteSize(in); err == nil {
			t.Errorf("ParseByteSize(%q) accepted", in)
		}
	}
}
