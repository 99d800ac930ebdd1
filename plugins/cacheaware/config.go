package main

import (
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/sluice-proxy/sluice/plugins/internal/config"
)

// Config is the plugin configuration (JSON); every field is optional, and
// the empty configuration works on any pool of two or more endpoints:
//
//	{"pool": "vllm", "chunk_bytes": 64, "block_ttl": "10m",
//	 "cache_threshold": 0.3, "balance_abs_threshold": 24,
//	 "balance_rel_threshold": 1.5, "session_header": "x-session-id",
//	 "session_from_user": true, "max_endpoints": 3,
//	 "metrics_flush_period": "1s"}
type Config struct {
	// Pool is the upstream pool to pick in when no earlier plugin chose
	// one (sluice.upstream). Default "": the pool chosen earlier, or the
	// only pool when there is exactly one.
	Pool string `json:"pool"`
	// ChunkBytes is the size of a prefix block in bytes of the request's
	// JSON (messages or prompt). Default 64, about 16 tokens at ~4 bytes
	// a token: one vLLM KV block. 16–4096.
	ChunkBytes int `json:"chunk_bytes"`
	// MaxPromptBytes caps how much of the prompt is hashed. Default
	// 262144 (256 KiB); 1024–16777216.
	MaxPromptBytes int `json:"max_prompt_bytes"`
	// BlockTTL is how long the index remembers that an endpoint received
	// a prefix, after the last request that sent it there (a Go duration).
	// Default "10m"; 1s–720h. Engines evict their prefix cache under
	// memory pressure; a shorter TTL forgets sooner.
	BlockTTL string `json:"block_ttl"`
	// CacheThreshold is the share of the prompt's blocks that must match
	// for the prefix to decide; below it the least-loaded endpoint wins.
	// Default 0.3 (SGLang's cache_threshold); 0–1.
	CacheThreshold *float64 `json:"cache_threshold"`
	// BalanceAbsThreshold and BalanceRelThreshold: the endpoint the prefix
	// (or session) prefers is overloaded, and the least-loaded one is used
	// instead, when its load exceeds the least-loaded endpoint's by more
	// than BalanceAbsThreshold and is more than BalanceRelThreshold times
	// it. Load is requests in flight through this proxy plus the engine's
	// scraped queue depth. Defaults 24 and 1.5; 0–1e6 and 1–1e6.
	// SGLang's router uses 64 and 1.5, but 64 requests is more than an
	// engine that batches a few dozen sequences ever queues, so the rule
	// never fires there and prefix groups pile up on one engine (up to
	// 2.5× its fair share on the fleet benchmark); at large loads the
	// relative threshold decides anyway (see README).
	BalanceAbsThreshold *float64 `json:"balance_abs_threshold"`
	BalanceRelThreshold *float64 `json:"balance_rel_threshold"`
	// SessionHeader names a request header whose value pins a session to
	// the endpoint it last went to (unless that endpoint is overloaded).
	// Default "": off.
	SessionHeader string `json:"session_header"`
	// SessionFromUser uses the OpenAI "user" field as the session key
	// when SessionHeader is off or absent. Default false.
	SessionFromUser bool `json:"session_from_user"`
	// MaxEndpoints is how many endpoints go into sluice.endpoint: the
	// choice first, then the least loaded others, so the proxy can fail
	// over. Default 3; 1–16.
	MaxEndpoints int `json:"max_endpoints"`
	// MetricsFlushPeriod is how often each instance adds the counts it
	// kept since the last flush to the plugin's counters (a Go duration):
	// counting in the guest saves a Go guest three host calls per request,
	// and a Prometheus scrape is seconds apart anyway. Default "1s";
	// 10ms–1m.
	MetricsFlushPeriod string `json:"metrics_flush_period"`
}

// Defaults applied by parseConfig.
const (
	DefaultChunkBytes          = 64
	DefaultMaxPromptBytes      = 256 << 10
	DefaultBlockTTL            = 10 * time.Minute
	DefaultCacheThreshold      = 0.3
	DefaultBalanceAbsThreshold = 24
	DefaultBalanceRelThreshold = 1.5
	DefaultMaxEndpoints        = 3
	DefaultMetricsFlushPeriod  = time.Second
)

