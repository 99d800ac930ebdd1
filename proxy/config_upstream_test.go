package proxy

import (
	"errors"
	"strings"
	"testing"
	"time"
)

const upstreamYAML = `
max_batch_size: 8
upstreams:
  - name: llama
    endpoints:
      - http://127.0.0.1:8001
      - {url: "http://127.0.0.1:8002", weight: 3}
      - url: http://127.0.0.1:8003
    lb_policy: least_queue
    max_batch_size: 4
    queue_timeout: 2s
    retries: 0
    health_check: {path: /healthz, interval: 2s, timeout: 500ms, unhealthy_threshold: 2, healthy_threshold: 1}
    passive_ejection: {consecutive_failures: 5, base_ejection: 2s, max_ejection: 1m}
    metrics_path: /metrics
    scrape_interval: 250ms
    models: [llama-3-8b]
    model_aliases: {llama: llama-3-8b}
  - name: mistral
    endpoints: ["http://127.0.0.1:9001"]
    models: ["mistral-7b", "*"]
routes:
  - match: {model: "llama*"}
    upstream: llama
  - match: {path_prefix: /v1/}
    upstream: mistral
`

func TestParseUpstreamConfig(t *testing.T) {
	cfg, err := ParseConfig([]byte(upstreamYAML))
	if err != nil {
		t.Fatal(err)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	u := cfg.Upstreams[0]
	if len(u.Endpoints) != 3 || u.Endpoints[1] != "http://127.0.0.1:8002" || u.Endpoints[2] != "http://127.0.0.1:8003" {
		t.Fatalf("endpoints %q", u.Endpoints)
	}
	if len(u.Weights) != 3 || u.Weights[0] != 1 || u.Weights[1] != 3 || u.Weights[2] != 1 {
		t.Fatalf("weights %v", u.Weights)
	}
	if u.LBPolicy != LBLeastQueue || u.MaxBatchSize != 4 || time.Duration(u.QueueTimeout) != 2*time.Second ||
		u.Retries == nil || *u.Retries != 0 || u.retries() != 0 {
		t.Fatalf("upstream %+v", u)
	}
	h := u.HealthCheck
	if h == nil || h.Path != "/healthz" || time.Duration(h.Interval) != 2*time.Second ||
		time.Duration(h.Timeout) != 500*time.Millisecond || h.UnhealthyThreshold != 2 || h.HealthyThreshold != 1 {
		t.Fatalf("health check %+v", h)
	}
	e := u.PassiveEjection
	if e.ConsecutiveFailures != 5 || time.Duration(e.BaseEjection) != 2*time.Second || time.Duration(e.MaxEjection) != time.Minute {
		t.Fatalf("ejection %+v", e)
	}
	if u.MetricsPath != "/metrics" || time.Duration(u.ScrapeInterval) != 250*time.Millisecond {
		t.Fatalf("scrape %q %s", u.MetricsPath, u.ScrapeInterval)
	}
	if len(u.Models) != 1 || u.ModelAliases["llama"] != "llama-3-8b" {
		t.Fatalf("models %q aliases %v", u.Models, u.ModelAliases)
	}
	if cfg.Routes[0].Match.Model != "llama*" {
		t.Fatalf("route %+v", cfg.Routes[0])
	}
	// Plain URL lists keep Weights nil and the defaults apply.
	m := cfg.Upstreams[1]
	if m.Weights != nil || m.retries() != DefaultRetries || m.HealthCheck != nil || m.LBPolicy != "" {
		t.Fatalf("defaults %+v", m)
	}
	ps, err := newPools(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer ps.close()
	p := ps.byName("llama")
	if p.maxBatch != 4 || p.policy != lbLeastQueue || p.retries != 0 || p.health.Path != "/healthz" || p.scrapeInterval != 250*time.Millisecond {
		t.Fatalf("compiled pool %+v", p)
	}
	if ps.byName("mistral").maxBatch != 8 || !ps.byName("mistral").anyModel {
		t.Fatal("mistral pool: top-level max_batch_size or '*' not applied")
	}
	if !p.serves([]byte("llama")) || !p.serves([]byte("llama-3-8b")) || p.serves([]byte("mistral-7b")) {
		t.Fatal("llama pool serves the wrong models")
	}
}

func TestUpstreamDefaults(t *testing.T) {
	h := HealthCheckConfig{}.withDefaults()
	if h.Path != "/health" || time.Duration(h.Interval) != 5*time.Second || time.Duration(h.Timeout) != time.Second ||
		h.UnhealthyThreshold != 3 || h.HealthyThreshold != 2 {
		t.Fatalf("health defaults %+v", h)
	}
	// A short interval shortens the default timeout with it.
	if h := (HealthCheckConfig{Interval: Duration(100 * time.Millisecond)}).withDefaults(); time.Duration(h.Timeout) != 100*time.Millisecond {
		t.Fatalf("timeout %s", h.Timeout)
	}
	e := PassiveEjectionConfig{}.withDefaults()
	if e.ConsecutiveFailures != 3 || time.Duration(e.BaseEjection) != time.Second || time.Duration(e.MaxEjection) != 30*time.Second {
		t.Fatalf("ejection defaults %+v", e)
	}
	for k, want := range map[int32]time.Duration{1: time.Second, 2: 2 * time.Second, 3: 4 * time.Second, 5: 16 * time.Second, 6: 30 * time.Second, 40: 30 * time.Second} {
		if got := ejectionFor(e, k); got != want {
			t.Errorf("ejection %d: %s, want %s", k, got, want)
		}
	}
}

func TestParseUpstreamConfigRejects(t *testing.T) {
	tests := []struct{ name, yaml, want string }{
		{"unknown upstream key", "upstreams: [{name: a, endpoints: ['http://h'], lb: x}]", "field lb not found"},
		{"unknown endpoint key", "upstreams: [{name: a, endpoints: [{url: 'http://h', wieght: 2}]}]", "wieght"},
		{"unknown health key", "upstreams: [{name: a, endpoints: ['http://h'], health_check: {pth: /x}}]", "pth"},
		{"unknown ejection key", "upstreams: [{name: a, endpoints: ['http://h'], passive_ejection: {base: 1s}}]", "base"},
		{"endpoint without url", "upstreams: [{name: a, endpoints: [{weight: 2}]}]", "url is required"},
		{"endpoint list", "upstreams: [{name: a, endpoints: [[1]]}]", "endpoints[0]"},
		{"endpoints not a list", "upstreams: [{name: a, endpoints: {x: y}}]", "list"},
		{"weight not a number", "upstreams:\n  - name: a\n    endpoints:\n      - url: http://h\n        weight: heavy\n", `field "weight"`},
		{"upstream not a mapping", "upstreams: [x]", "mapping"},
		{"bad duration", "upstreams: [{name: a, endpoints: ['http://h'], queue_timeout: soon}]", "duration"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseConfig([]byte(tc.yaml))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("ParseConfig(%q) = %v, want error mentioning %q", tc.yaml, err, tc.want)
			}
		})
	}
}

