package config

import (
	"time"

	"net"
	"strconv"
)

// Defaults for Config fields left at their zero value. They follow the
// text-generation-inference router where it has an equivalent.
const (
	DefaultHostname              = "0.0.0.0"
	DefaultPort                  = 8080
	DefaultMaxConcurrentRequests = 128
	DefaultMaxBatchSize          = 32
	DefaultTimeout               = 60 * time.Second
	DefaultMaxRequestBodySize    = 4 << 20
	DefaultShutdownTimeout       = 30 * time.Second
	DefaultClientHeaderTimeout   = 30 * time.Second
	DefaultClientBodyTimeout     = 30 * time.Second
	DefaultMaxRequestHeaderSize  = 64 << 10
)

// Config is the proxy's configuration: the seed's RouterConfig plus
// upstream pools, routes and plugins. It loads from YAML (Load,
// Parse) with the snake_case keys shown in the field tags, or is
// built in Go with New and the With… methods.
//
// Build a Config with New (which fills the defaults) or from YAML;
// a zero Config is invalid. Validate names the first bad field. A Config is
// read-only once handed to NewServer.
type Config struct {
	// Hostname is the address to listen on. Default "0.0.0.0".
	Hostname string `yaml:"hostname"`
	// Port is the TCP port to listen on (1–65535). Default 8080.
	Port int `yaml:"port"`
	// MaxConcurrentRequests is the number of admission slots: requests
	// beyond it are refused with 429 at once, never queued. Default 128.
	MaxConcurrentRequests int `yaml:"max_concurrent_requests"`
	// MaxBatchSize caps requests in flight to one upstream endpoint; a
	// pool may override it. A request that finds every endpoint at its
	// cap waits in the pool's queue (UpstreamConfig.QueueTimeout). Default
	// 32.
	MaxBatchSize int `yaml:"max_batch_size"`
	// Timeout bounds the wait for upstream response headers and any silence
	// between streamed chunks (an idle timeout: a stream that keeps
	// producing is never cut). It also bounds a plugin's pause and, unless
	// a pool sets queue_timeout, the wait for a free endpoint. Default 60s.
	Timeout Duration `yaml:"timeout"`
	// OpenAICompat selects OpenAI-shaped JSON errors (true, the default)
	// instead of TGI-shaped ones.
	OpenAICompat bool `yaml:"openai_compat"`
	// EnableMetrics serves Prometheus metrics on GET /metrics. Default true.
	EnableMetrics bool `yaml:"enable_metrics"`
	// MaxRequestBodySize is the largest request body accepted, in bytes;
	// larger ones get 413. Default 4 MiB.
	MaxRequestBodySize ByteSize `yaml:"max_request_body_size"`
	// ShutdownTimeout bounds how long in-flight requests (streams
	// included) may run once the listener closed, after DrainDelay.
	// Requests still running then are cut and the process exits 1.
	// Default 30s.
	ShutdownTimeout Duration `yaml:"shutdown_timeout"`
	// ClientHeaderTimeout bounds reading a request head: it must arrive
	// whole within this time of its first byte (on a new connection, the
	// first byte too must arrive within it); otherwise the client gets 408
	// and the connection is closed. Waiting between keep-alive requests is
	// governed by the idle timeout (90s), not by this. Zero means the
	// default, 30s (nginx's client_header_timeout is 60s).
	ClientHeaderTimeout Duration `yaml:"client_header_timeout"`
	// ClientBodyTimeout bounds the silence between two reads of a request
	// body (not the whole body): past it the client gets 408 and the
	// connection is closed. Zero means the default, 30s (nginx's
	// client_body_timeout is 60s).
	ClientBodyTimeout Duration `yaml:"client_body_timeout"`
	// MaxRequestHeaderSize bounds a request head: request line plus all
	// headers, in bytes. Larger heads get 431, or 414 when the request line
	// alone is larger. Each connection reading a head buffers up to this
	// much. Zero means the default, 64KiB (Envoy's max_request_headers_kb
	// default is 60KiB); allowed 1KiB–1MiB.
	MaxRequestHeaderSize ByteSize `yaml:"max_request_header_size"`
	// MaxRequestBodyBuffer caps the bytes of request bodies being received
	// at once, server-wide (bodies still arriving hold no admission slot,
	// so this is what bounds their memory). A body that would push the
	// total past it is refused with 503 and Retry-After. Zero means the
	// default, max_concurrent_requests × max_request_body_size (512MiB with
	// the defaults); when set, it must be at least max_request_body_size.
	MaxRequestBodyBuffer ByteSize `yaml:"max_request_body_buffer"`
	// DrainDelay is how long, after SIGTERM or SIGINT, the server keeps
	// accepting and serving while /ready answers 503 and every answer
	// carries Connection: close, so a load balancer (Kubernetes) stops
	// routing here before the listener closes. Set it to the readiness
	// probe's period times its failure threshold. Default 0: the listener
	// closes at once.
	DrainDelay Duration `yaml:"drain_delay"`
	// TrustForwardedHeaders keeps a client's X-Forwarded-For and
	// X-Forwarded-Proto (appending to them) instead of replacing them.
	// Default false: set it only behind a trusted load balancer.
	TrustForwardedHeaders bool `yaml:"trust_forwarded_headers"`
	// TLS serves clients HTTPS with these certificates (TLSConfig).
	// Default nil: plain HTTP.
	TLS *TLSConfig `yaml:"tls"`
	// Upstreams are the pools requests are forwarded to.
	Upstreams []UpstreamConfig `yaml:"upstreams"`
	// Routes choose a pool per request; the first match wins. A route
	// whose pool does not serve the request's model (UpstreamConfig.Models)
	// is skipped. With no routes, every request goes to the first upstream
	// (with a model: the first upstream that serves it); with routes and no
	// match, the request gets 404 (code model_not_found when a route
	// matched all but the model, route_not_found otherwise).
	Routes []RouteConfig `yaml:"routes"`
	// Plugins are Proxy-Wasm plugins, run in list order.
	Plugins []PluginConfig `yaml:"plugins"`
	// Redis declares the Redis servers plugins may call (RedisConfig).
	// Default none: proxy_redis_init and proxy_redis_call answer
	// BAD_ARGUMENT.
	Redis []RedisConfig `yaml:"redis"`
	// PluginCacheDir holds compiled plugins so a restart does not
	// recompile. Default: "sluice/wasm" under the user cache directory; "-"
	// keeps compiled code in memory only.
	PluginCacheDir string `yaml:"plugin_cache_dir"`
	// Log configures logging.
	Log LogConfig `yaml:"log"`
	// Admin is the admin listener (metrics and profiles on their own
	// port). Default: none, /metrics is served on the main port.
	Admin AdminConfig `yaml:"admin"`
}

