package config

import (
	"strings"
	"testing"
	"time"
)

// TestRestartChanges: the settings a running process cannot change are
// named, with both values; spelling out a default is not a change, and
// settings a reload applies are not named.
func TestRestartChanges(t *testing.T) {
	base := func() *Config { return New().WithUpstream("a", "http://127.0.0.1:9000") }
	f := func(edit func(c *Config), want ...string) {
		t.Helper()
		c := base()
		edit(c)
		running, err := base().Resolve()
		if err != nil {
			t.Fatal(err)
		}
		next, err := c.Resolve()
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, ch := range RestartChanges(running, next) {
			got = append(got, ch.Key)
		}
		if strings.Join(got, ",") != strings.Join(want, ",") {
			t.Fatalf("changes %v, want %v", got, want)
		}
	}
	f(func(c *Config) {})
	f(func(c *Config) { c.ClientHeaderTimeout = Duration(DefaultClientHeaderTimeout) })
	f(func(c *Config) { c.Log.Format = "text" })
	f(func(c *Config) {
		c.MaxConcurrentRequests = 7
		c.Timeout = Duration(time.Second)
		c.Log.Level = "debug"
		c.Upstreams[0].Endpoints = []string{"http://127.0.0.1:9001"}
	})
	f(func(c *Config) { c.Port = 9090 }, "port")
	f(func(c *Config) {
		c.Hostname = "127.0.0.1"
		c.ClientHeaderTimeout = Duration(time.Second)
		c.MaxRequestHeaderSize = 8 << 10
		c.MaxRequestBodySize = 1 << 10
		c.Log.Format = "json"
		c.PluginCacheDir = "-"
	}, "hostname", "client_header_timeout", "max_request_header_size", "max_request_body_size", "log.format", "plugin_cache_dir")

	err := &RestartError{Changes: []RestartChange{{Key: "port", Old: "8080", New: "9090"}}}
	if msg := err.Error(); !strings.Contains(msg, `port (running "8080", new "9090")`) {
		t.Fatalf("error %q does not name the change", msg)
	}
}
