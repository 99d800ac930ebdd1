package main

import (
	"bytes"
	"errors"
	"fmt"
	"github.com/sluice-proxy/sluice/plugins/internal/config"
	"sort"
	"strings"
	"time"
)

// Config is the plugin configuration (JSON):
//
//	{"requests_per_minute": 60, "tokens_per_minute": 40000,
//	 "key_header": "x-sluice-tenant", "default_token_estimate": 256,
//	 "overrides": {"acme": {"requests_per_minute": 600, "tokens_per_minute": 400000}}}
//
// At least one of RequestsPerMinute and TokensPerMinute must be set.
type Config struct {
	// RequestsPerMinute is the request bucket's size and refill per
	// minute, per key. 0: requests are not limited.
	RequestsPerMinute int64 `json:"requests_per_minute"`
	// TokensPerMinute is the LLM-token bucket's size and refill per
	// minute, per key. 0: tokens are not limited.
	TokensPerMinute int64 `json:"tokens_per_minute"`
	// KeyHeader names the request header whose value is the rate-limit
	// key (the apikey plugin sets the tenant there). A request without it
	// is keyed by its client IP. Default "x-sluice-tenant".
	KeyHeader string `json:"key_header"`
	// DefaultTokenEstimate is charged for a request whose JSON body has
	// neither max_completion_tokens nor max_tokens, and for a body that is
	// not JSON. Default 256.
	DefaultTokenEstimate int64 `json:"default_token_estimate"`
	// PromptBytesPerToken, when > 0, adds an estimate of the prompt's
	// tokens (body length / PromptBytesPerToken, rounded up) to the charge
	// made on admission, as OpenAI counts prompt and max_tokens against
	// the limit. Default 0: only the completion budget is charged up
	// front; the prompt is charged when the response's usage arrives.
	PromptBytesPerToken int64 `json:"prompt_bytes_per_token"`
	// Overrides replace the limits for particular keys (the key header's
	// value, e.g. a tenant). An omitted field keeps the global limit; 0
	// means unlimited for that key.
	Overrides map[string]Override `json:"overrides"`
	// FailureModeDeny answers 503 when the shared rate-limit state cannot
	// be read or written. Default false: such requests are let through
	// (and logged).
	FailureModeDeny bool `json:"failure_mode_deny"`
	// MaxCASRetries bounds the compare-and-swap retries when instances
	// update the same bucket at once. Default 16.
	MaxCASRetries int `json:"max_cas_retries"`
	// StateTTL is how long a key's shared state lives after its last
	// write, on Sluice (sluice.shared_data_policy, with the oldest entries
	// evicted when the store is full instead of new keys refused). A
	// bucket left alone for a minute has refilled, so dropping it later
	// changes nothing, unless it carried a token debt of more than
	// StateTTL's worth of refill. A Go duration from 1s to 720h; below
	// a minute a drained bucket left alone that long comes back full
	// early (accuracy traded for memory). Default "10m". On a host without the extension (Envoy) the state lives
	// until the store's cap, as before.
	StateTTL string `json:"state_ttl"`
	ClusterConfig
}

// Override is one key's limits.
type Override struct {
	RequestsPerMinute *int64 `json:"requests_per_minute"`
	TokensPerMinute   *int64 `json:"tokens_per_minute"`
}

// Defaults applied by parseConfig.
const (
	DefaultKeyHeader     = "x-sluice-tenant"
	DefaultTokenEstimate = 256
	DefaultMaxCASRetries = 16
	DefaultStateTTL      = 10 * time.Minute
)

// maxLimit bounds every per-minute limit (and estimate) so bucket
// arithmetic in float64 stays exact.
const maxLimit = 1 << 40

// settings is a validated configuration.
type settings struct {
	limits          limits
	keyHeader       string
	defaultEstimate int64
	promptBytes     int64
	overrides       map[string]limits
	failureModeDeny bool
	casRetries      int
	stateTTL        time.Duration
	cluster         clusterSettings
}

