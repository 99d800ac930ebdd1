package config

import (
	"cmp"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Load-balancing policies for UpstreamConfig.LBPolicy.
const (
	// LBRoundRobin cycles through the endpoints in proportion to their
	// weights (smooth weighted round robin). The default.
	LBRoundRobin = "round_robin"
	// LBLeastRequest picks two endpoints at random and sends the request
	// to the one with fewer requests in flight per unit of weight
	// (power of two choices).
	LBLeastRequest = "least_request"
	// LBRandom picks an endpoint at random, in proportion to its weight.
	LBRandom = "random"
	// LBLeastQueue picks the endpoint whose engine reports the shortest
	// queue (scraped from metrics_path), ties broken by fewer requests in
	// flight. It needs MetricsPath.
	LBLeastQueue = "least_queue"
)

// Defaults of the per-pool settings.
const (
	DefaultRetries             = 1
	DefaultScrapeInterval      = time.Second
	DefaultHealthCheckPath     = "/health"
	DefaultHealthCheckInterval = 5 * time.Second
	DefaultHealthCheckTimeout  = time.Second
	DefaultUnhealthyThreshold  = 3
	DefaultHealthyThreshold    = 2
	DefaultConsecutiveFailures = 3
	DefaultBaseEjection        = time.Second
	DefaultMaxEjection         = 30 * time.Second
	// MaxEndpointWeight is the largest endpoint weight.
	MaxEndpointWeight = 1000
	// MaxRetries is the largest value of UpstreamConfig.Retries.
	MaxRetries = 10
	// MinScrapeInterval is the shortest scrape_interval accepted.
	MinScrapeInterval = 10 * time.Millisecond
)

// UpstreamConfig is one pool of equivalent upstream endpoints. Zero values
// mean the documented defaults.
type UpstreamConfig struct {
	// Name identifies the pool in routes, metrics and plugins.
	Name string `yaml:"name"`
	// Endpoints are base URLs, "http://host:port" or "https://host:port"
	// (verified as TLS sets). In YAML an entry is a
	// URL string or a mapping {url: "http://host:port", weight: 3}.
	Endpoints []string `yaml:"endpoints"`
	// Weights[i] is the weight of Endpoints[i] (1 to MaxEndpointWeight)
	// for round_robin, random and least_request. Nil means every weight
	// is 1; otherwise it has one entry per endpoint. YAML sets it through
	// the mapping form of endpoints.
	Weights []int `yaml:"-"`
	// LBPolicy is round_robin (default), least_request, random or
	// least_queue (see the LB… constants).
	LBPolicy string `yaml:"lb_policy"`
	// MaxBatchSize caps the requests in flight to each endpoint of this
	// pool. Default: Config.MaxBatchSize.
	MaxBatchSize int `yaml:"max_batch_size"`
	// QueueTimeout is how long a request may wait, first come first
	// served and holding its admission slot, for an endpoint below its cap
	// (MaxBatchSize) when all are at it, as requests beyond a batch wait
	// in text-generation-inference's queue. When it passes the request
	// gets 503 with Retry-After (429 stays the answer of the admission
	// slots, max_concurrent_requests). Default 0: Config.Timeout.
	QueueTimeout Duration `yaml:"queue_timeout"`
	// Retries is how many times a request is sent again, each time to
	// another endpoint of the pool, after a connection failure, a reset
	// before the response headers, or a 502, 503 or 429 answer, and never
	// once any of the response went to the client. Default 1; 0 turns
	// retries off (nil means the default).
	Retries *int `yaml:"retries"`
	// HealthCheck turns on active health checks. Default nil: none; the
	// endpoints count as healthy unless passive ejection removes them.
	HealthCheck *HealthCheckConfig `yaml:"health_check"`
	// PassiveEjection removes an endpoint from rotation after consecutive
	// failures. On by default.
	PassiveEjection PassiveEjectionConfig `yaml:"passive_ejection"`
	// MetricsPath is the path of each endpoint's Prometheus metrics
	// (vLLM, SGLang, TGI), scraped every ScrapeInterval for queue depth
	// and KV-cache usage. Default "": not scraped.
	MetricsPath string `yaml:"metrics_path"`
	// ScrapeInterval is the time between scrapes of MetricsPath. Default
	// 1s; at least MinScrapeInterval.
	ScrapeInterval Duration `yaml:"scrape_interval"`
	// Models are the model names this pool serves ("*": any). A request
	// naming a model goes only to a pool that serves it. Default: empty,
	// which also means any model (and nothing to list on /v1/models).
	Models []string `yaml:"models"`
	// ModelAliases maps a model name clients use to the name sent to this
	// pool's endpoints (the request body's "model" is rewritten). An alias
	// counts as a model the pool serves. Needs OpenAICompat.
	ModelAliases map[string]string `yaml:"model_aliases"`
	// TLS sets how https:// endpoints are verified (UpstreamTLSConfig).
	// Default nil: against the system's roots.
	TLS *UpstreamTLSConfig `yaml:"tls"`
}

// HealthCheckConfig configures active health checks: GET Path on every
// endpoint every Interval; a 2xx answer within Timeout is a success.
type HealthCheckConfig struct {
	// Path is the request path. Default "/health".
	Path string `yaml:"path"`
	// Interval is the time between checks. Default 5s.
	Interval Duration `yaml:"interval"`
	// Timeout bounds each check; it may not exceed Interval. Default 1s.
	Timeout Duration `yaml:"timeout"`
	// UnhealthyThreshold is the number of consecutive failed checks that
	// mark a healthy endpoint unhealthy. Default 3.
	UnhealthyThreshold int `yaml:"unhealthy_threshold"`
	// HealthyThreshold is the number of consecutive passed checks that
	// mark an unhealthy endpoint healthy again. Default 2.
	HealthyThreshold int `yaml:"healthy_threshold"`
}

// PassiveEjectionConfig configures outlier ejection: after
// ConsecutiveFailures connection errors or 5xx answers in a row, an
// endpoint is out of rotation for BaseEjection, doubled at each further
// ejection up to MaxEjection; a success resets both counts.
type PassiveEjectionConfig struct {
	// Disabled turns passive ejection off.
	Disabled bool `yaml:"disabled"`
	// ConsecutiveFailures is the failure count that ejects. Default 3.
	ConsecutiveFailures int `yaml:"consecutive_failures"`
	// BaseEjection is the first ejection's length. Default 1s.
	BaseEjection Duration `yaml:"base_ejection"`
	// MaxEjection caps the doubled ejection length. Default 30s.
	MaxEjection Duration `yaml:"max_ejection"`
}

// withDefaults returns h with its zero fields set to the defaults.
func (h HealthCheckConfig) withDefaults() HealthCheckConfig {
	if h.Path == "" {
		h.Path = DefaultHealthCheckPath
	}
	if h.Interval == 0 {
		h.Interval = Duration(DefaultHealthCheckInterval)
	}
	if h.Timeout == 0 {
		h.Timeout = Duration(min(DefaultHealthCheckTimeout, time.Duration(h.Interval)))
	}
	if h.UnhealthyThreshold == 0 {
		h.UnhealthyThreshold = DefaultUnhealthyThreshold
	}
	if h.HealthyThreshold == 0 {
		h.HealthyThreshold = DefaultHealthyThreshold
	}
	return h
}

// withDefaults returns e with its zero fields set to the defaults.
func (e PassiveEjectionConfig) withDefaults() PassiveEjectionConfig {
	if e.ConsecutiveFailures == 0 {
		e.ConsecutiveFailures = DefaultConsecutiveFailures
	}
	if e.BaseEjection == 0 {
		e.BaseEjection = Duration(DefaultBaseEjection)
	}
	if e.MaxEjection == 0 {
		e.MaxEjection = Duration(max(DefaultMaxEjection, time.Duration(e.BaseEjection)))
	}
	return e
}

// retries returns the effective retry count.
func (u *UpstreamConfig) retries() int {
	if u.Retries == nil {
		return DefaultRetries
	}
	return *u.Retries
}

// weight returns the weight of endpoint i.
func (u *UpstreamConfig) weight(i int) int {
	if len(u.Weights) == 0 {
		return 1
	}
	return u.Weights[i]
}

// DeclaresModels reports whether the pool lists models or aliases, which
// makes Sluice model-aware (404 model_not_found, /v1/models answered).
func (u *UpstreamConfig) DeclaresModels() bool {
	return len(u.Models) > 0 || len(u.ModelAliases) > 0
}

// UnmarshalYAML implements yaml.Unmarshaler: endpoints may be URL strings
// or {url, weight} mappings, and unknown keys are errors as everywhere in
// the config.
func (u *UpstreamConfig) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.MappingNode {
		return typeErr(n, "an upstream must be a mapping with name and endpoints")
	}
	rest := *n
	rest.Content = make([]*yaml.Node, 0, len(n.Content))
	var endpoints *yaml.Node
	for i := 0; i+1 < len(n.Content); i += 2 {
		k := n.Content[i]
		if k.Value == "endpoints" {
			endpoints = n.Content[i+1]
			continue
		}
		rest.Content = append(rest.Content, k, n.Content[i+1])
	}
	type plain UpstreamConfig
	if err := decodeStrict(&rest, (*plain)(u), "proxy.UpstreamConfig"); err != nil {
		return err
	}
	if endpoints == nil {
		return nil
	}
	return u.decodeEndpoints(endpoints)
}

