package main

import (
	"bytes"
	"errors"
	"fmt"
	"github.com/sluice-proxy/sluice/plugins/internal/config"
	"strings"
	"time"
)

// Config is the plugin configuration (JSON):
//
//	{"pool": "auth", "path": "/check", "timeout": "500ms",
//	 "forward_headers": ["authorization", "x-api-key"],
//	 "copy_headers": ["x-user-id", "x-tenant"],
//	 "cache_ttl": "30s", "failure_mode_allow": false}
type Config struct {
	// Pool is the upstream pool of the authorization service (one of the
	// proxy's upstreams). Required.
	Pool string `json:"pool"`
	// Path is the callout's path. Default "/".
	Path string `json:"path"`
	// Method is the callout's method. Default "GET".
	Method string `json:"method"`
	// Authority is the callout's :authority (Host). Default: the pool
	// name.
	Authority string `json:"authority"`
	// Timeout bounds the callout, as a Go duration ("500ms"). Default
	// "1s"; 1ms to 60s.
	Timeout string `json:"timeout"`
	// ForwardHeaders are the request headers sent to the service (every
	// value); their values are also the cache key. Default
	// ["authorization"].
	ForwardHeaders []string `json:"forward_headers"`
	// CopyHeaders are headers of an admitting (2xx) reply set on the
	// request before it goes upstream, replacing any the client sent.
	CopyHeaders []string `json:"copy_headers"`
	// CacheTTL keeps each decision (admit or refuse, but not 5xx or
	// failures) in shared data for this long, as a Go duration. Default
	// "0s": every request calls the service. At most 24h.
	CacheTTL string `json:"cache_ttl"`
	// FailureModeAllow admits requests when the service cannot be reached,
	// times out or answers 5xx. Default false: they get 503.
	FailureModeAllow bool `json:"failure_mode_allow"`
}

// Defaults and limits applied by parseConfig.
const (
	DefaultPath    = "/"
	DefaultMethod  = "GET"
	DefaultTimeout = time.Second
	maxTimeout     = 60 * time.Second
	maxCacheTTL    = 24 * time.Hour
	// maxAuthBody bounds the body of a refusal that is relayed and cached.
	maxAuthBody = 64 << 10
)

// replyHeaders are the headers of a refusing reply relayed to the client.
var replyHeaders = []string{"content-type", "www-authenticate", "location", "retry-after"}

// settings is a validated configuration.
type settings struct {
	pool, path, method, authority string
	timeout                       time.Duration
	forward, copy                 []string // lower-case
	ttl                           time.Duration
	failureModeAllow              bool
}

// parseConfig decodes and validates a configuration. Errors name the field
// at fault, e.g. `extauth: timeout: "5" is not a duration such as "500ms"`.
func parseConfig(data []byte) (*settings, error) {
	if len(bytes.TrimSpace(data)) == 0 {
		return nil, errors.New(`extauth: the configuration is empty; it needs {"pool": "<upstream pool of the auth service>"}`)
	}
	var cfg Config
	if err := config.Decode("extauth", data, &cfg); err != nil {
		return nil, err
	}
	s := &settings{pool: cfg.Pool, path: DefaultPath, method: DefaultMethod, authority: cfg.Authority,
		timeout: DefaultTimeout, failureModeAllow: cfg.FailureModeAllow}
	if cfg.Pool == "" || strings.ContainsAny(cfg.Pool, "\x00\r\n") {
		return nil, fmt.Errorf("extauth: pool: %q is not an upstream pool name", cfg.Pool)
	}
	if s.authority == "" {
		s.authority = cfg.Pool
	}
	if strings.ContainsAny(s.authority, " \t\x00\r\n/") {
		return nil, fmt.Errorf("extauth: authority: %q is not a host", cfg.Authority)
	}
	if cfg.Path != "" {
		if cfg.Path[0] != '/' || strings.ContainsAny(cfg.Path, " \t\x00\r\n") {
			return nil, fmt.Errorf("extauth: path: %q must start with / and have no spaces or control bytes", cfg.Path)
		}
		s.path = cfg.Path
	}
	if cfg.Method != "" {
		if !config.ValidToken(cfg.Method) {
			return nil, fmt.Errorf("extauth: method: %q is not an HTTP method", cfg.Method)
		}
		s.method = strings.ToUpper(cfg.Method)
	}
	var err error
	if s.timeout, err = parseDuration("timeout", cfg.Timeout, DefaultTimeout, time.Millisecond, maxTimeout); err != nil {
		return nil, err
	}
	if s.ttl, err = parseDuration("cache_ttl", cfg.CacheTTL, 0, 0, maxCacheTTL); err != nil {
		return nil, err
	}
	fwd := cfg.ForwardHeaders
	if fwd == nil {
		fwd = []string{"authorization"}
	}
	if s.forward, err = headerList("forward_headers", fwd); err != nil {
		return nil, err
	}
	if s.copy, err = headerList("copy_headers", cfg.CopyHeaders); err != nil {
		return nil, err
	}
	return s, nil
}

func parseDuration(field, v string, def, lo, hi time.Duration) (time.Duration, error) {
	if v == "" {
		return def, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		return 0, fmt.Errorf("extauth: %s: %q is not a duration such as \"500ms\"", field, v)
	}
	if d < lo || d > hi {
		return 0, fmt.Errorf("extauth: %s: %v is not in %v..%v", field, d, lo, hi)
	}
	return d, nil
}

func headerList(field string, names []string) ([]string, error) {
	out := make([]string, 0, len(names))
	for i, n := range names {
		l := strings.ToLower(n)
		if !config.ValidToken(l) {
			return nil, fmt.Errorf("extauth: %s[%d]: %q is not a header name", field, i, n)
		}
		for _, prev := range out {
			if prev == l {
				return nil, fmt.Errorf("extauth: %s[%d]: %q is listed twice", field, i, n)
			}
		}
		out = append(out, l)
	}
	return out, nil
}
