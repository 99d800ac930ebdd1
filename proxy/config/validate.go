package config

import (
	"fmt"
	"strconv"
	"strings"
)

// Error names the configuration field that is wrong.
type Error struct {
	Field  string // e.g. "upstreams[1].endpoints[0]"
	Reason string
}

func (e *Error) Error() string { return "proxy: config: " + e.Field + ": " + e.Reason }

func fieldErr(field, format string, args ...any) error {
	return &Error{Field: field, Reason: fmt.Sprintf(format, args...)}
}

// nameSet checks the names of a list's entries, in order: each must be
// present and none may repeat an earlier one (nginx and Envoy refuse a
// duplicate upstream or cluster name too). what names them in the error
// ("duplicate upstream name \"a\""). Make one with newNameSet; it lives
// for one Validate call and is not safe for concurrent use.
type nameSet struct {
	what string
	seen map[string]bool
}

func newNameSet(what string, n int) nameSet {
	return nameSet{what: what, seen: make(map[string]bool, n)}
}

// add checks name, the value of field, and records it.
func (s nameSet) add(field, name string) error {
	switch {
	case name == "":
		return fieldErr(field, "must not be empty")
	case s.seen[name]:
		return fieldErr(field, "duplicate %s %q", s.what, name)
	}
	s.seen[name] = true
	return nil
}

// notNegative returns the error for a field that must not be negative
// when v is, else nil (Durations print as "-5s", counts as "-5").
func notNegative[T ~int | ~int64](field string, v T) error {
	if v < 0 {
		return fieldErr(field, "must not be negative, got %v", v)
	}
	return nil
}

// Validate reports the first impossible value, as a *Error naming the
// field. It is Resolve without the result.
func (c *Config) Validate() error {
	_, err := c.Resolve()
	return err
}

// Resolve validates c, as Validate, and returns its effective settings:
// every endpoint URL parsed and every default applied, once. The server
// and the plugin host build from the result; c is not modified.
func (c *Config) Resolve() (*Resolved, error) {
	if c.Hostname == "" {
		return nil, fieldErr("hostname", "must not be empty")
	}
	if strings.ContainsAny(c.Hostname, " /") {
		return nil, fieldErr("hostname", "%q is not a host name or address", c.Hostname)
	}
	if c.Port < 1 || c.Port > 65535 {
		return nil, fieldErr("port", "%d is out of range 1-65535", c.Port)
	}
	if c.MaxConcurrentRequests < 1 {
		return nil, fieldErr("max_concurrent_requests", "must be at least 1, got %d", c.MaxConcurrentRequests)
	}
	if c.MaxBatchSize < 1 {
		return nil, fieldErr("max_batch_size", "must be at least 1, got %d", c.MaxBatchSize)
	}
	if c.Timeout <= 0 {
		return nil, fieldErr("timeout", "must be positive, got %s", c.Timeout)
	}
	if c.MaxRequestBodySize < 1 {
		return nil, fieldErr("max_request_body_size", "must be at least 1 byte, got %d", c.MaxRequestBodySize)
	}
	if c.ShutdownTimeout < 0 {
		return nil, fieldErr("shutdown_timeout", "must not be negative, got %s", c.ShutdownTimeout)
	}
	if err := c.validateEdge(); err != nil {
		return nil, err
	}
	if c.DrainDelay < 0 {
		return nil, fieldErr("drain_delay", "must not be negative, got %s", c.DrainDelay)
	}
	if err := c.validateAdmin(); err != nil {
		return nil, err
	}
	pools, err := c.resolveUpstreams()
	if err != nil {
		return nil, err
	}
	serverTLS, err := c.resolveTLS()
	if err != nil {
		return nil, err
	}
	for i, r := range c.Routes {
		f := "routes[" + strconv.Itoa(i) + "]"
		if r.Upstream == "" {
			return nil, fieldErr(f+".upstream", "must name an upstream")
		}
		if c.Upstream(r.Upstream) == nil {
			return nil, fieldErr(f+".upstream", "unknown upstream %q", r.Upstream)
		}
		if r.Match.PathPrefix != "" && r.Match.PathPrefix[0] != '/' {
			return nil, fieldErr(f+".match.path_prefix", "must start with '/', got %q", r.Match.PathPrefix)
		}
		if err := ValidHostPattern(r.Match.Host); err != nil {
			return nil, fieldErr(f+".match.host", "%v", err)
		}
		for name := range r.Match.Headers {
			if !validHeaderName(name) {
				return nil, fieldErr(f+".match.headers", "%q is not a valid header name", name)
			}
		}
		if m := r.Match.Model; m != "" {
			if !c.OpenAICompat {
				return nil, fieldErr(f+".match.model", "matching on the model reads OpenAI request bodies: it needs openai_compat: true")
			}
			if !validModelPattern(m) {
				return nil, fieldErr(f+".match.model", "%q: '*' may only end a prefix (\"llama-*\")", m)
			}
		}
	}
	if err := c.validatePlugins(); err != nil {
		return nil, err
	}
	if err := c.ValidateRedis(); err != nil {
		return nil, err
	}
	switch c.Log.Format {
	case "", "text", "json":
	default:
		return nil, fieldErr("log.format", "must be \"text\" or \"json\", got %q", c.Log.Format)
	}
	switch c.Log.Level {
	case "", "debug", "info", "warn", "error":
	default:
		return nil, fieldErr("log.level", "must be debug, info, warn or error, got %q", c.Log.Level)
	}
	return &Resolved{
		Config:               c,
		Upstreams:            pools,
		ClientHeaderTimeout:  c.clientHeaderTimeout(),
		ClientBodyTimeout:    c.clientBodyTimeout(),
		MaxRequestHeaderSize: c.maxRequestHeaderSize(),
		MaxRequestBodyBuffer: c.maxRequestBodyBuffer(),
		TLS:                  serverTLS,
	}, nil
}

