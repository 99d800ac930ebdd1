package config

import (
	"crypto/tls"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"time"
)

// Resolved is a validated Config's effective settings, as Config.Resolve
// returns them: endpoint URLs parsed and every default applied, in one
// place, so no consumer parses or defaults again. It is read-only and
// lives as long as the server or host built from it.
type Resolved struct {
	// Config is the configuration resolved (not modified).
	Config *Config
	// Upstreams holds one entry per Config.Upstreams, in the same order.
	Upstreams []Upstream
	// ClientHeaderTimeout, ClientBodyTimeout, MaxRequestHeaderSize and
	// MaxRequestBodyBuffer are the Config fields of those names with
	// their defaults applied.
	ClientHeaderTimeout  time.Duration
	ClientBodyTimeout    time.Duration
	MaxRequestHeaderSize int
	MaxRequestBodyBuffer int64
	// TLS is the client-facing TLS with its files read once; nil when
	// Config.TLS is.
	TLS *ServerTLS
}

// Upstream is one pool's effective settings: an UpstreamConfig with its
// endpoints parsed and its defaults applied.
type Upstream struct {
	// Name is UpstreamConfig.Name.
	Name string
	// Endpoints are the parsed endpoints, each with its weight.
	Endpoints []Endpoint
	// LBPolicy is one of the LB… constants (LBRoundRobin by default).
	LBPolicy string
	// MaxBatchSize is the pool's cap per endpoint, or Config.MaxBatchSize.
	MaxBatchSize int
	// QueueTimeout is the pool's queue timeout, or Config.Timeout.
	QueueTimeout time.Duration
	// Retries is the effective retry count.
	Retries int
	// HealthCheck holds the active checks with defaults applied; nil when
	// the pool has none.
	HealthCheck *HealthCheckConfig
	// Ejection is passive ejection with defaults applied;
	// ConsecutiveFailures is 0 when it is disabled.
	Ejection PassiveEjectionConfig
	// MetricsPath is UpstreamConfig.MetricsPath ("" : not scraped).
	MetricsPath string
	// ScrapeInterval is the time between scrapes (0 when not scraped).
	ScrapeInterval time.Duration
	// Models and ModelAliases are the UpstreamConfig fields (shared, not
	// copied).
	Models       []string
	ModelAliases map[string]string
	// DeclaresModels reports whether the pool lists models or aliases,
	// which makes Sluice model-aware (404 model_not_found, /v1/models).
	DeclaresModels bool
	// TLS is the client TLS config of the pool's https:// endpoints
	// (UpstreamTLSConfig applied; ServerName empty means the endpoint's
	// host); nil when the pool has none. Shared: clone before changing.
	TLS *tls.Config
}

// Endpoint is a parsed upstream endpoint URL.
type Endpoint struct {
	// Addr is "host:port" (port defaulted from the scheme).
	Addr string
	// TLS is true for https.
	TLS bool
	// URL is the endpoint as configured.
	URL string
	// Weight is the endpoint's weight (1 unless configured).
	Weight int
}

// Scheme is "https" for a TLS endpoint, else "http".
func (e Endpoint) Scheme() string {
	if e.TLS {
		return "https"
	}
	return "http"
}

// ParseEndpoint checks an endpoint URL: http or https scheme, a host, an
// optional port, no path, query or user info. The result has weight 1.
func ParseEndpoint(s string) (Endpoint, error) {
	u, err := url.Parse(s)
	if err != nil {
		return Endpoint{}, fmt.Errorf("malformed endpoint URL %q", s)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return Endpoint{}, fmt.Errorf("endpoint URL %q: scheme must be http or https", s)
	}
	if u.Host == "" || u.Hostname() == "" {
		return Endpoint{}, fmt.Errorf("endpoint URL %q has no host", s)
	}
	if u.User != nil || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" {
		return Endpoint{}, fmt.Errorf("endpoint URL %q must be scheme://host[:port] only", s)
	}
	port := u.Port()
	if port == "" {
		port = "80"
		if u.Scheme == "https" {
			port = "443"
		}
	} else if p, err := strconv.Atoi(port); err != nil || p < 1 || p > 65535 {
		return Endpoint{}, fmt.Errorf("endpoint URL %q: port out of range", s)
	}
	return Endpoint{Addr: net.JoinHostPort(u.Hostname(), port), TLS: u.Scheme == "https", URL: s, Weight: 1}, nil
}

// resolveUpstreams checks every pool and returns its effective settings.
func (c *Config) resolveUpstreams() ([]Upstream, error) {
	if len(c.Upstreams) == 0 {
		return nil, fieldErr("upstreams", "at least one upstream is required")
	}
	out := make([]Upstream, 0, len(c.Upstreams))
	names := newNameSet("upstream name", len(c.Upstreams))
	for i := range c.Upstreams {
		u := &c.Upstreams[i]
		f := "upstreams[" + strconv.Itoa(i) + "]"
		if err := names.add(f+".name", u.Name); err != nil {
			return nil, err
		}
		if len(u.Endpoints) == 0 {
			return nil, fieldErr(f+".endpoints", "at least one endpoint is required")
		}
		eps := make([]Endpoint, 0, len(u.Endpoints))
		dup := make(map[string]bool, len(u.Endpoints))
		for j, e := range u.Endpoints {
			ef := f + ".endpoints[" + strconv.Itoa(j) + "]"
			ep, err := ParseEndpoint(e)
			if err != nil {
				return nil, fieldErr(ef, "%v", err)
			}
			if dup[e] {
				return nil, fieldErr(ef, "duplicate endpoint %q", e)
			}
			dup[e] = true
			eps = append(eps, ep)
		}
		if err := c.validateUpstream(f, u); err != nil {
			return nil, err
		}
		tc, err := resolveUpstreamTLS(f, u, eps)
		if err != nil {
			return nil, err
		}
		r := c.resolveUpstream(u, eps)
		r.TLS = tc
		out = append(out, r)
	}
	return out, nil
}

// resolveUpstream applies the defaults of a pool that validateUpstream
// accepted; eps are its parsed endpoints.
func (c *Config) resolveUpstream(u *UpstreamConfig, eps []Endpoint) Upstream {
	for i := range eps {
		eps[i].Weight = u.weight(i)
	}
	r := Upstream{
		Name:           u.Name,
		Endpoints:      eps,
		LBPolicy:       u.LBPolicy,
		MaxBatchSize:   c.MaxBatchSize,
		QueueTimeout:   time.Duration(u.QueueTimeout),
		Retries:        u.retries(),
		Ejection:       u.PassiveEjection.withDefaults(),
		MetricsPath:    u.MetricsPath,
		Models:         u.Models,
		ModelAliases:   u.ModelAliases,
		DeclaresModels: u.DeclaresModels(),
	}
	if r.LBPolicy == "" {
		r.LBPolicy = LBRoundRobin
	}
	if u.MaxBatchSize > 0 {
		r.MaxBatchSize = u.MaxBatchSize
	}
	if r.QueueTimeout == 0 {
		r.QueueTimeout = time.Duration(c.Timeout) // wait as long as for an answer
	}
	if u.PassiveEjection.Disabled {
		r.Ejection.ConsecutiveFailures = 0
	}
	if u.HealthCheck != nil {
		h := u.HealthCheck.withDefaults()
		r.HealthCheck = &h
	}
	if r.MetricsPath != "" {
		r.ScrapeInterval = time.Duration(u.ScrapeInterval)
		if r.ScrapeInterval == 0 {
			r.ScrapeInterval = DefaultScrapeInterval
		}
	}
	return r
}