// RouteConfig sends matching requests to an upstream pool.
type RouteConfig struct {
	Match    RouteMatch `yaml:"match"`
	Upstream string     `yaml:"upstream"`
}

// RouteMatch lists conditions that must all hold; an empty match matches
// every request.
type RouteMatch struct {
	// PathPrefix matches the start of the request path.
	PathPrefix string `yaml:"path_prefix"`
	// Host matches the request's authority (Host header), ignoring ASCII
	// case, as Envoy matches a virtual host's domains: exactly
	// ("api.example.com"), by suffix ("*.example.com", "*-canary"), by
	// prefix ("api.*"), or any host ("*"). The wildcard is the first or
	// last byte, at most once, and never matches the empty string
	// ("*-bar.com" does not match "-bar.com"). A pattern that ends in a
	// numeric port ("api.example.com:8443") is compared with the whole
	// authority; any other with the authority's host, a numeric port
	// stripped ("127.0.0.1:8080-canary" keeps its suffix). Routes stay
	// first-match in list order, unlike Envoy's most-specific-domain
	// choice: list narrower hosts first.
	Host string `yaml:"host"`
	// Headers must all be present with exactly these values (names are
	// case-insensitive).
	Headers map[string]string `yaml:"headers"`
	// Model matches the "model" field of an OpenAI request body: exactly,
	// or by prefix when it ends in '*' ("llama-*"; "*" alone matches any
	// request that names a model). A request without a model never matches
	// a route that sets Model. Needs OpenAICompat.
	Model string `yaml:"model"`
}

