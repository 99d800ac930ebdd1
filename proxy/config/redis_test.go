package config

import (
	"testing"
	"time"
)

func TestRedisConfigParse(t *testing.T) {
	c, err := Parse([]byte(`
upstreams: [{name: a, endpoints: ["http://127.0.0.1:8000"]}]
redis:
  - name: redis.static
    address: 127.0.0.1:6379
  - name: cache
    address: cache.internal:6380
    username: sluice
    password_file: /run/secrets/redis
    db: 2
    tls: true
    timeout: 250ms
`))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if len(c.Redis) != 2 {
		t.Fatalf("redis = %+v", c.Redis)
	}
	r := c.Redis[1]
	if r.Username != "sluice" || r.PasswordFile != "/run/secrets/redis" || r.DB != 2 || !r.TLS || r.EffectiveTimeout() != 250*time.Millisecond {
		t.Fatalf("redis[1] = %+v", r)
	}
	if got := c.Redis[0].EffectiveTimeout(); got != DefaultRedisTimeout {
		t.Fatalf("default timeout = %v", got)
	}
}

func TestRedisConfigRejects(t *testing.T) {
	ok := func() *Config {
		c := New().WithUpstream("a", "http://127.0.0.1:8000")
		c.Redis = []RedisConfig{{Name: "r", Address: "127.0.0.1:6379"}}
		return c
	}
	checkRejects(t, ok, []rejectCase{
		{"no name", func(c *Config) { c.Redis[0].Name = "" }, "redis[0].name"},
		{"pipe in name", func(c *Config) { c.Redis[0].Name = "outbound|6379||r" }, "redis[0].name"},
		{"duplicate", func(c *Config) { c.Redis = append(c.Redis, c.Redis[0]) }, "redis[1].name"},
		{"no address", func(c *Config) { c.Redis[0].Address = "" }, "redis[0].address"},
		{"no port", func(c *Config) { c.Redis[0].Address = "127.0.0.1" }, "redis[0].address"},
		{"no host", func(c *Config) { c.Redis[0].Address = ":6379" }, "redis[0].address"},
		{"bad port", func(c *Config) { c.Redis[0].Address = "h:70000" }, "redis[0].address"},
		{"named port", func(c *Config) { c.Redis[0].Address = "h:redis" }, "redis[0].address"},
		{"negative db", func(c *Config) { c.Redis[0].DB = -1 }, "redis[0].db"},
		{"negative timeout", func(c *Config) { c.Redis[0].Timeout = -1 }, "redis[0].timeout"},
	})
}

func TestRedisByCluster(t *testing.T) {
	list := []RedisConfig{{Name: "redis.static"}, {Name: "my-redis.dns"}, {Name: "plain"}}
	for cluster, want := range map[string]string{
		"redis.static":                  "redis.static",
		"outbound|6379||redis.static":   "redis.static",
		"outbound|6379||my-redis.dns":   "my-redis.dns",
		"outbound|6379|v1|my-redis.dns": "",
		"plain":                         "plain",
		"outbound|6379||":               "",
		"nope":                          "",
		"outbound|6379||redis.static.x": "",
		"outbound|1||a||redis.static":   "redis.static",
		"":                              "", // several entries: no default
	} {
		got := ""
		if r := RedisByCluster(list, cluster); r != nil {
			got = r.Name
		}
		if got != want {
			t.Errorf("RedisByCluster(%q) = %q, want %q", cluster, got, want)
		}
	}
	if r := RedisByCluster(list[:1], ""); r == nil || r.Name != "redis.static" {
		t.Errorf(`RedisByCluster(one entry, "") = %v, want the entry`, r)
	}
	if r := RedisByCluster(nil, ""); r != nil {
		t.Errorf(`RedisByCluster(none, "") = %v, want nil`, r)
	}
}