func (u *UpstreamConfig) decodeEndpoints(n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		u.Endpoints, u.Weights = nil, nil
		return nil
	}
	if n.Kind != yaml.SequenceNode {
		return typeErr(n, "endpoints must be a list of URLs or {url, weight} mappings")
	}
	u.Endpoints = make([]string, 0, len(n.Content))
	weights := make([]int, 0, len(n.Content))
	weighted := false
	for i, e := range n.Content {
		f := "endpoints[" + strconv.Itoa(i) + "]"
		switch e.Kind {
		case yaml.ScalarNode:
			u.Endpoints = append(u.Endpoints, e.Value)
			weights = append(weights, 1)
		case yaml.MappingNode:
			var ec struct {
				URL    string `yaml:"url"`
				Weight *int   `yaml:"weight"`
			}
			if err := decodeStrict(e, &ec, "proxy.endpoint"); err != nil {
				return err
			}
			if ec.URL == "" {
				return typeErr(e, f+".url is required")
			}
			w := 1
			if ec.Weight != nil {
				w, weighted = *ec.Weight, true
			}
			u.Endpoints = append(u.Endpoints, ec.URL)
			weights = append(weights, w)
		default:
			return typeErr(e, f+" must be a URL or a {url, weight} mapping")
		}
	}
	u.Weights = nil
	if weighted {
		u.Weights = weights
	}
	return nil
}