func TestValidateUpstreamRejects(t *testing.T) {
	ok := func() *Config {
		return NewConfig().WithUpstream("a", "http://127.0.0.1:8000", "http://127.0.0.1:8001")
	}
	up := func(c *Config) *UpstreamConfig { return &c.Upstreams[0] }
	neg := -1
	eleven := 11
	tests := []struct {
		name  string
		edit  func(c *Config)
		field string
	}{
		{"weights count", func(c *Config) { up(c).Weights = []int{1} }, "upstreams[0].endpoints"},
		{"weight zero", func(c *Config) { up(c).Weights = []int{1, 0} }, "upstreams[0].endpoints[1].weight"},
		{"weight too big", func(c *Config) { up(c).Weights = []int{1001, 1} }, "upstreams[0].endpoints[0].weight"},
		{"policy", func(c *Config) { up(c).LBPolicy = "fastest" }, "upstreams[0].lb_policy"},
		{"least_queue without metrics", func(c *Config) { up(c).LBPolicy = LBLeastQueue }, "upstreams[0].lb_policy"},
		{"batch", func(c *Config) { up(c).MaxBatchSize = -1 }, "upstreams[0].max_batch_size"},
		{"queue timeout", func(c *Config) { up(c).QueueTimeout = -1 }, "upstreams[0].queue_timeout"},
		{"retries negative", func(c *Config) { up(c).Retries = &neg }, "upstreams[0].retries"},
		{"retries big", func(c *Config) { up(c).Retries = &eleven }, "upstreams[0].retries"},
		{"health path", func(c *Config) { up(c).HealthCheck = &HealthCheckConfig{Path: "health"} }, "upstreams[0].health_check.path"},
		{"health interval", func(c *Config) { up(c).HealthCheck = &HealthCheckConfig{Interval: -1} }, "upstreams[0].health_check.interval"},
		{"health interval tiny", func(c *Config) { up(c).HealthCheck = &HealthCheckConfig{Interval: 1} }, "upstreams[0].health_check.interval"},
		{"health timeout", func(c *Config) { up(c).HealthCheck = &HealthCheckConfig{Timeout: -1} }, "upstreams[0].health_check.timeout"},
		{"health timeout > interval", func(c *Config) {
			up(c).HealthCheck = &HealthCheckConfig{Interval: Duration(time.Second), Timeout: Duration(2 * time.Second)}
		}, "upstreams[0].health_check.timeout"},
		{"unhealthy threshold", func(c *Config) { up(c).HealthCheck = &HealthCheckConfig{UnhealthyThreshold: -1} }, "upstreams[0].health_check.unhealthy_threshold"},
		{"healthy threshold", func(c *Config) { up(c).HealthCheck = &HealthCheckConfig{HealthyThreshold: -2} }, "upstreams[0].health_check.healthy_threshold"},
		{"ejection failures", func(c *Config) { up(c).PassiveEjection.ConsecutiveFailures = -1 }, "upstreams[0].passive_ejection.consecutive_failures"},
		{"ejection base", func(c *Config) { up(c).PassiveEjection.BaseEjection = -1 }, "upstreams[0].passive_ejection.base_ejection"},
		{"ejection max", func(c *Config) { up(c).PassiveEjection.MaxEjection = -1 }, "upstreams[0].passive_ejection.max_ejection"},
		{"ejection max < base", func(c *Config) {
			up(c).PassiveEjection = PassiveEjectionConfig{BaseEjection: Duration(time.Minute), MaxEjection: Duration(time.Second)}
		}, "upstreams[0].passive_ejection.max_ejection"},
		{"metrics path", func(c *Config) { up(c).MetricsPath = "metrics" }, "upstreams[0].metrics_path"},
		{"scrape without path", func(c *Config) { up(c).ScrapeInterval = Duration(time.Second) }, "upstreams[0].scrape_interval"},
		{"scrape too fast", func(c *Config) {
			up(c).MetricsPath, up(c).ScrapeInterval = "/metrics", Duration(time.Millisecond)
		}, "upstreams[0].scrape_interval"},
		{"empty model", func(c *Config) { up(c).Models = []string{""} }, "upstreams[0].models[0]"},
		{"duplicate model", func(c *Config) { up(c).Models = []string{"m", "m"} }, "upstreams[0].models[1]"},
		{"empty alias", func(c *Config) { up(c).ModelAliases = map[string]string{"": "m"} }, "upstreams[0].model_aliases"},
		{"empty alias target", func(c *Config) { up(c).ModelAliases = map[string]string{"a": ""} }, "upstreams[0].model_aliases"},
		{"models without openai", func(c *Config) { c.OpenAICompat = false; up(c).Models = []string{"m"} }, "upstreams[0].models"},
		{"aliases without openai", func(c *Config) {
			c.OpenAICompat = false
			up(c).ModelAliases = map[string]string{"a": "b"}
		}, "upstreams[0].model_aliases"},
		{"route model pattern", func(c *Config) {
			c.Routes = []RouteConfig{{Match: RouteMatch{Model: "ll*ama"}, Upstream: "a"}}
		}, "routes[0].match.model"},
		{"route model without openai", func(c *Config) {
			c.OpenAICompat = false
			c.Routes = []RouteConfig{{Match: RouteMatch{Model: "llama"}, Upstream: "a"}}
		}, "routes[0].match.model"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := ok()
			tc.edit(c)
			err := c.Validate()
			var ce *ConfigError
			if !errors.As(err, &ce) {
				t.Fatalf("Validate() = %v, want a *ConfigError", err)
			}
			if ce.Field != tc.field {
				t.Fatalf("field = %q, want %q (error: %v)", ce.Field, tc.field, err)
			}
		})
	}
}

