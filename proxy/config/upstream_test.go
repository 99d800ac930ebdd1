package config

import (
	"testing"
	"time"

	"os"
)

// upstreamYAML is testdata/upstreams.yaml, which the upstream pools'
// tests read too.
var upstreamYAML = func() string {
	b, err := os.ReadFile("testdata/upstreams.yaml")
	if err != nil {
		panic(err)
	}
	return string(b)
}()

func TestParseUpstreamConfig(t *testing.T) {
	cfg := mustParseValid(t, upstreamYAML)
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
	r, err := cfg.Resolve()
	if err != nil {
		t.Fatal(err)
	}
	p := r.Upstreams[0]
	if p.MaxBatchSize != 4 || p.LBPolicy != LBLeastQueue || p.Retries != 0 || p.HealthCheck.Path != "/healthz" ||
		p.ScrapeInterval != 250*time.Millisecond || p.Endpoints[1].Weight != 3 || p.Endpoints[1].Addr != "127.0.0.1:8002" {
		t.Fatalf("resolved pool %+v", p)
	}
	if m := r.Upstreams[1]; m.MaxBatchSize != 8 || m.LBPolicy != LBRoundRobin || m.Retries != DefaultRetries ||
		m.QueueTimeout != DefaultTimeout || m.Ejection.ConsecutiveFailures != DefaultConsecutiveFailures {
		t.Fatalf("resolved defaults %+v", m)
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
}

func TestParseUpstreamConfigRejects(t *testing.T) {
	tests := []parseCase{
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
	checkParseRejects(t, tests)
}

func TestValidateUpstreamRejects(t *testing.T) {
	ok := func() *Config {
		return New().WithUpstream("a", "http://127.0.0.1:8000", "http://127.0.0.1:8001")
	}
	up := func(c *Config) *UpstreamConfig { return &c.Upstreams[0] }
	neg := -1
	eleven := 11
	tests := []rejectCase{
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
	checkRejects(t, ok, tests)
}

func TestWithUpstreamConfig(t *testing.T) {
	base := New()
	two := 2
	cfg := base.WithUpstreamConfig(UpstreamConfig{Name: "p", Endpoints: []string{"http://127.0.0.1:1"}, Retries: &two})
	if len(base.Upstreams) != 0 || cfg.Upstreams[0].retries() != 2 {
		t.Fatalf("builder: base %+v built %+v", base.Upstreams, cfg.Upstreams)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
}