// UnmarshalYAML implements yaml.Unmarshaler, rejecting unknown keys.
func (h *HealthCheckConfig) UnmarshalYAML(n *yaml.Node) error {
	type plain HealthCheckConfig
	return decodeStrict(n, (*plain)(h), "proxy.HealthCheckConfig")
}

// UnmarshalYAML implements yaml.Unmarshaler, rejecting unknown keys.
func (e *PassiveEjectionConfig) UnmarshalYAML(n *yaml.Node) error {
	type plain PassiveEjectionConfig
	return decodeStrict(n, (*plain)(e), "proxy.PassiveEjectionConfig")
}

// decodeStrict decodes the mapping n into the struct v points to, failing
// on keys v has no field for. yaml.v3's Node.Decode does not apply the
// top-level decoder's KnownFields, so types with their own UnmarshalYAML
// check keys here; errors keep yaml's "line N: …" form so Parse can
// name the field.
func decodeStrict(n *yaml.Node, v any, typeName string) error {
	if n.Kind == yaml.MappingNode {
		known := yamlKeys(reflect.TypeOf(v).Elem())
		var msgs []string
		for i := 0; i+1 < len(n.Content); i += 2 {
			k := n.Content[i]
			if !known[k.Value] {
				msgs = append(msgs, fmt.Sprintf("line %d: field %s not found in type %s", k.Line, k.Value, typeName))
			}
		}
		if len(msgs) > 0 {
			return &yaml.TypeError{Errors: msgs}
		}
	}
	return n.Decode(v)
}

// yamlKeys lists the YAML keys of struct type t.
func yamlKeys(t reflect.Type) map[string]bool {
	keys := make(map[string]bool, t.NumField())
	for i := 0; i < t.NumField(); i++ {
		tag := t.Field(i).Tag.Get("yaml")
		name, _, _ := strings.Cut(tag, ",")
		if name == "-" {
			continue
		}
		if name == "" {
			name = strings.ToLower(t.Field(i).Name)
		}
		keys[name] = true
	}
	return keys
}

func typeErr(n *yaml.Node, msg string) error {
	return &yaml.TypeError{Errors: []string{fmt.Sprintf("line %d: %s", n.Line, msg)}}
}