// validateEdge checks the limits on what clients send.
func (c *Config) validateEdge() error {
	if c.ClientHeaderTimeout < 0 {
		return fieldErr("client_header_timeout", "must not be negative, got %s", c.ClientHeaderTimeout)
	}
	if c.ClientBodyTimeout < 0 {
		return fieldErr("client_body_timeout", "must not be negative, got %s", c.ClientBodyTimeout)
	}
	if h := c.MaxRequestHeaderSize; h != 0 && (h < 1<<10 || h > 1<<20) {
		return fieldErr("max_request_header_size", "must be between 1KiB and 1MiB, got %d", h)
	}
	if b := c.MaxRequestBodyBuffer; b < 0 || (b > 0 && b < c.MaxRequestBodySize) {
		return fieldErr("max_request_body_buffer", "must be 0 (the default) or at least max_request_body_size (%d), got %d", c.MaxRequestBodySize, b)
	}
	return nil
}

func (c *Config) validatePlugins() error {
	names := newNameSet("plugin name", len(c.Plugins))
	for i, p := range c.Plugins {
		f := "plugins[" + strconv.Itoa(i) + "]"
		if err := names.add(f+".name", p.Name); err != nil {
			return err
		}
		if p.Path == "" {
			return fieldErr(f+".path", "plugin %q needs the path of its .wasm file", p.Name)
		}
		if p.Instances < 0 {
			return fieldErr(f+".instances", "must not be negative, got %d", p.Instances)
		}
		switch p.FailurePolicy {
		case "", FailClosed, FailOpen:
		default:
			return fieldErr(f+".failure_policy", "must be %q or %q, got %q", FailClosed, FailOpen, p.FailurePolicy)
		}
		if p.CallTimeout < 0 {
			return fieldErr(f+".call_timeout", "must not be negative, got %s", p.CallTimeout)
		}
		if p.MemoryLimit < 0 || (p.MemoryLimit > 0 && p.MemoryLimit < 64<<10) {
			return fieldErr(f+".memory_limit", "must be at least one 64KiB page, got %d", p.MemoryLimit)
		}
		if p.MemoryLimit > 4<<30 {
			return fieldErr(f+".memory_limit", "must be at most 4GiB (wasm32), got %d", p.MemoryLimit)
		}
		for _, err := range []error{p.EnvironmentVariables.Validate(), p.LogLimit.Validate(), p.SharedData.Validate()} {
			if ce, ok := err.(*Error); ok {
				return fieldErr(f+"."+ce.Field, "%s", ce.Reason)
			}
		}
	}
	return nil
}

func validHeaderName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c >= 0x7f || strings.IndexByte("\"(),/:;<=>?@[\\]{}", c) >= 0 {
			return false
		}
	}
	return true
}