func TestWithUpstreamConfig(t *testing.T) {
	base := NewConfig()
	two := 2
	cfg := base.WithUpstreamConfig(UpstreamConfig{Name: "p", Endpoints: []string{"http://127.0.0.1:1"}, Retries: &two})
	if len(base.Upstreams) != 0 || cfg.Upstreams[0].retries() != 2 {
		t.Fatalf("builder: base %+v built %+v", base.Upstreams, cfg.Upstreams)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
}

func TestBuildSchedule(t *testing.T) {
	count := func(s []uint32) map[uint32]int {
		m := map[uint32]int{}
		for _, i := range s {
			m[i]++
		}
		return m
	}
	if s := buildSchedule([]int{1, 1, 1}); len(s) != 3 {
		t.Fatalf("equal weights: %v", s)
	}
	s := buildSchedule([]int{6, 2})
	if len(s) != 4 || count(s)[0] != 3 || count(s)[1] != 1 {
		t.Fatalf("6:2 reduced by the gcd to 3:1, got %v", s)
	}
	// Smooth: the heavy endpoint's turns are spread, not bunched.
	s = buildSchedule([]int{5, 1, 1})
	if len(s) != 7 || s[0] != 0 || s[1] == s[2] && s[1] != 0 {
		t.Fatalf("5:1:1 schedule %v", s)
	}
	for i := 1; i < len(s); i++ {
		if s[i] != 0 && s[i-1] != 0 {
			t.Fatalf("light endpoints back to back in %v", s)
		}
	}
}
