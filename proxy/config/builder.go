package config

import "time"

// The With… methods build a Config fluently, in the style of the TGI
// router's RouterConfig builder:
//
//	cfg := proxy.NewConfig().WithPort(8080).WithMaxConcurrentRequests(128)
//
// Each returns a copy of c with one field changed and leaves c untouched
// (slices are shared until changed). Values are checked by Validate, not
// here.

// WithHostname sets Hostname.
func (c *Config) WithHostname(h string) *Config { n := *c; n.Hostname = h; return &n }

// WithPort sets Port.
func (c *Config) WithPort(p int) *Config { n := *c; n.Port = p; return &n }

// WithMaxConcurrentRequests sets MaxConcurrentRequests.
func (c *Config) WithMaxConcurrentRequests(v int) *Config {
	n := *c
	n.MaxConcurrentRequests = v
	return &n
}

// WithMaxBatchSize sets MaxBatchSize.
func (c *Config) WithMaxBatchSize(v int) *Config { n := *c; n.MaxBatchSize = v; return &n }

// WithTimeout sets Timeout.
func (c *Config) WithTimeout(d time.Duration) *Config { n := *c; n.Timeout = Duration(d); return &n }

// WithOpenAICompat sets OpenAICompat.
func (c *Config) WithOpenAICompat(v bool) *Config { n := *c; n.OpenAICompat = v; return &n }

// WithEnableMetrics sets EnableMetrics.
func (c *Config) WithEnableMetrics(v bool) *Config { n := *c; n.EnableMetrics = v; return &n }

// WithMaxRequestBodySize sets MaxRequestBodySize in bytes.
func (c *Config) WithMaxRequestBodySize(v int64) *Config {
	n := *c
	n.MaxRequestBodySize = ByteSize(v)
	return &n
}

// WithShutdownTimeout sets ShutdownTimeout.
func (c *Config) WithShutdownTimeout(d time.Duration) *Config {
	n := *c
	n.ShutdownTimeout = Duration(d)
	return &n
}

// WithClientHeaderTimeout sets ClientHeaderTimeout.
func (c *Config) WithClientHeaderTimeout(d time.Duration) *Config {
	n := *c
	n.ClientHeaderTimeout = Duration(d)
	return &n
}

// WithClientBodyTimeout sets ClientBodyTimeout.
func (c *Config) WithClientBodyTimeout(d time.Duration) *Config {
	n := *c
	n.ClientBodyTimeout = Duration(d)
	return &n
}

// WithMaxRequestHeaderSize sets MaxRequestHeaderSize in bytes.
func (c *Config) WithMaxRequestHeaderSize(v int64) *Config {
	n := *c
	n.MaxRequestHeaderSize = ByteSize(v)
	return &n
}

// WithMaxRequestBodyBuffer sets MaxRequestBodyBuffer in bytes.
func (c *Config) WithMaxRequestBodyBuffer(v int64) *Config {
	n := *c
	n.MaxRequestBodyBuffer = ByteSize(v)
	return &n
}

// WithDrainDelay sets DrainDelay.
func (c *Config) WithDrainDelay(d time.Duration) *Config {
	n := *c
	n.DrainDelay = Duration(d)
	return &n
}

// WithUpstream appends a pool.
func (c *Config) WithUpstream(name string, endpoints ...string) *Config {
	n := *c
	n.Upstreams = append(append([]UpstreamConfig(nil), c.Upstreams...),
		UpstreamConfig{Name: name, Endpoints: append([]string(nil), endpoints...)})
	return &n
}

// WithUpstreamConfig appends a pool with every setting (policy, weights,
// health checks, models…). u's slices and maps are shared, not copied.
func (c *Config) WithUpstreamConfig(u UpstreamConfig) *Config {
	n := *c
	n.Upstreams = append(append([]UpstreamConfig(nil), c.Upstreams...), u)
	return &n
}

// WithRoute appends a route.
func (c *Config) WithRoute(match RouteMatch, upstream string) *Config {
	n := *c
	n.Routes = append(append([]RouteConfig(nil), c.Routes...), RouteConfig{Match: match, Upstream: upstream})
	return &n
}

// WithPlugin appends a plugin.
func (c *Config) WithPlugin(p PluginConfig) *Config {
	n := *c
	n.Plugins = append(append([]PluginConfig(nil), c.Plugins...), p)
	return &n
}