// PluginConfig configures one Proxy-Wasm plugin. The proxy package only
// carries it; the wasm package interprets it.
type PluginConfig struct {
	// Name identifies the plugin in logs, metrics and errors (required,
	// unique).
	Name string `yaml:"name"`
	// Path is the .wasm file (required).
	Path string `yaml:"path"`
	// Config is handed to proxy_on_configure: a YAML mapping or list as
	// JSON, a string as-is.
	Config RawConfig `yaml:"config"`
	// VMConfig is handed to proxy_on_vm_start, encoded like Config.
	VMConfig RawConfig `yaml:"vm_config"`
	// VMID groups plugins that share data (Proxy-Wasm vm_id). Default: the
	// plugin's name.
	VMID string `yaml:"vm_id"`
	// Instances is the number of Wasm instances. Default: GOMAXPROCS.
	Instances int `yaml:"instances"`
	// FailurePolicy is "fail_closed" (default: a request whose plugin
	// failed gets 503) or "fail_open" (the plugin is skipped for it).
	FailurePolicy string `yaml:"failure_policy"`
	// CallTimeout is each callback's CPU budget. A callback that runs past
	// it in wall time and then spends another CallTimeout of CPU (a runaway
	// guest) is stopped and its instance replaced; one that is merely
	// waiting for a CPU on an overloaded machine is not, up to a wall-clock
	// cap of max(1s, 100×CallTimeout). Default 10ms.
	CallTimeout Duration `yaml:"call_timeout"`
	// MemoryLimit caps each instance's memory. Default 64 MiB.
	MemoryLimit ByteSize `yaml:"memory_limit"`
	// EnvironmentVariables is the guest's WASI environment (Envoy's
	// vm_config.environment_variables; Sluice's vm_config is the string
	// handed to proxy_on_vm_start, so the key sits beside it, like
	// vm_id). Default: an empty environment.
	EnvironmentVariables PluginEnvironment `yaml:"environment_variables"`
	// LogLimit rate-limits the plugin's log lines. Default 100 lines/s,
	// bursts of 200.
	LogLimit PluginLogLimit `yaml:"log_limit"`
	// SharedData bounds the plugin's shared-data writes (TTL, eviction).
	// Default: none, as in Envoy.
	SharedData PluginSharedData `yaml:"shared_data"`
}

// Failure policies for PluginConfig.FailurePolicy.
const (
	FailClosed = "fail_closed"
	FailOpen   = "fail_open"
)

// Plugin defaults applied by the wasm package.
const (
	DefaultPluginCallTimeout = 10 * time.Millisecond
	DefaultPluginMemoryLimit = 64 << 20
)

// LogConfig configures structured logging.
type LogConfig struct {
	// Format is "text" (default) or "json".
	Format string `yaml:"format"`
	// Level is "debug", "info" (default), "warn" or "error".
	Level string `yaml:"level"`
	// Access enables one log line per request. Default true.
	Access *bool `yaml:"access"`
}

// New returns a Config with every default filled in and no
// upstreams.
func New() *Config {
	return &Config{
		Hostname:              DefaultHostname,
		Port:                  DefaultPort,
		MaxConcurrentRequests: DefaultMaxConcurrentRequests,
		MaxBatchSize:          DefaultMaxBatchSize,
		Timeout:               Duration(DefaultTimeout),
		OpenAICompat:          true,
		EnableMetrics:         true,
		MaxRequestBodySize:    DefaultMaxRequestBodySize,
		ShutdownTimeout:       Duration(DefaultShutdownTimeout),
		ClientHeaderTimeout:   Duration(DefaultClientHeaderTimeout),
		ClientBodyTimeout:     Duration(DefaultClientBodyTimeout),
		MaxRequestHeaderSize:  DefaultMaxRequestHeaderSize,
	}
}

// Addr is "hostname:port".
func (c *Config) Addr() string { return net.JoinHostPort(c.Hostname, strconv.Itoa(c.Port)) }

// Upstream returns the named pool's config, or nil.
func (c *Config) Upstream(name string) *UpstreamConfig {
	for i := range c.Upstreams {
		if c.Upstreams[i].Name == name {
			return &c.Upstreams[i]
		}
	}
	return nil
}

// clientHeaderTimeout, clientBodyTimeout, maxRequestHeaderSize and
// maxRequestBodyBuffer apply the defaults of their fields (zero means the
// default).
func (c *Config) clientHeaderTimeout() time.Duration {
	return orDefault(time.Duration(c.ClientHeaderTimeout), DefaultClientHeaderTimeout)
}

func (c *Config) clientBodyTimeout() time.Duration {
	return orDefault(time.Duration(c.ClientBodyTimeout), DefaultClientBodyTimeout)
}

func (c *Config) maxRequestHeaderSize() int {
	return int(orDefault(c.MaxRequestHeaderSize, DefaultMaxRequestHeaderSize))
}

func (c *Config) maxRequestBodyBuffer() int64 {
	if c.MaxRequestBodyBuffer > 0 {
		return int64(c.MaxRequestBodyBuffer)
	}
	return int64(c.MaxConcurrentRequests) * int64(c.MaxRequestBodySize)
}

func orDefault[T time.Duration | ByteSize](v, def T) T {
	if v == 0 {
		return def
	}
	return v
}

// AccessLog reports whether access logging is on (default true).
func (l LogConfig) AccessLog() bool { return l.Access == nil || *l.Access }