// parseConfig decodes and validates a configuration. Errors name the field
// at fault, e.g. `ratelimit: tokens_per_minute: -1 is negative`.
func parseConfig(data []byte) (*settings, error) {
	if len(bytes.TrimSpace(data)) == 0 {
		return nil, errors.New(`ratelimit: the configuration is empty; it needs {"requests_per_minute": N} and/or {"tokens_per_minute": N}`)
	}
	var cfg Config
	var err error
	if err = config.Decode("ratelimit", data, &cfg); err != nil {
		return nil, err
	}
	s := &settings{
		keyHeader:       DefaultKeyHeader,
		defaultEstimate: DefaultTokenEstimate,
		failureModeDeny: cfg.FailureModeDeny,
		casRetries:      DefaultMaxCASRetries,
		stateTTL:        DefaultStateTTL,
	}
	if cfg.StateTTL != "" {
		d, err := time.ParseDuration(cfg.StateTTL)
		if err != nil || d < time.Second || d > 720*time.Hour {
			return nil, fmt.Errorf("ratelimit: state_ttl: %q is not a duration from 1s to 720h", cfg.StateTTL)
		}
		s.stateTTL = d
	}
	for _, f := range []struct {
		name string
		v    int64
	}{{"requests_per_minute", cfg.RequestsPerMinute}, {"tokens_per_minute", cfg.TokensPerMinute},
		{"default_token_estimate", cfg.DefaultTokenEstimate}, {"prompt_bytes_per_token", cfg.PromptBytesPerToken}} {
		if err := checkLimit(f.name, f.v); err != nil {
			return nil, err
		}
	}
	if cfg.RequestsPerMinute == 0 && cfg.TokensPerMinute == 0 {
		return nil, errors.New("ratelimit: requests_per_minute/tokens_per_minute: set at least one")
	}
	s.limits = limits{rpm: cfg.RequestsPerMinute, tpm: cfg.TokensPerMinute}
	if cfg.KeyHeader != "" {
		h := strings.ToLower(cfg.KeyHeader)
		if !config.ValidToken(h) {
			return nil, fmt.Errorf("ratelimit: key_header: %q is not a valid header name", cfg.KeyHeader)
		}
		s.keyHeader = h
	}
	if cfg.DefaultTokenEstimate > 0 {
		s.defaultEstimate = cfg.DefaultTokenEstimate
	}
	s.promptBytes = cfg.PromptBytesPerToken
	if s.cluster, err = parseCluster(cfg.ClusterConfig); err != nil {
		return nil, err
	}
	switch {
	case cfg.MaxCASRetries < 0 || cfg.MaxCASRetries > 1000:
		return nil, fmt.Errorf("ratelimit: max_cas_retries: %d is not in 0..1000", cfg.MaxCASRetries)
	case cfg.MaxCASRetries > 0:
		s.casRetries = cfg.MaxCASRetries
	}
	if len(cfg.Overrides) > 0 {
		s.overrides = make(map[string]limits, len(cfg.Overrides))
		names := make([]string, 0, len(cfg.Overrides))
		for k := range cfg.Overrides {
			names = append(names, k)
		}
		sort.Strings(names) // report the first bad one deterministically
		for _, k := range names {
			o := cfg.Overrides[k]
			if k == "" {
				return nil, errors.New("ratelimit: overrides: empty key")
			}
			l := s.limits
			if o.RequestsPerMinute != nil {
				l.rpm = *o.RequestsPerMinute
			}
			if o.TokensPerMinute != nil {
				l.tpm = *o.TokensPerMinute
			}
			for _, f := range []struct {
				name string
				v    int64
			}{{"requests_per_minute", l.rpm}, {"tokens_per_minute", l.tpm}} {
				if err := checkLimit(fmt.Sprintf("overrides[%q].%s", k, f.name), f.v); err != nil {
					return nil, err
				}
			}
			s.overrides[k] = l
		}
	}
	return s, nil
}

func checkLimit(field string, v int64) error {
	switch {
	case v < 0:
		return fmt.Errorf("ratelimit: %s: %d is negative", field, v)
	case v > maxLimit:
		return fmt.Errorf("ratelimit: %s: %d is above the maximum %d", field, v, int64(maxLimit))
	}
	return nil
}

// limitsFor returns the limits of a key: its override, or the global ones.
// A key from the client IP never matches an override.
func (s *settings) limitsFor(k rateKey) limits {
	if !k.fromIP {
		if l, ok := s.overrides[k.value]; ok {
			return l
		}
	}
	return s.limits
}

// rateKey is what a request is limited by.
type rateKey struct {
	value  string // header value, or client IP
	fromIP bool
}

// keyOf returns a request's key: the key header's value (trimmed) when
// present and non-empty, else the client address without its port.
func keyOf(headerValue, sourceAddress string) rateKey {
	if v := strings.TrimSpace(headerValue); v != "" {
		return rateKey{value: v}
	}
	return rateKey{value: hostOf(sourceAddress), fromIP: true}
}

// hostOf strips the port from "ip:port" or "[ipv6]:port".
func hostOf(addr string) string {
	if strings.HasPrefix(addr, "[") {
		if i := strings.IndexByte(addr, ']'); i > 0 {
			return addr[1:i]
		}
	}
	if i := strings.LastIndexByte(addr, ':'); i >= 0 && strings.IndexByte(addr, ':') == i {
		return addr[:i]
	}
	return addr
}

// sharedKey is the shared-data key of a bucket: the plugin's prefix, then
// the key kind and value. Values longer than 128 bytes are replaced by
// their SHA-256 so keys stay small.
func sharedKey(prefix string, k rateKey) string {
	kind := "k:"
	if k.fromIP {
		kind = "ip:"
	}
	v := k.value
	if len(v) > 128 {
		v = "sha256:" + hexSHA256(v)
	}
	return "ratelimit/" + prefix + "/" + kind + v
}