// settings is a validated configuration.
type settings struct {
	pool            string
	chunk           int
	maxPrompt       int
	ttl             time.Duration
	cacheThreshold  float64
	absThreshold    float64
	relThreshold    float64
	sessionHeader   string
	sessionFromUser bool
	maxEndpoints    int
	flushPeriod     time.Duration
}

// parseConfig decodes and validates a configuration; empty data is the
// default configuration. Errors name the field at fault.
func parseConfig(data []byte) (*settings, error) {
	var cfg Config
	if err := config.DecodeOptional("cacheaware", data, &cfg); err != nil {
		return nil, err
	}
	s := &settings{
		pool: cfg.Pool, chunk: DefaultChunkBytes, maxPrompt: DefaultMaxPromptBytes, ttl: DefaultBlockTTL,
		cacheThreshold: DefaultCacheThreshold, absThreshold: DefaultBalanceAbsThreshold,
		relThreshold: DefaultBalanceRelThreshold, sessionHeader: strings.ToLower(cfg.SessionHeader),
		sessionFromUser: cfg.SessionFromUser, maxEndpoints: DefaultMaxEndpoints,
		flushPeriod: DefaultMetricsFlushPeriod,
	}
	ints := []struct {
		name   string
		in     int
		lo, hi int
		out    *int
	}{
		{"chunk_bytes", cfg.ChunkBytes, 16, 4096, &s.chunk},
		{"max_prompt_bytes", cfg.MaxPromptBytes, 1024, 16 << 20, &s.maxPrompt},
		{"max_endpoints", cfg.MaxEndpoints, 1, 16, &s.maxEndpoints},
	}
	for _, f := range ints {
		switch {
		case f.in == 0:
		case f.in < f.lo || f.in > f.hi:
			return nil, fmt.Errorf("cacheaware: %s: %d is not in %d..%d", f.name, f.in, f.lo, f.hi)
		default:
			*f.out = f.in
		}
	}
	floats := []struct {
		name   string
		in     *float64
		lo, hi float64
		out    *float64
	}{
		{"cache_threshold", cfg.CacheThreshold, 0, 1, &s.cacheThreshold},
		{"balance_abs_threshold", cfg.BalanceAbsThreshold, 0, 1e6, &s.absThreshold},
		{"balance_rel_threshold", cfg.BalanceRelThreshold, 1, 1e6, &s.relThreshold},
	}
	for _, f := range floats {
		if f.in == nil {
			continue
		}
		if math.IsNaN(*f.in) || *f.in < f.lo || *f.in > f.hi {
			return nil, fmt.Errorf("cacheaware: %s: %v is not in %v..%v", f.name, *f.in, f.lo, f.hi)
		}
		*f.out = *f.in
	}
	if cfg.BlockTTL != "" {
		d, err := time.ParseDuration(cfg.BlockTTL)
		if err != nil || d < time.Second || d > 720*time.Hour {
			return nil, fmt.Errorf("cacheaware: block_ttl: %q is not a duration in 1s..720h", cfg.BlockTTL)
		}
		s.ttl = d
	}
	if cfg.MetricsFlushPeriod != "" {
		d, err := time.ParseDuration(cfg.MetricsFlushPeriod)
		if err != nil || d < 10*time.Millisecond || d > time.Minute {
			return nil, fmt.Errorf("cacheaware: metrics_flush_period: %q is not a duration in 10ms..1m", cfg.MetricsFlushPeriod)
		}
		s.flushPeriod = d
	}
	if strings.ContainsAny(cfg.Pool, "\x00\r\n/") {
		return nil, fmt.Errorf("cacheaware: pool: %q has control bytes or '/'", cfg.Pool)
	}
	if cfg.SessionHeader != "" && !config.ValidToken(cfg.SessionHeader) {
		return nil, fmt.Errorf("cacheaware: session_header: %q is not a header name", cfg.SessionHeader)
	}
	return s, nil
}
