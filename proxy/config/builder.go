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

// with returns a copy of c changed by set.
func (c *Config) with(set func(n *Config)) *Config {
	n := *c
	set(&n)
	return &n
}

// appended returns a new slice holding s and then v; s is not changed, so
// configs copied from one another never share an appended element.
func appended[T any](s []T, v T) []T { return append(append([]T(nil), s...), v) }

// WithHostname sets Hostname.
func (c *Config) WithHostname(h string) *Config {
	return c.with(func(n *Config) { n.Hostname = h })
}

// WithPort sets Port.
func (c *Config) WithPort(p int) *Config {
	return c.with(func(n *Config) { n.Port = p })
}

// WithMaxConcurrentRequests sets MaxConcurrentRequests.
func (c *Config) WithMaxConcurrentRequests(v int) *Config {
	return c.with(func(n *Config) { n.MaxConcurrentRequests = v })
}

// WithMaxBatchSize sets MaxBatchSize.
func (c *Config) WithMaxBatchSize(v int) *Config {
	return c.with(func(n *Config) { n.MaxBatchSize = v })
}

// WithTimeout sets Timeout.
func (c *Config) WithTimeout(d time.Duration) *Config {
	return c.with(func(n *Config) { n.Timeout = Duration(d) })
}

// WithOpenAICompat sets OpenAICompat.
func (c *Config) WithOpenAICompat(v bool) *Config {
	return c.with(func(n *Config) { n.OpenAICompat = v })
}

// WithEnableMetrics sets EnableMetrics.
func (c *Config) WithEnableMetrics(v bool) *Config {
	return c.with(func(n *Config) { n.EnableMetrics = v })
}

// WithMaxRequestBodySize sets MaxRequestBodySize in bytes.
func (c *Config) WithMaxRequestBodySize(v int64) *Config {
	return c.with(func(n *Config) { n.MaxRequestBodySize = ByteSize(v) })
}

// WithShutdownTimeout sets ShutdownTimeout.
func (c *Config) WithShutdownTimeout(d time.Duration) *Config {
	return c.with(func(n *Config) { n.ShutdownTimeout = Duration(d) })
}

// WithClientHeaderTimeout sets ClientHeaderTimeout.
func (c *Config) WithClientHeaderTimeout(d time.Duration) *Config {
	return c.with(func(n *Config) { n.ClientHeaderTimeout = Duration(d) })
}

// WithClientBodyTimeout sets ClientBodyTimeout.
func (c *Config) WithClientBodyTimeout(d time.Duration) *Config {
	return c.with(func(n *Config) { n.ClientBodyTimeout = Duration(d) })
}

// WithMaxRequestHeaderSize sets MaxRequestHeaderSize in bytes.
func (c *Config) WithMaxRequestHeaderSize(v int64) *Config {
	return c.with(func(n *Config) { n.MaxRequestHeaderSize = ByteSize(v) })
}

// WithMaxRequestBodyBuffer sets MaxRequestBodyBuffer in bytes.
func (c *Config) WithMaxRequestBodyBuffer(v int64) *Config {
	return c.with(func(n *Config) { n.MaxRequestBodyBuffer = ByteSize(v) })
}

// WithDrainDelay sets DrainDelay.
func (c *Config) WithDrainDelay(d time.Duration) *Config {
	return c.with(func(n *Config) { n.DrainDelay = Duration(d) })
}

// WithUpstream appends a pool.
func (c *Config) WithUpstream(name string, endpoints ...string) *Config {
	u := UpstreamConfig{Name: name, Endpoints: append([]string(nil), endpoints...)}
	return c.with(func(n *Config) { n.Upstreams = appended(c.Upstreams, u) })
}

// WithUpstreamConfig appends a pool with every setting (policy, weights,
// health checks, models…). u's slices and maps are shared, not copied.
func (c *Config) WithUpstreamConfig(u UpstreamConfig) *Config {
	return c.with(func(n *Config) { n.Upstreams = appended(c.Upstreams, u) })
}

// WithRoute appends a route.
func (c *Config) WithRoute(match RouteMatch, upstream string) *Config {
	return c.with(func(n *Config) { n.Routes = appended(c.Routes, RouteConfig{Match: match, Upstream: upstream}) })
}

// WithPlugin appends a plugin.
func (c *Config) WithPlugin(p PluginConfig) *Config {
	return c.with(func(n *Config) { n.Plugins = appended(c.Plugins, p) })
}

// WithTLS sets TLS: the listener serves HTTPS with certFile and keyFile.
func (c *Config) WithTLS(certFile, keyFile string) *Config {
	return c.with(func(n *Config) { n.TLS = &TLSConfig{CertFile: certFile, KeyFile: keyFile} })
}