// validateUpstream checks the pool settings beyond name and endpoint URLs.
func (c *Config) validateUpstream(f string, u *UpstreamConfig) error {
	if len(u.Weights) > 0 {
		if len(u.Weights) != len(u.Endpoints) {
			return fieldErr(f+".endpoints", "has %d weights for %d endpoints", len(u.Weights), len(u.Endpoints))
		}
		for j, w := range u.Weights {
			if w < 1 || w > MaxEndpointWeight {
				return fieldErr(f+".endpoints["+strconv.Itoa(j)+"].weight", "must be 1-%d, got %d", MaxEndpointWeight, w)
			}
		}
	}
	switch u.LBPolicy {
	case "", LBRoundRobin, LBLeastRequest, LBRandom:
	case LBLeastQueue:
		if u.MetricsPath == "" {
			return fieldErr(f+".lb_policy", "%s needs metrics_path to read the engines' queue depth", LBLeastQueue)
		}
	default:
		return fieldErr(f+".lb_policy", "must be %s, %s, %s or %s, got %q",
			LBRoundRobin, LBLeastRequest, LBRandom, LBLeastQueue, u.LBPolicy)
	}
	if err := cmp.Or(
		notNegative(f+".max_batch_size", u.MaxBatchSize),
		notNegative(f+".queue_timeout", u.QueueTimeout),
	); err != nil {
		return err
	}
	if u.Retries != nil && (*u.Retries < 0 || *u.Retries > MaxRetries) {
		return fieldErr(f+".retries", "must be 0-%d, got %d", MaxRetries, *u.Retries)
	}
	if err := validateHealthCheck(f+".health_check", u.HealthCheck); err != nil {
		return err
	}
	if err := validateEjection(f+".passive_ejection", &u.PassiveEjection); err != nil {
		return err
	}
	if u.MetricsPath != "" && !validPath(u.MetricsPath) {
		return fieldErr(f+".metrics_path", "must be a path starting with '/', got %q", u.MetricsPath)
	}
	if u.ScrapeInterval != 0 {
		if u.MetricsPath == "" {
			return fieldErr(f+".scrape_interval", "is set but metrics_path is not")
		}
		if time.Duration(u.ScrapeInterval) < MinScrapeInterval {
			return fieldErr(f+".scrape_interval", "must be at least %s, got %s", MinScrapeInterval, u.ScrapeInterval)
		}
	}
	if u.DeclaresModels() && !c.OpenAICompat {
		field := f + ".models"
		if len(u.Models) == 0 {
			field = f + ".model_aliases"
		}
		return fieldErr(field, "model-aware routing reads OpenAI request bodies: it needs openai_compat: true")
	}
	models := newNameSet("model", len(u.Models))
	for j, m := range u.Models {
		if err := models.add(f+".models["+strconv.Itoa(j)+"]", m); err != nil {
			return err
		}
	}
	for alias, target := range u.ModelAliases {
		if alias == "" || alias == "*" || target == "" {
			return fieldErr(f+".model_aliases", "alias %q -> %q: both names must be non-empty and the alias not \"*\"", alias, target)
		}
	}
	return nil
}

func validateHealthCheck(f string, h *HealthCheckConfig) error {
	if h == nil {
		return nil
	}
	if h.Path != "" && !validPath(h.Path) {
		return fieldErr(f+".path", "must be a path starting with '/', got %q", h.Path)
	}
	if err := notNegative(f+".interval", h.Interval); err != nil {
		return err
	}
	if h.Interval != 0 && time.Duration(h.Interval) < MinScrapeInterval {
		return fieldErr(f+".interval", "must be at least %s, got %s", MinScrapeInterval, h.Interval)
	}
	if err := cmp.Or(
		notNegative(f+".timeout", h.Timeout),
		notNegative(f+".unhealthy_threshold", h.UnhealthyThreshold),
		notNegative(f+".healthy_threshold", h.HealthyThreshold),
	); err != nil {
		return err
	}
	if eff := h.withDefaults(); eff.Timeout > eff.Interval {
		return fieldErr(f+".timeout", "%s is longer than the interval %s", eff.Timeout, eff.Interval)
	}
	return nil
}

func validateEjection(f string, e *PassiveEjectionConfig) error {
	if err := cmp.Or(
		notNegative(f+".consecutive_failures", e.ConsecutiveFailures),
		notNegative(f+".base_ejection", e.BaseEjection),
		notNegative(f+".max_ejection", e.MaxEjection),
	); err != nil {
		return err
	}
	if eff := e.withDefaults(); eff.MaxEjection < eff.BaseEjection {
		return fieldErr(f+".max_ejection", "%s is shorter than base_ejection %s", eff.MaxEjection, eff.BaseEjection)
	}
	return nil
}

// validModelPattern checks a route's match.model: a name, or a prefix
// ending in '*'.
func validModelPattern(m string) bool {
	i := strings.IndexByte(m, '*')
	return m != "" && (i < 0 || i == len(m)-1)
}

func validPath(p string) bool {
	return len(p) > 0 && p[0] == '/' && !strings.ContainsAny(p, " \t\r\n?#")
}
